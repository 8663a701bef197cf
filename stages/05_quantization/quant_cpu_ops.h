// quant_cpu_ops.h: stage 04's CPU backend (CpuOps: the same step recipe, K/V cache and
// activations) with the matrices of quant_weights.h plugged in: each matmul runs the kernel of
// its matrix's format (kernels/cpu/quant_matmul for the GGUF block formats, fp8_matmul.h for FP8,
// the fp32 kernel for f32/f16), reading the weights at their stored size.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/quant_matmul/quant_matmul.h"
#include "quant_weights.h"
#include "stages/04_cuda/cpu_ops.h"

namespace llm::stage05 {

/// How the block formats (q8_0, q4_0, q4_1) multiply:
///   fused = dequantize in registers against fp32 activations (W8A32/W4A32, quant_matmul 02);
///   int8  = activations quantized to int8 per block of 32 and integer dot products (W8A8/W4A8,
///           quant_matmul 04 on the weights repacked at load, the fastest path this CPU has);
///   auto  = the fastest correct one here: int8 when the CPU has an AVX2 / AVX-VNNI / AVX-512
///           VNNI path (04 beats 02 at every SmolLM2 shape and batch measured,
///           docs/results/cpu-intel-xeon-2c/quant_kernels.md), else fused (04's scalar path is
///           the slowest of all). Other formats ignore it.
enum class MatmulKind { automatic, fused, int8 };

/// Parses --matmul ("auto", "fused" or "int8"); throws llm::Error naming the flag otherwise.
MatmulKind parse_matmul(const std::string& s);
/// `auto` made concrete for this CPU (fused or int8); the others as they are.
MatmulKind resolve_matmul(MatmulKind k);

/// `q`'s matrices as CpuOps multiplies by them. With int8, the block-format matrices are repacked
/// at construction (cpu::qmm::pack_rows_16) and their GGUF bytes released, the embedding's kept
/// for the row lookups.
class QuantCpuMatrices : public stage04::CpuMatrices {
 public:
  QuantCpuMatrices(QuantWeights q, MatmulKind kind);
  void matmul(float* y, const float* x, int n, int layer, Matrix m) override;
  void classify(float* y, const float* x, int n) override;
  void embed_row(float* out, int t) override;
  /// fused or int8 (auto resolved).
  MatmulKind kind() const { return kind_; }

 private:
  /// y[n, m.rows] = x[n, m.cols] m^T with the kernel of m's format (`packed`: m repacked, or null).
  void multiply(float* y, const float* x, int n, const StoredMatrix& m, const cpu::qmm::PackedMatrix* packed) const;

  QuantWeights q_;
  MatmulKind kind_;
  struct PackedLayer {
    cpu::qmm::PackedMatrix wqkv, wo, w13, w2;
  };
  std::vector<PackedLayer> packed_;  // int8 with a block format: per layer
  cpu::qmm::PackedMatrix packed_classifier_;
};

/// Stage 04's CpuStepExecutor running these matrices, with the K/V cache of --kv-cache `kv_cache`
/// (kv_quant.h). `w` gives the config and the norms and must outlive the executor's construction only.
std::unique_ptr<stage04::CpuStepExecutor> make_quant_cpu_executor(const ModelWeights& w, QuantWeights q,
                                                                  MatmulKind kind, const std::string& kv_cache);

}  // namespace llm::stage05
