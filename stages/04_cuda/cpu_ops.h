// cpu_ops.h: stage 04's step on the CPU, operation by operation the twin of the CUDA backend:
// the same packed fp16 weights, the same fp16 K/V cache laid out per layer as the kernels read
// it ([num_blocks * block_size, n_kv_heads, head_dim]), the same fp16 rounding of every
// activation the GPU stores in fp16, the same step layout, and the CPU twins of the kernels
// (kernels/cpu). Students without a GPU run stage 04's logic here; CI checks it against stage 03.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "packed_weights.h"
#include "stages/03_continuous_batching/step_executor.h"
#include "step_layout.h"
#include "step_recipe.h"

namespace llm::stage04 {

/// The operations of step_recipe.h on host memory.
class CpuOps {
 public:
  explicit CpuOps(const PackedWeights& w);
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
  struct Layer {
    std::vector<float> attn_norm, ffn_norm, wqkv, wo, w13, w2;  // matrices: fp16-exact floats
  };
  /// y[n, out] = x W^T, or y += x W^T with accumulate.
  void matmul(float* y, const float* x, const std::vector<float>& W, int n, int in, int out, bool accumulate);

  ModelConfig c_;
  std::vector<float> embed_, classifier_, output_norm_;
  std::vector<Layer> layers_;
  int block_size_ = 0, num_blocks_ = 0;
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [num_blocks * block_size, kv_dim]
  // Activations (fp16 ones hold fp16-exact floats).
  std::vector<float> x_, h16_, qkv_, q16_, att16_, gu_, f16_, tmp_, gather_k_, gather_v_;
};

/// Stage 04's CPU backend as a StepExecutor.
class CpuStepExecutor : public stage03::StepExecutor {
 public:
  explicit CpuStepExecutor(const ModelWeights& w);
  bool uses_pool_storage() const override { return false; }
  std::size_t kv_element_bytes() const override { return 2; }
  double weight_bytes_per_step() const override { return bytes_per_step_; }
  void begin_run(stage03::BlockPool& pool) override;
  std::vector<float> forward(const stage03::StepBatch& step) override;
  /// Runs the step with profile_step (step_recipe.h): seconds per operation.
  std::vector<OpTime> profile(const stage03::StepBatch& step);

 private:
  ModelConfig config_;
  std::unique_ptr<CpuOps> ops_;
  double bytes_per_step_ = 0.0;
  int block_size_ = 0;
};

}  // namespace llm::stage04
