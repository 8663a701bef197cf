// quant_cpu_ops.h: stage 04's CPU backend (CpuOps: the same step recipe, K/V cache and
// activations) with the matrices of quant_weights.h plugged in: each matmul runs the kernel of
// its matrix's format (kernels/cpu/quant_matmul for the GGUF block formats, fp8_matmul.h for FP8,
// the fp32 kernel for f32/f16), reading the weights at their stored size.
#pragma once

#include <memory>
#include <string>

#include "quant_weights.h"
#include "stages/04_cuda/cpu_ops.h"

namespace llm::stage05 {

/// How the block formats (q8_0, q4_0, q4_1) multiply: fused = dequantize in registers against
/// fp32 activations (W8A32/W4A32, version 02); int8 = activations quantized to int8 per block of
/// 32 and integer dot products (W8A8/W4A8, version 03, the fastest path this CPU has). Other
/// formats ignore it.
enum class MatmulKind { fused, int8 };

/// Parses --matmul ("fused" or "int8"); throws llm::Error naming the flag otherwise.
MatmulKind parse_matmul(const std::string& s);

/// `q`'s matrices as CpuOps multiplies by them.
class QuantCpuMatrices : public stage04::CpuMatrices {
 public:
  QuantCpuMatrices(QuantWeights q, MatmulKind kind);
  void matmul(float* y, const float* x, int n, int layer, Matrix m) override;
  void classify(float* y, const float* x, int n) override;
  void embed_row(float* out, int t) override;
  const QuantWeights& weights() const { return q_; }

 private:
  QuantWeights q_;
  MatmulKind kind_;
};

/// y[n, m.rows] = x[n, m.cols] m^T with the kernel of m's format.
void stored_matmul(float* y, const float* x, const StoredMatrix& m, int n, MatmulKind kind);

/// Stage 04's CpuStepExecutor running these matrices, with the K/V cache of --kv-cache `kv_cache`
/// (kv_quant.h). `w` gives the config and the norms and must outlive the executor's construction only.
std::unique_ptr<stage04::CpuStepExecutor> make_quant_cpu_executor(const ModelWeights& w, QuantWeights q,
                                                                  MatmulKind kind, const std::string& kv_cache);

}  // namespace llm::stage05
