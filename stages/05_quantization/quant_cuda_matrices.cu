// quant_cuda_matrices.cu: stage 05's matrices on the GPU (quant_cuda.h): QuantCudaMatrices, the
// twin of QuantCpuMatrices (quant_cpu_ops.h), plugged into stage 04's CudaOps, and the executor
// built around them. NOT YET RUN ON A GPU (gpu_stage05 checks it where one is present).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/dequantize_half.cuh"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/cuda/quant_gemv/quant_gemv.cuh"
#include "quant_cuda.h"
#include "stages/04_cuda/cuda_executor.cuh"
#include "stages/04_cuda/cuda_ops.cuh"

namespace llm::stage05 {

namespace {

/// One matrix in device memory, in its stored format (DeviceMatrixImage's bytes).
struct DeviceMatrix {
  WeightFormat format = WeightFormat::f16;
  int rows = 0, cols = 0;
  cuda::DeviceBuffer<std::uint8_t> data;  // 256-byte aligned (cudaMalloc): the GEMVs' 16-byte loads
  cuda::DeviceBuffer<float> scales;       // FP8: [rows]

  explicit DeviceMatrix(const StoredMatrix& m) {
    const DeviceMatrixImage img = device_image(m);
    format = img.format, rows = img.rows, cols = img.cols;
    data = cuda::DeviceBuffer<std::uint8_t>(img.bytes.size());
    CUDA_CHECK(cudaMemcpy(data.get(), img.bytes.data(), img.bytes.size(), cudaMemcpyHostToDevice));
    if (!img.row_scales.empty()) {
      scales = cuda::DeviceBuffer<float>(img.row_scales.size());
      CUDA_CHECK(cudaMemcpy(scales.get(), img.row_scales.data(), img.row_scales.size() * sizeof(float),
                            cudaMemcpyHostToDevice));
    }
  }
  const __half* half() const { return reinterpret_cast<const __half*>(data.get()); }
};

cuda::StoredFormat stored_format(WeightFormat f) {
  switch (f) {
    case WeightFormat::q8_0:
      return cuda::StoredFormat::Q8_0;
    case WeightFormat::q4_0:
      return cuda::StoredFormat::Q4_0;
    case WeightFormat::q4_1:
      return cuda::StoredFormat::Q4_1;
    case WeightFormat::fp8:
      return cuda::StoredFormat::FP8_E4M3;
    default:
      throw Error(std::string("stage 05 cuda: no dequantization for ") + format_name(f));
  }
}

/// Stage 05's matrices on the device: each multiplied by the kernel of its format and the step's
/// rows (cuda_matmul_path).
class QuantCudaMatrices final : public stage04::CudaMatrices {
 public:
  explicit QuantCudaMatrices(const QuantWeights& q) {
    const std::vector<std::uint16_t> table = fp16_table(q.embed);
    embed_ = cuda::DeviceBuffer<__half>(table.size());
    CUDA_CHECK(cudaMemcpy(embed_.get(), table.data(), table.size() * sizeof(std::uint16_t), cudaMemcpyHostToDevice));
    classifier_ = std::make_unique<DeviceMatrix>(q.classifier_or_embed());
    for (const QuantLayer& L : q.layers) {
      Layer d;
      d.wqkv = std::make_unique<DeviceMatrix>(L.wqkv);
      d.wo = std::make_unique<DeviceMatrix>(L.wo);
      d.w13 = std::make_unique<DeviceMatrix>(L.w13);
      d.w2 = std::make_unique<DeviceMatrix>(L.w2);
      layers_.push_back(std::move(d));
    }
    scratch_ = cuda::DeviceBuffer<__half>(cuda_scratch_elements(q));
  }

  void matmul(float* y, const __half* x, int n, int layer, Matrix m, bool accumulate, cuda::CublasGemm& gemm,
              cudaStream_t stream) override {
    const Layer& L = layers_.at(static_cast<std::size_t>(layer));
    const DeviceMatrix* M = m == Matrix::wqkv ? L.wqkv.get() : m == Matrix::wo ? L.wo.get() : m == Matrix::w13 ? L.w13.get() : L.w2.get();
    multiply(*M, y, x, n, accumulate, gemm, stream);
  }

  void classify(float* y, const __half* x, int n, cuda::CublasGemm& gemm, cudaStream_t stream) override {
    multiply(*classifier_, y, x, n, false, gemm, stream);
  }

