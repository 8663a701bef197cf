// dequantize_half.cu: see dequantize_half.cuh. One thread per 32-weight block (block formats) or
// per code (FP8), grid-stride; bytes read one at a time (GGUF blocks are 2-byte aligned at best),
// one fp16 written at a time. Not tuned: it runs once per prefill matmul, whose GEMM does hundreds
// of flops per weight it writes.
#include "kernels/cuda/dequantize_half.cuh"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.cuh"

namespace llm::cuda {

namespace {

__device__ __forceinline__ float load_half(const std::uint8_t* p) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(p[0] | (p[1] << 8))));
}

/// E4M3 (s eeee mmm, bias 7, no infinities, s.1111.111 NaN) to fp32, exactly.
__device__ __forceinline__ float e4m3_to_float(std::uint8_t code) {
  const int e = (code >> 3) & 0xF, m = code & 0x7;
  float v;
  if (e == 0xF && m == 0x7)
    v = __int_as_float(0x7FC00000);
  else if (e == 0)
    v = __fmul_rn(static_cast<float>(m), 1.0f / 512.0f);  // subnormal: m x 2^-9
  else
    v = __int_as_float(((e - 7 + 127) << 23) | (m << 20));
  return (code & 0x80) ? -v : v;
}

template <StoredFormat F>
__global__ void dequantize_blocks_kernel(const std::uint8_t* src, __half* out, long long blocks) {
  constexpr int kBytes = F == StoredFormat::Q8_0 ? 34 : F == StoredFormat::Q4_0 ? 18 : 20;
  for (long long b = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; b < blocks;
       b += static_cast<long long>(gridDim.x) * blockDim.x) {
    const std::uint8_t* p = src + b * kBytes;
    __half* o = out + b * 32;
    const float d = load_half(p);
    if constexpr (F == StoredFormat::Q8_0) {
      for (int j = 0; j < 32; ++j) o[j] = __float2half_rn(__fmul_rn(static_cast<float>(static_cast<std::int8_t>(p[2 + j])), d));
    } else if constexpr (F == StoredFormat::Q4_0) {
      // Byte j holds element j (low nibble) and j + 16 (high nibble).
      for (int j = 0; j < 16; ++j) {
        o[j] = __float2half_rn(__fmul_rn(static_cast<float>((p[2 + j] & 0x0F) - 8), d));
        o[j + 16] = __float2half_rn(__fmul_rn(static_cast<float>((p[2 + j] >> 4) - 8), d));
      }
    } else {
      const float m = load_half(p + 2);
      for (int j = 0; j < 16; ++j) {
        o[j] = __float2half_rn(__fadd_rn(__fmul_rn(static_cast<float>(p[4 + j] & 0x0F), d), m));
        o[j + 16] = __float2half_rn(__fadd_rn(__fmul_rn(static_cast<float>(p[4 + j] >> 4), d), m));
      }
    }
  }
}

__global__ void dequantize_fp8_kernel(const std::uint8_t* codes, const float* row_scales, __half* out, int rows,
                                      int cols) {
  const long long n = static_cast<long long>(rows) * cols;
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    out[i] = __float2half_rn(__fmul_rn(e4m3_to_float(codes[i]), row_scales[i / cols]));
}

int grid_for(long long items, int threads) {
  const long long g = (items + threads - 1) / threads;
  return static_cast<int>(g < 1 ? 1 : (g > 65535 ? 65535 : g));
}

}  // namespace

void dequantize_to_half(StoredFormat format, const void* src, const float* row_scales, __half* out, int rows, int cols,
                        cudaStream_t stream) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("dequantize_to_half: " + what); };
  const bool fp8 = format == StoredFormat::FP8_E4M3;
  if (rows < 1) fail("rows = " + std::to_string(rows) + " (must be >= 1)");
  if (cols < 1 || (!fp8 && cols % 32 != 0))
    fail("cols = " + std::to_string(cols) + (fp8 ? " (must be >= 1)" : " (must be a positive multiple of 32)"));
  if (!src) fail("src = null");
  if (!out) fail("out = null");
  if (fp8 && !row_scales) fail("row_scales = null (FP8 needs a scale per row)");
  constexpr int kThreads = 256;
  const auto* s = static_cast<const std::uint8_t*>(src);
  const long long blocks = static_cast<long long>(rows) * (cols / 32);
  switch (format) {
    case StoredFormat::Q8_0:
      dequantize_blocks_kernel<StoredFormat::Q8_0><<<grid_for(blocks, kThreads), kThreads, 0, stream>>>(s, out, blocks);
      break;
    case StoredFormat::Q4_0:
      dequantize_blocks_kernel<StoredFormat::Q4_0><<<grid_for(blocks, kThreads), kThreads, 0, stream>>>(s, out, blocks);
      break;
    case StoredFormat::Q4_1:
      dequantize_blocks_kernel<StoredFormat::Q4_1><<<grid_for(blocks, kThreads), kThreads, 0, stream>>>(s, out, blocks);
      break;
    case StoredFormat::FP8_E4M3:
      dequantize_fp8_kernel<<<grid_for(static_cast<long long>(rows) * cols, kThreads), kThreads, 0, stream>>>(
          s, row_scales, out, rows, cols);
      break;
  }
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
