// cpu_ops.h: stage 04's step on the CPU, operation by operation the twin of the CUDA backend:
// the same packed fp16 weights, the same fp16 K/V cache laid out per layer as the kernels read
// it ([num_blocks * block_size, n_kv_heads, head_dim]), the same fp16 rounding of every
// activation the GPU stores in fp16, the same step layout, and the CPU twins of the kernels
// (kernels/cpu). Students without a GPU run stage 04's logic here; CI checks it against stage 03.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "packed_weights.h"
#include "stages/03_continuous_batching/step_executor.h"
#include "step_layout.h"
#include "step_recipe.h"

namespace llm::stage04 {

/// The weight matrices CpuOps multiplies by, wherever and however they are stored: stage 04's
/// own are fp16-exact floats (fp16_cpu_matrices); stage 05 plugs in quantized ones. Shapes as in
/// packed_weights.h; activations are fp32, row-major.
class CpuMatrices {
 public:
  enum class Matrix { wqkv, wo, w13, w2 };
  virtual ~CpuMatrices() = default;
  /// y[n, out] = x[n, in] W^T for matrix m of `layer`.
  virtual void matmul(float* y, const float* x, int n, int layer, Matrix m) = 0;
  /// y[n, vocab] = x[n, dim] Wcls^T.
  virtual void classify(float* y, const float* x, int n) = 0;
  /// out[dim] = the embedding of token t (0 <= t < vocab).
  virtual void embed_row(float* out, int t) = 0;
};

/// What storing one token's K or V row in the cache does to it, in place: row is
/// [n_kv_heads * head_dim] fp32. Stage 04 rounds to fp16 (round_kv_to_fp16); stage 05 adds int8
/// and fp8 with a scale per KV head. An empty one keeps fp32.
using KvRounding = std::function<void(float* row, int n_kv_heads, int head_dim)>;
/// Stage 04's K/V storage: every value rounded to fp16.
void round_kv_to_fp16(float* row, int n_kv_heads, int head_dim);

/// Stage 04's matrices: the packed fp16 bits turned back into (fp16-exact) floats.
std::unique_ptr<CpuMatrices> fp16_cpu_matrices(const PackedWeights& w);

/// The operations of step_recipe.h on host memory.
class CpuOps {
 public:
  /// Stage 04's CPU backend: fp16 matrices and an fp16 K/V cache.
  explicit CpuOps(const PackedWeights& w);
  /// Any matrices (the norms and the config from `w`) and any K/V storage.
  CpuOps(const ModelWeights& w, std::unique_ptr<CpuMatrices> matrices, KvRounding kv_rounding);
  /// Sizes the K/V cache for a pool of num_blocks blocks of block_size tokens.
  void reserve_cache(int num_blocks, int block_size);

  void begin_step(const StepLayout& L);
  void embed(const StepLayout& L);
  void attention_norm(int layer, const StepLayout& L);
  void qkv(int layer, const StepLayout& L);
  void rope_store_kv(int layer, const StepLayout& L);
  void attention(int layer, const StepLayout& L);
  void o_proj(int layer, const StepLayout& L);
  void ffn_norm(int layer, const StepLayout& L);
  void gate_up(int layer, const StepLayout& L);
  void swiglu(const StepLayout& L);
  void down(int layer, const StepLayout& L);
  std::vector<float> logits(const StepLayout& L);
  /// Nothing to wait for on the host (profile_step calls it between operations).
  void sync() {}

 private:
  struct Norms {
    std::vector<float> attn_norm, ffn_norm;
  };
  /// y[n, out] = x W^T, or y += x W^T with accumulate.
  void matmul(float* y, const float* x, int layer, CpuMatrices::Matrix m, int n, int out, bool accumulate);

  ModelConfig c_;
  std::unique_ptr<CpuMatrices> matrices_;
  KvRounding kv_rounding_;
  std::vector<float> output_norm_;
  std::vector<Norms> layers_;
  int block_size_ = 0, num_blocks_ = 0;
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [num_blocks * block_size, kv_dim]
  // Activations (fp16 ones hold fp16-exact floats).
  std::vector<float> x_, h16_, qkv_, q16_, att16_, gu_, f16_, tmp_, gather_k_, gather_v_;
};

/// Stage 04's CPU backend as a StepExecutor.
class CpuStepExecutor : public stage03::StepExecutor {
 public:
  explicit CpuStepExecutor(const ModelWeights& w);
  /// Runs `ops` instead (stage 05: other matrices, another K/V type): `bytes_per_step` of
  /// weights read per step, K/V elements of `kv_element_bytes`.
  CpuStepExecutor(const ModelConfig& c, std::unique_ptr<CpuOps> ops, double bytes_per_step,
                  std::size_t kv_element_bytes);
  bool uses_pool_storage() const override { return false; }
  std::size_t kv_element_bytes() const override { return kv_element_bytes_; }
  double weight_bytes_per_step() const override { return bytes_per_step_; }
  void begin_run(stage03::BlockPool& pool) override;
  std::vector<float> forward(const stage03::StepBatch& step) override;
  /// Runs the step with profile_step (step_recipe.h): seconds per operation.
  std::vector<OpTime> profile(const stage03::StepBatch& step);

 private:
  ModelConfig config_;
  std::unique_ptr<CpuOps> ops_;
  double bytes_per_step_ = 0.0;
  std::size_t kv_element_bytes_ = 2;
  int block_size_ = 0;
};

}  // namespace llm::stage04
