#include "cpu_ops.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/ops.h"
#include "step_recipe.h"

namespace llm::stage04 {

namespace {

std::vector<float> floats(const std::vector<std::uint16_t>& h) {
  return cpu::from_half_bits(h);
}

void grow(std::vector<float>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

/// Rounds src[0..n) to fp16 into dst, or copies it when activations stay fp32.
void store_activation(const float* src, std::size_t n, float* dst, bool fp16) {
  if (fp16)
    cpu::round_to_half(src, n, dst);  // what storing in fp16 does (F16C where the CPU has it)
  else if (src != dst)
    std::copy_n(src, n, dst);
}

/// Stage 04's storage: every matrix as fp16-exact floats.
class Fp16CpuMatrices : public CpuMatrices {
 public:
  explicit Fp16CpuMatrices(const PackedWeights& w) : c_(w.config) {
    embed_ = floats(w.embed);
    if (!w.classifier.empty()) classifier_ = floats(w.classifier);
    for (const PackedLayer& L : w.layers)
      layers_.push_back({floats(L.wqkv), floats(L.wo), floats(L.w13), floats(L.w2)});
  }
  void matmul(float* y, const float* x, int n, int layer, Matrix m) override {
    const Layer& L = layers_[static_cast<std::size_t>(layer)];
    const int qkv = c_.q_dim() + 2 * c_.kv_dim();
    switch (m) {
      case Matrix::wqkv:
        return cpu::matmul(y, x, L.wqkv.data(), n, c_.dim, qkv);
      case Matrix::wo:
        return cpu::matmul(y, x, L.wo.data(), n, c_.q_dim(), c_.dim);
      case Matrix::w13:
        return cpu::matmul(y, x, L.w13.data(), n, c_.dim, 2 * c_.hidden_dim);
      case Matrix::w2:
        return cpu::matmul(y, x, L.w2.data(), n, c_.hidden_dim, c_.dim);
    }
  }
  void classify(float* y, const float* x, int n) override {
    cpu::matmul(y, x, (classifier_.empty() ? embed_ : classifier_).data(), n, c_.dim, c_.vocab_size);
  }
  void embed_row(float* out, int t) override {
    std::memcpy(out, &embed_[static_cast<std::size_t>(t) * c_.dim], sizeof(float) * c_.dim);
  }

 private:
  struct Layer {
    std::vector<float> wqkv, wo, w13, w2;
  };
  ModelConfig c_;
  std::vector<float> embed_, classifier_;  // classifier_ empty when tied
  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<CpuMatrices> fp16_cpu_matrices(const PackedWeights& w) {
  return std::make_unique<Fp16CpuMatrices>(w);
}

CpuOps::CpuOps(const PackedWeights& w)
    : c_(w.config), matrices_(fp16_cpu_matrices(w)), kv_storage_{cpu::KvCodeType::f16, {}}, output_norm_(w.output_norm) {
  for (const PackedLayer& L : w.layers) layers_.push_back(Norms{L.attn_norm, L.ffn_norm});
}

CpuOps::CpuOps(const ModelWeights& w, std::unique_ptr<CpuMatrices> matrices, KvStorage kv_storage,
               bool fp16_activations)
    : c_(w.config),
      matrices_(std::move(matrices)),
      kv_storage_(std::move(kv_storage)),
      output_norm_(w.output_norm),
      fp16_activations_(fp16_activations) {
  if (cpu::kv_code_has_scale(kv_storage_.type) && !kv_storage_.encode_head)
    throw Error(std::string("CpuOps: K/V storage ") + cpu::kv_code_name(kv_storage_.type) + " needs an encoder");
  for (const LayerWeights& L : w.layers) layers_.push_back(Norms{L.attn_norm, L.ffn_norm});
}

const void* CpuOps::KvPlane::codes() const {
  if (!f32.empty()) return f32.data();
  if (!f16.empty()) return f16.data();
  return bytes.data();
}

std::size_t CpuOps::KvPlane::bytes_allocated() const {
  return f32.size() * sizeof(float) + f16.size() * sizeof(std::uint16_t) + bytes.size() + scales.size() * sizeof(float);
}

void CpuOps::reserve_cache(int num_blocks, int block_size) {
  num_blocks_ = num_blocks;
  block_size_ = block_size;
  const std::size_t slots = static_cast<std::size_t>(num_blocks) * static_cast<std::size_t>(block_size);
  const std::size_t n = slots * static_cast<std::size_t>(c_.kv_dim());
  // Only the vectors of the storage's type hold anything: the cache is the format's size.
  KvPlane plane;
  switch (kv_storage_.type) {
    case cpu::KvCodeType::f32: plane.f32.assign(n, 0.0f); break;
    case cpu::KvCodeType::f16: plane.f16.assign(n, 0); break;
    case cpu::KvCodeType::int8:
    case cpu::KvCodeType::fp8_e4m3:
      plane.bytes.assign(n, 0);
      plane.scales.assign(slots * static_cast<std::size_t>(c_.n_kv_heads), 0.0f);
      break;
  }
  k_cache_.assign(static_cast<std::size_t>(c_.n_layers), plane);
  v_cache_.assign(static_cast<std::size_t>(c_.n_layers), plane);
}

std::size_t CpuOps::kv_bytes_allocated() const {
  std::size_t bytes = 0;
  for (const KvPlane& p : k_cache_) bytes += p.bytes_allocated();
  for (const KvPlane& p : v_cache_) bytes += p.bytes_allocated();
  return bytes;
}

void CpuOps::store_kv_row(KvPlane& plane, std::size_t slot, const float* x) {
  const std::size_t kvd = static_cast<std::size_t>(c_.kv_dim()), at = slot * kvd;
  switch (kv_storage_.type) {
    case cpu::KvCodeType::f32: std::copy_n(x, kvd, &plane.f32[at]); return;
    case cpu::KvCodeType::f16: std::transform(x, x + kvd, &plane.f16[at], cpu::float_to_half); return;
    case cpu::KvCodeType::int8:
    case cpu::KvCodeType::fp8_e4m3:
      for (int g = 0; g < c_.n_kv_heads; ++g) {
        const std::size_t head = slot * static_cast<std::size_t>(c_.n_kv_heads) + static_cast<std::size_t>(g);
        kv_storage_.encode_head(x + static_cast<std::size_t>(g) * c_.head_dim, c_.head_dim,
                                &plane.bytes[head * static_cast<std::size_t>(c_.head_dim)], &plane.scales[head]);
      }
      return;
  }
}

cpu::QuantPagedKvView CpuOps::kv_view(int layer) const {
  const KvPlane& K = k_cache_[static_cast<std::size_t>(layer)];
  const KvPlane& V = v_cache_[static_cast<std::size_t>(layer)];
  cpu::QuantPagedKvView v;
  v.type = kv_storage_.type;
  v.k_codes = K.codes();
  v.v_codes = V.codes();
  v.k_scales = K.scales.empty() ? nullptr : K.scales.data();
  v.v_scales = V.scales.empty() ? nullptr : V.scales.data();
  v.num_blocks = num_blocks_;
  v.block_size = block_size_;
  v.n_kv_heads = c_.n_kv_heads;
  v.head_dim = c_.head_dim;
  return v;
}

void CpuOps::matmul(float* y, const float* x, int layer, CpuMatrices::Matrix m, int n, int out, bool accumulate) {
  if (!accumulate) {
    matrices_->matmul(y, x, n, layer, m);
    return;
  }
  grow(tmp_, static_cast<std::size_t>(n) * out);
  matrices_->matmul(tmp_.data(), x, n, layer, m);
  for (std::size_t i = 0; i < static_cast<std::size_t>(n) * out; ++i) y[i] += tmp_[i];
}

void CpuOps::begin_step(const StepLayout& L) {
  const auto n = static_cast<std::size_t>(L.n);
  grow(x_, n * c_.dim);
  grow(h16_, n * c_.dim);
  grow(qkv_, n * (c_.q_dim() + 2 * c_.kv_dim()));
  grow(q16_, n * c_.q_dim());
  grow(att16_, n * c_.q_dim());
  grow(gu_, n * 2 * c_.hidden_dim);
  grow(f16_, n * c_.hidden_dim);
  for (int s : L.slots)
    if (s < 0 || s >= num_blocks_ * block_size_)
      throw Error("stage 04: KV slot " + std::to_string(s) + " is outside the cache of " +
                  std::to_string(num_blocks_ * block_size_) + " slots");
}

void CpuOps::embed(const StepLayout& L) {
  for (int r = 0; r < L.n; ++r) {
    const int t = L.tokens[static_cast<std::size_t>(r)];
    if (t < 0 || t >= c_.vocab_size)
      throw Error("forward: token id " + std::to_string(t) + " is outside the vocabulary of " +
                  std::to_string(c_.vocab_size));
    matrices_->embed_row(&x_[static_cast<std::size_t>(r) * c_.dim], t);
  }
}

void CpuOps::attention_norm(int layer, const StepLayout& L) {
  cpu::rmsnorm(h16_.data(), x_.data(), layers_[static_cast<std::size_t>(layer)].attn_norm.data(), L.n, c_.dim,
               c_.norm_eps);
  store_activation(h16_.data(), static_cast<std::size_t>(L.n) * c_.dim, h16_.data(), fp16_activations_);
}

void CpuOps::qkv(int layer, const StepLayout& L) {
  matmul(qkv_.data(), h16_.data(), layer, CpuMatrices::Matrix::wqkv, L.n, c_.q_dim() + 2 * c_.kv_dim(), false);
}

void CpuOps::rope_store_kv(int layer, const StepLayout& L) {
  const int qd = c_.q_dim(), kvd = c_.kv_dim(), row = qd + 2 * kvd;
  for (int r = 0; r < L.n; ++r) {
    float* src = &qkv_[static_cast<std::size_t>(r) * row];
    // q and k heads are adjacent in the row: rotate them together, as the kernel does.
    cpu::rope(src, c_.n_heads + c_.n_kv_heads, c_.head_dim, L.positions[static_cast<std::size_t>(r)], c_.rope_theta);
    store_activation(src, static_cast<std::size_t>(qd), &q16_[static_cast<std::size_t>(r) * qd], fp16_activations_);
    const auto slot = static_cast<std::size_t>(L.slots[static_cast<std::size_t>(r)]);
    store_kv_row(k_cache_[static_cast<std::size_t>(layer)], slot, src + qd);
    store_kv_row(v_cache_[static_cast<std::size_t>(layer)], slot, src + qd + kvd);
  }
}

void CpuOps::attention(int layer, const StepLayout& L) {
  const int qd = c_.q_dim();
  // The cache is read as stored (fp16 bits, or int8/fp8 codes with their scales), through the
  // block tables; for f32/f16 the arithmetic is paged_decode_attention's and
  // attention_online_softmax's, bit for bit.
  cpu::QuantPagedKvView view = kv_view(layer);
  view.max_blocks_per_seq = L.max_blocks;
  // Decode rows: one batch through the block tables (the split-KV kernel's twin).
  if (L.n_decode > 0) {
    view.block_table = L.tables.data();
    view.seq_lens = L.seq_lens.data();
    cpu::paged_decode_attention_quant(att16_.data(), q16_.data(), L.n_decode, c_.n_heads, view, 1);
  }
  // Prompt chunks: causal attention of the chunk's queries over its sequence's keys, in tiles of
  // 64 keys (the prefill kernel's twin).
  for (const PrefillChunk& ch : L.chunks) {
    const int kv_len = ch.start + ch.count;
    view.block_table = &L.tables[static_cast<std::size_t>(ch.table) * L.max_blocks];
    view.seq_lens = &kv_len;
    cpu::paged_prefill_attention_quant(&att16_[static_cast<std::size_t>(ch.row_begin) * qd],
                                       &q16_[static_cast<std::size_t>(ch.row_begin) * qd], ch.count, c_.n_heads, 0,
                                       view, 64);
  }
  store_activation(att16_.data(), static_cast<std::size_t>(L.n) * qd, att16_.data(), fp16_activations_);
}

void CpuOps::o_proj(int layer, const StepLayout& L) {
  matmul(x_.data(), att16_.data(), layer, CpuMatrices::Matrix::wo, L.n, c_.dim, true);
}

void CpuOps::ffn_norm(int layer, const StepLayout& L) {
  cpu::rmsnorm(h16_.data(), x_.data(), layers_[static_cast<std::size_t>(layer)].ffn_norm.data(), L.n, c_.dim,
               c_.norm_eps);
  store_activation(h16_.data(), static_cast<std::size_t>(L.n) * c_.dim, h16_.data(), fp16_activations_);
}

void CpuOps::gate_up(int layer, const StepLayout& L) {
  matmul(gu_.data(), h16_.data(), layer, CpuMatrices::Matrix::w13, L.n, 2 * c_.hidden_dim, false);
}

void CpuOps::swiglu(const StepLayout& L) {
  const std::size_t ff = static_cast<std::size_t>(c_.hidden_dim);
  for (std::size_t r = 0; r < static_cast<std::size_t>(L.n); ++r) {
    cpu::swiglu(&f16_[r * ff], &gu_[r * 2 * ff], &gu_[r * 2 * ff + ff], ff);
    store_activation(&f16_[r * ff], ff, &f16_[r * ff], fp16_activations_);
  }
}

void CpuOps::down(int layer, const StepLayout& L) {
  matmul(x_.data(), f16_.data(), layer, CpuMatrices::Matrix::w2, L.n, c_.dim, true);
}

std::vector<float> CpuOps::logits(const StepLayout& L) {
  const int rows = static_cast<int>(L.logit_rows.size());
  std::vector<float> out(static_cast<std::size_t>(rows) * c_.vocab_size);
  if (rows == 0) return out;
  grow(tmp_, static_cast<std::size_t>(rows) * c_.dim);
  for (int r = 0; r < rows; ++r)
    std::memcpy(&tmp_[static_cast<std::size_t>(r) * c_.dim],
                &x_[static_cast<std::size_t>(L.logit_rows[static_cast<std::size_t>(r)]) * c_.dim],
                sizeof(float) * c_.dim);
  cpu::rmsnorm(h16_.data(), tmp_.data(), output_norm_.data(), rows, c_.dim, c_.norm_eps);
  store_activation(h16_.data(), static_cast<std::size_t>(rows) * c_.dim, h16_.data(), fp16_activations_);
  matrices_->classify(out.data(), h16_.data(), rows);
  return out;
}

CpuStepExecutor::CpuStepExecutor(const ModelWeights& w) : config_(w.config) {
  const PackedWeights packed = pack_weights(w);  // CpuOps keeps float copies; the bits can go
  bytes_per_step_ = packed.bytes_per_step();
  ops_ = std::make_unique<CpuOps>(packed);
}

CpuStepExecutor::CpuStepExecutor(const ModelConfig& c, std::unique_ptr<CpuOps> ops, double bytes_per_step)
    : config_(c), ops_(std::move(ops)), bytes_per_step_(bytes_per_step) {}

void CpuStepExecutor::begin_run(stage03::BlockPool& pool) {
  block_size_ = pool.block_size();
  ops_->reserve_cache(pool.num_blocks(), pool.block_size());
}

std::vector<float> CpuStepExecutor::forward(const stage03::StepBatch& step) {
  if (block_size_ == 0) throw Error("CpuStepExecutor: forward before begin_run");
  for (const int p : step.positions)
    if (p < 0 || p >= config_.context_length)
      throw Error("forward: position " + std::to_string(p) + " is outside the context of " +
                  std::to_string(config_.context_length));
  const StepLayout L = layout_step(step, block_size_);
  return run_step(*ops_, L, config_.n_layers);
}

std::vector<OpTime> CpuStepExecutor::profile(const stage03::StepBatch& step) {
  if (block_size_ == 0) throw Error("CpuStepExecutor: profile before begin_run");
  return profile_step(*ops_, layout_step(step, block_size_), config_.n_layers);
}

}  // namespace llm::stage04