  const __half* embed_table() const override { return embed_.get(); }

  // Every path of n <= 8 rows is a GEMV (and the dequantization kernel): no cuBLAS, no allocation.
  bool graph_capable(int n) const override { return n >= 0 && n <= cuda::kQuantGemvMaxRows; }

 private:
  struct Layer {
    std::unique_ptr<DeviceMatrix> wqkv, wo, w13, w2;
  };

  void multiply(const DeviceMatrix& M, float* y, const __half* x, int n, bool accumulate, cuda::CublasGemm& gemm,
                cudaStream_t stream) {
    if (n == 0) return;
    cuda::QuantGemvArgs a;
    a.W = M.data.get();
    a.x = x;
    a.y = y;
    a.n = n;
    a.in = M.cols;
    a.out = M.rows;
    a.accumulate = accumulate;
    switch (cuda_matmul_path(M.format, n)) {
      case CudaMatmulPath::fp16_gemv:
      case CudaMatmulPath::fp16_cublas:
        return stage04::fp16_matmul(gemm, y, x, M.half(), n, M.cols, M.rows, accumulate, stream);
      case CudaMatmulPath::quant_gemv_01:
        a.format = M.format == WeightFormat::q8_0   ? cuda::QuantFormat::Q8_0
                   : M.format == WeightFormat::q4_0 ? cuda::QuantFormat::Q4_0
                                                    : cuda::QuantFormat::Q4_1;
        return cuda::quant_gemv_01_fused_16B(a, stream);
      case CudaMatmulPath::fp8_gemv_03:
        a.format = cuda::QuantFormat::FP8_E4M3;
        a.scales = M.scales.get();
        return cuda::quant_gemv_03_fp8_e4m3(a, stream);
      case CudaMatmulPath::dequantize_cublas:
        cuda::dequantize_to_half(stored_format(M.format), M.data.get(), M.scales.get(), scratch_.get(), M.rows, M.cols,
                                 stream);
        return stage04::fp16_matmul(gemm, y, x, scratch_.get(), n, M.cols, M.rows, accumulate, stream);
    }
  }

  cuda::DeviceBuffer<__half> embed_;  // [vocab, dim] fp16, for the lookup
  std::unique_ptr<DeviceMatrix> classifier_;
  std::vector<Layer> layers_;
  cuda::DeviceBuffer<__half> scratch_;  // the largest quantized matrix in fp16 (one stream: reused in turn)
};

bool uses_fp8(const QuantWeights& q) {
  bool any = q.classifier_or_embed().format == WeightFormat::fp8;
  for (const QuantLayer& L : q.layers)
    for (const StoredMatrix* m : {&L.wqkv, &L.wo, &L.w13, &L.w2}) any = any || m->format == WeightFormat::fp8;
  return any;
}

}  // namespace

std::string cuda_device_refusal(const QuantWeights& q) {
  if (!uses_fp8(q) || !stage04::cuda_unavailable_reason().empty() || cuda::device_has_fp8()) return "";
  return stage04::cuda_device_name() + " has no FP8 conversions (compute capability 8.9 or newer; Hopper is 9.0)";
}

std::unique_ptr<stage03::StepExecutor> make_quant_cuda_executor(const ModelWeights& w, const QuantWeights& q,
                                                                const stage04::CudaOptions& options, int* num_blocks) {
  const std::string why_not = stage04::cuda_unavailable_reason();
  if (!why_not.empty()) throw Error("--backend cuda: " + why_not);
  const std::string unsupported = cuda_weights_unsupported(q);
  if (!unsupported.empty()) throw Error("--backend cuda with --weights " + q.storage + ": " + unsupported);
  if (uses_fp8(q) && !cuda::device_has_fp8())
    throw Error("--weights fp8 on --backend cuda: " + stage04::cuda_device_name() +
                " has no FP8 conversions (compute capability 8.9 or newer; Hopper is 9.0)");
  stage04::CudaWeightPlan plan;
  plan.device_bytes = cuda_weight_bytes(q);
  plan.make_ops = [&](const stage04::CudaOpsLimits& limits, double* bytes_per_step) {
    *bytes_per_step = q.bytes_per_step();
    return std::make_unique<stage04::CudaOps>(w, std::make_unique<QuantCudaMatrices>(q), limits);
  };
  return stage04::make_cuda_executor(w.config, plan, options, num_blocks);
}

}  // namespace llm::stage05
