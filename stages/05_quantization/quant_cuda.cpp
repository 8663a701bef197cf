// quant_cuda.cpp: the CPU side of stage 05's CUDA backend (quant_cuda.h): which kernel each matmul
// takes, what the backend refuses, and the bytes uploaded. Plain C++, tested without a GPU.
#include "quant_cuda.h"

#include <algorithm>

#include "common/error.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/half.h"

namespace llm::stage05 {

namespace {

/// Most rows a GEMV takes (kernels/cuda/gemv's kGemvMaxRows, quant_gemv's kQuantGemvMaxRows).
constexpr int kGemvRows = 8;

std::size_t round16(std::size_t n) { return (n + 15) / 16 * 16; }

}  // namespace

CudaMatmulPath cuda_matmul_path(WeightFormat f, int n) {
  const bool gemv = n <= kGemvRows;
  switch (f) {
    case WeightFormat::f16:
      return gemv ? CudaMatmulPath::fp16_gemv : CudaMatmulPath::fp16_cublas;
    case WeightFormat::q8_0:
    case WeightFormat::q4_0:
    case WeightFormat::q4_1:
      return gemv ? CudaMatmulPath::quant_gemv_01 : CudaMatmulPath::dequantize_cublas;
    case WeightFormat::fp8:
      return gemv ? CudaMatmulPath::fp8_gemv_03 : CudaMatmulPath::dequantize_cublas;
    case WeightFormat::f32:
      break;
  }
  throw Error("stage 05 cuda: f32 matrices are not kept on the GPU (--weights f16 runs them in fp16)");
}

const char* cuda_matmul_path_name(CudaMatmulPath p) {
  switch (p) {
    case CudaMatmulPath::fp16_gemv:
      return "fp16 GEMV";
    case CudaMatmulPath::fp16_cublas:
      return "cuBLAS";
    case CudaMatmulPath::quant_gemv_01:
      return "quant_gemv 01";
    case CudaMatmulPath::fp8_gemv_03:
      return "quant_gemv 03";
    case CudaMatmulPath::dequantize_cublas:
      return "dequantize + cuBLAS";
  }
  return "?";
}

std::string cuda_weights_unsupported(const QuantWeights& q) {
  auto check = [](const StoredMatrix& m, const std::string& name) -> std::string {
    if (m.rows == 0) return "";
    if (m.format == WeightFormat::f32)
      return name + " is f32: the CUDA backend keeps fp16 at most (use --weights f16, or a quantized format)";
    if (m.format == WeightFormat::fp8 && m.cols % 16 != 0)
      return name + " has rows of " + std::to_string(m.cols) +
             " FP8 weights, not a multiple of 16 (the FP8 GEMV's 16-byte loads)";
    if (is_block_format(m.format) && m.cols % 32 != 0)
      return name + " has rows of " + std::to_string(m.cols) + " weights in " + format_name(m.format) +
             ", not a multiple of 32";
    return "";
  };
  std::string why = check(q.embed, "the embedding");
  if (why.empty()) why = check(q.classifier, "the classifier");
  for (std::size_t l = 0; l < q.layers.size() && why.empty(); ++l) {
    const QuantLayer& L = q.layers[l];
    const std::string b = "layer " + std::to_string(l) + "'s ";
    for (const auto& [m, name] : {std::pair<const StoredMatrix*, const char*>{&L.wqkv, "wqkv"},
                                  {&L.wo, "wo"},
                                  {&L.w13, "w13"},
                                  {&L.w2, "w2"}})
      if (why.empty()) why = check(*m, b + name);
  }
  return why;
}

DeviceMatrixImage device_image(const StoredMatrix& m) {
  DeviceMatrixImage img;
  img.format = m.format;
  img.rows = m.rows;
  img.cols = m.cols;
  const std::size_t n = static_cast<std::size_t>(m.rows) * static_cast<std::size_t>(m.cols);
  switch (m.format) {
    case WeightFormat::f32:
      (void)cuda_matmul_path(m.format, 1);  // throws, naming the flag
      break;
    case WeightFormat::f16:
      img.bytes.resize(2 * n);
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = cpu::float_to_half(m.values[i]);
        img.bytes[2 * i] = static_cast<std::uint8_t>(h & 0xFF);
        img.bytes[2 * i + 1] = static_cast<std::uint8_t>(h >> 8);
      }
      break;
    case WeightFormat::fp8:
      img.row_scales = m.row_scales;
      [[fallthrough]];
    default:
      img.bytes.reserve(round16(m.bytes.size()));
      img.bytes = m.bytes;
      img.bytes.resize(round16(m.bytes.size()), 0);
  }
  return img;
}

std::vector<std::uint16_t> fp16_table(const StoredMatrix& embed) {
  const std::size_t cols = static_cast<std::size_t>(embed.cols);
  std::vector<std::uint16_t> t(static_cast<std::size_t>(embed.rows) * cols);
  std::vector<float> row(cols);
  for (int r = 0; r < embed.rows; ++r) {
    embed.dequantize_row(r, row.data());
    for (std::size_t j = 0; j < cols; ++j) {
      const std::uint16_t h = cpu::float_to_half(row[j]);
      if ((h & 0x7C00u) == 0x7C00u)
        throw Error("the embedding's row " + std::to_string(r) + " element " + std::to_string(j) +
                    " is beyond fp16's range (+-65504): the CUDA lookup reads an fp16 table");
      t[static_cast<std::size_t>(r) * cols + j] = h;
    }
  }
  return t;
}

std::size_t cuda_scratch_elements(const QuantWeights& q) {
  std::size_t most = 0;
  auto see = [&](const StoredMatrix& m) {
    if (m.rows > 0 && m.format != WeightFormat::f16)
      most = std::max(most, static_cast<std::size_t>(m.rows) * static_cast<std::size_t>(m.cols));
  };
  see(q.classifier_or_embed());
  for (const QuantLayer& L : q.layers)
    for (const StoredMatrix* m : {&L.wqkv, &L.wo, &L.w13, &L.w2}) see(*m);
  return most;
}

std::size_t cuda_weight_bytes(const QuantWeights& q) {
  auto image = [](const StoredMatrix& m) -> std::size_t {
    if (m.rows == 0) return 0;
    const std::size_t n = static_cast<std::size_t>(m.rows) * static_cast<std::size_t>(m.cols);
    if (m.format == WeightFormat::f16) return 2 * n;
    return round16(m.bytes.size()) + 4 * m.row_scales.size();
  };
  const std::size_t dim = static_cast<std::size_t>(q.config.dim);
  std::size_t b = image(q.classifier_or_embed());  // a tied classifier is the embedding's image
  b += 2 * static_cast<std::size_t>(q.embed.rows) * static_cast<std::size_t>(q.embed.cols);  // fp16 lookup table
  b += 2 * cuda_scratch_elements(q);
  b += 4 * dim * (1 + 2 * q.layers.size());  // norms
  for (const QuantLayer& L : q.layers)
    for (const StoredMatrix* m : {&L.wqkv, &L.wo, &L.w13, &L.w2}) b += image(*m);
  return b;
}

}  // namespace llm::stage05
