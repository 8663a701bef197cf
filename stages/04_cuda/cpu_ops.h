// cpu_ops.h: stage 04's step on the CPU, operation by operation the twin of the CUDA backend:
// the same packed fp16 weights, the same fp16 K/V cache laid out per layer as the kernels read
// it ([num_blocks * block_size, n_kv_heads, head_dim] fp16 bits; stage 05 stores other codes,
// kernels/cpu/attention.h's QuantPagedKvView), the same fp16 rounding of every
// activation the GPU stores in fp16, the same step layout, and the CPU twins of the kernels
// (kernels/cpu). Students without a GPU run stage 04's logic here; CI checks it against stage 03.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/cpu/attention.h"
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

/// How CpuOps stores K and V: the code type of every value (stage 04: f16) and, for the types
/// with a scale (int8, fp8_e4m3), how one KV head's row is encoded: x [head_dim] fp32 to
/// codes [head_dim] (one byte each) and *scale, so that x ~ scale * decode(code). Stage 05
/// supplies the encoders (kv_quant.h); f32 and f16 are stored as they are / rounded to nearest.
struct KvStorage {
  cpu::KvCodeType type = cpu::KvCodeType::f16;
  std::function<void(const float* x, int head_dim, std::uint8_t* codes, float* scale)> encode_head;
};

/// Stage 04's matrices: the packed fp16 bits turned back into (fp16-exact) floats.
std::unique_ptr<CpuMatrices> fp16_cpu_matrices(const PackedWeights& w);

/// The operations of step_recipe.h on host memory.
class CpuOps {
 public:
  /// Stage 04's CPU backend: fp16 matrices and an fp16 K/V cache.
  explicit CpuOps(const PackedWeights& w);
  /// Any matrices (the norms and the config from `w`) and any K/V storage. Throws llm::Error
  /// when a type with a scale comes without its encoder. `fp16_activations` false keeps every
  /// activation fp32 (no rounding where the GPU stores fp16): with an f32 K/V cache the step is
  /// then fp32 arithmetic on fp16-exact weights, which stage 07's tests compare at 1e-4.
  CpuOps(const ModelWeights& w, std::unique_ptr<CpuMatrices> matrices, KvStorage kv_storage,
         bool fp16_activations = true);
  /// Sizes the K/V cache for a pool of num_blocks blocks of block_size tokens: per layer, K and
  /// V code planes of num_blocks * block_size * kv_dim codes, and for int8/fp8 scale planes of
  /// num_blocks * block_size * n_kv_heads floats (QuantPagedKvView's layout).
  void reserve_cache(int num_blocks, int block_size);
  const KvStorage& kv_storage() const { return kv_storage_; }
  /// Bytes the K/V cache holds now (codes and scales, every layer): what reserve_cache allocated.
  std::size_t kv_bytes_allocated() const;

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

  /// One layer's K or V: codes in the vector of its type, and the scales of int8/fp8.
  struct KvPlane {
    std::vector<float> f32;           // [slots, kv_dim]
    std::vector<std::uint16_t> f16;   // [slots, kv_dim] fp16 bits
    std::vector<std::uint8_t> bytes;  // [slots, kv_dim] int8 / E4M3 codes
    std::vector<float> scales;        // [slots, n_kv_heads]
    const void* codes() const;
    std::size_t bytes_allocated() const;
  };
  /// Stores one token's row x [kv_dim] at `slot` of `plane`.
  void store_kv_row(KvPlane& plane, std::size_t slot, const float* x);
  /// Layer `layer`'s cache as the attention functions read it (no table or lengths yet).
  cpu::QuantPagedKvView kv_view(int layer) const;

  ModelConfig c_;
  std::unique_ptr<CpuMatrices> matrices_;
  KvStorage kv_storage_;
  std::vector<float> output_norm_;
  std::vector<Norms> layers_;
  int block_size_ = 0, num_blocks_ = 0;
  std::vector<KvPlane> k_cache_, v_cache_;  // per layer
  // Activations (fp16 ones hold fp16-exact floats).
  std::vector<float> x_, h16_, qkv_, q16_, att16_, gu_, f16_, tmp_;
  bool fp16_activations_ = true;  // round h16_, q16_, att16_, f16_ to fp16 (the GPU's storage)
};

/// Stage 04's CPU backend as a StepExecutor.
class CpuStepExecutor : public stage03::StepExecutor {
 public:
  explicit CpuStepExecutor(const ModelWeights& w);
  /// Runs `ops` instead (stage 05: other matrices, another K/V storage): `bytes_per_step` of
  /// weights read per step; the pool's books count the bytes of ops' K/V storage.
  CpuStepExecutor(const ModelConfig& c, std::unique_ptr<CpuOps> ops, double bytes_per_step);
  bool uses_pool_storage() const override { return false; }
  std::size_t kv_element_bytes() const override { return cpu::kv_code_bytes(ops_->kv_storage().type); }
  std::size_t kv_scale_bytes() const override {
    return cpu::kv_code_has_scale(ops_->kv_storage().type) ? sizeof(float) : 0;
  }
  /// The K/V cache's real size since the last begin_run (it equals the pool's bytes_total()).
  std::size_t kv_bytes_allocated() const { return ops_->kv_bytes_allocated(); }
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
