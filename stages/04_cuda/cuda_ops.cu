// cuda_ops.cu: the operations of one step (step_recipe.h) on the GPU, with the kernels of
// kernels/cuda. Each member function below is the device twin of the CpuOps function of the same
// name (cpu_ops.cpp): read them side by side. Where CpuOps loops over rows on the host, CudaOps
// queues one kernel on its stream and returns at once; the host learns nothing about the values
// until logits() copies them back, so the host stays ahead of the device and the launches of the
// next operations overlap with the work of the current ones.
//
// What runs where:
//   host    checks the step (token ids, KV slots, block tables) where a bad value can still be
//           reported as an llm::Error, writes the step's int arrays into pinned memory, queues
//   device  everything else: embedding, norms, matmuls, RoPE + cache write, attention, SwiGLU,
//           the classifier
// A matmul of at most 8 rows (a decode step of a small batch) reads every weight once to do
// little arithmetic: it goes to the GEMV kernel, which reads W at the copy bandwidth. More rows
// (prefill) go to cuBLAS on tensor cores. o_proj and down add into the residual stream in the
// epilogue (accumulate), so the residual add costs no kernel of its own.
//
// Only one small kernel lives here, because it belongs to this stage's data layout rather than
// to the kernel library: the gather of the logit rows before the final norm. The gather of a
// prompt's K/V from the paged cache into the contiguous rows the prefill kernel reads (a copy of
// fp16, or stage 05's int8/fp8 codes dequantized) is kernels/cuda/kv_gather.cuh. Synthetic
// weights are filled on the device by kernels/cuda/random_fill.cuh.
#include "cuda_ops.cuh"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "kernels/cuda/attention_decode/attention_decode.cuh"
#include "kernels/cuda/attention_prefill/attention_prefill.cuh"
#include "kernels/cuda/embedding.cuh"
#include "kernels/cuda/gemv/gemv.cuh"
#include "kernels/cuda/kv_gather.cuh"
#include "kernels/cuda/random_fill.cuh"
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/cuda/rope_kv.cuh"
#include "kernels/cuda/swiglu.cuh"

namespace llm::stage04 {

namespace {

using std::size_t;

// ---- synthetic weights (filled by kernels/cuda/random_fill.cuh) ----

/// The seed of synthetic tensor `index`: the model seed mixed on the host (splitmix64 again).
std::uint64_t tensor_seed(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr float kSyntheticScale = 0.02f;

// ---- gathers ----

/// xg[r, :] = x[rows[r], :]: the rows whose logits are wanted, made contiguous for the norm.
__global__ void gather_rows_kernel(float* xg, const float* x, const int* rows, int dim) {
  const float* src = x + static_cast<size_t>(rows[blockIdx.x]) * dim;
  float* dst = xg + static_cast<size_t>(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

// ---- sizes ----

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

/// Ints between the starts of the per-row metadata arrays: the token budget T rounded up to a
/// multiple of 4, so that every array, and the tables after them, starts 16-byte aligned (the
/// decode kernel's validate() requires it of seq_lens and block_table; T = 5 would put seq_lens
/// at byte 60).
size_t meta_stride(size_t T) { return ceil_div(T, 4) * 4; }

/// Columns of the device block tables: enough for a sequence of the whole context, but never
/// more than the pool has blocks.
int table_columns(const ModelConfig& c, int block_size, long long max_blocks) {
  long long cols = static_cast<long long>(ceil_div(static_cast<size_t>(c.context_length), static_cast<size_t>(block_size)));
  if (max_blocks > 0) cols = std::min(cols, max_blocks);
  return static_cast<int>(std::max(1LL, cols));
}

/// The longest sequence the pool can hold: the context, or fewer when the pool is smaller.
int longest_sequence(const ModelConfig& c, int block_size, long long max_blocks) {
  long long n = c.context_length;
  if (max_blocks > 0) n = std::min(n, max_blocks * block_size);
  return static_cast<int>(std::max(1LL, n));
}

/// Workspace bytes of the split-KV decode kernel for any batch of 1 .. max_batch sequences up
/// to max_len keys. The split count grows with the length and shrinks with the batch, so the
/// worst case is at max_len, and from the first batch that gets a single split (which needs no
/// workspace) on, larger batches need none either.
size_t decode_workspace_need(const ModelConfig& c, int max_batch, int max_len, int block_size, int table_cols) {
  size_t need = 0;
  for (int b = 1; b <= max_batch; ++b) {
    llm::cuda::DecodeAttentionArgs a;
    a.batch = b;
    a.n_heads = c.n_heads;
    a.n_kv_heads = c.n_kv_heads;
    a.head_dim = c.head_dim;
    a.block_size = block_size;
    a.num_blocks = 1;
    a.max_blocks_per_seq = table_cols;
    a.max_seq_len = max_len;
    a.num_splits = 0;
    if (llm::cuda::decode_num_splits(a) <= 1) break;
    need = std::max(need, llm::cuda::decode_workspace_bytes(a));
  }
  return need;
}

/// Activations and logit buffers for T rows (R logit rows per turn), in bytes.
size_t activation_bytes(const ModelConfig& c, size_t T, size_t R) {
  const size_t dim = static_cast<size_t>(c.dim), qd = static_cast<size_t>(c.q_dim()),
               kvd = static_cast<size_t>(c.kv_dim()), ff = static_cast<size_t>(c.hidden_dim),
               vocab = static_cast<size_t>(c.vocab_size);
  const size_t fp32 = T * (dim + qd + 2 * kvd + 2 * ff) + R * (dim + vocab);  // x, qkv, gu; xg, logits
  const size_t fp16 = T * (dim + 2 * qd + ff) + R * dim;                      // h16, q16, att16, f16; hl16
  return 4 * fp32 + 2 * fp16;
}

int logit_turn_rows(const CudaOpsLimits& l) { return std::clamp(l.max_running, 1, l.token_budget); }

void check_limits(const CudaOpsLimits& l) {
  if (l.token_budget < 1)
    throw Error("stage 04 cuda: token budget " + std::to_string(l.token_budget) + ": must be at least 1");
  if (l.max_running < 1)
    throw Error("stage 04 cuda: max running " + std::to_string(l.max_running) + ": must be at least 1");
  if (l.kv_cache == cpu::KvCodeType::f32)
    throw Error("stage 04 cuda: --kv-cache f32: the CUDA backend keeps the K/V cache in f16, int8 or fp8");
}

/// The kernels' name for a 1-byte K/V code type.
llm::cuda::KvCode kv_code(cpu::KvCodeType t) {
  return t == cpu::KvCodeType::int8 ? llm::cuda::KvCode::int8 : llm::cuda::KvCode::fp8_e4m3;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction: weights, activations.

CudaOps::CudaOps(const ModelConfig& c, const CudaOpsLimits& limits) : c_(c), limits_(limits) {
  check_limits(limits_);
  logit_cap_ = logit_turn_rows(limits_);
}

CudaOps::CudaOps(const PackedWeights& w, const CudaOpsLimits& limits) : CudaOps(w.config, limits) {
  const size_t dim = static_cast<size_t>(c_.dim), qkv = static_cast<size_t>(c_.q_dim() + 2 * c_.kv_dim()),
               qd = static_cast<size_t>(c_.q_dim()), ff = static_cast<size_t>(c_.hidden_dim),
               vocab = static_cast<size_t>(c_.vocab_size);
  if (static_cast<int>(w.layers.size()) != c_.n_layers)
    throw Error("stage 04 cuda: the weights hold " + std::to_string(w.layers.size()) + " layers, the config says " +
                std::to_string(c_.n_layers));
  embed_ = upload_half(w.embed, vocab * dim, "token embedding");
  classifier_ = w.classifier.empty() ? embed_ : upload_half(w.classifier, vocab * dim, "classifier");
  output_norm_ = upload_float(w.output_norm, dim, "output norm");
  for (const PackedLayer& L : w.layers) {
    Layer d;
    d.attn_norm = upload_float(L.attn_norm, dim, "attention norm");
    d.ffn_norm = upload_float(L.ffn_norm, dim, "ffn norm");
    d.wqkv = upload_half(L.wqkv, qkv * dim, "wqkv");
    d.wo = upload_half(L.wo, dim * qd, "wo");
    d.w13 = upload_half(L.w13, 2 * ff * dim, "w13");
    d.w2 = upload_half(L.w2, dim * ff, "w2");
    layers_.push_back(d);
  }
  allocate_activations();
  // cudaMemcpy from pageable memory may return before its DMA lands, and it runs on the legacy
  // stream, which our non-blocking stream does not wait for: wait for the device once here.
  CUDA_CHECK(cudaDeviceSynchronize());
}

CudaOps::CudaOps(const ModelWeights& w, std::unique_ptr<CudaMatrices> matrices, const CudaOpsLimits& limits)
    : CudaOps(w.config, limits) {
  if (!matrices) throw Error("stage 04 cuda: CudaOps without matrices");
  if (static_cast<int>(w.layers.size()) != c_.n_layers)
    throw Error("stage 04 cuda: the weights hold " + std::to_string(w.layers.size()) + " layers, the config says " +
                std::to_string(c_.n_layers));
  const size_t dim = static_cast<size_t>(c_.dim);
  matrices_ = std::move(matrices);
  embed_ = matrices_->embed_table();
  output_norm_ = upload_float(w.output_norm, dim, "output norm");
  for (const LayerWeights& L : w.layers) {
    Layer d;  // the matrices stay null: project() goes to matrices_
    d.attn_norm = upload_float(L.attn_norm, dim, "attention norm");
    d.ffn_norm = upload_float(L.ffn_norm, dim, "ffn norm");
    layers_.push_back(d);
  }
  allocate_activations();
  CUDA_CHECK(cudaDeviceSynchronize());  // as above: the pageable uploads have landed
}

CudaOps::CudaOps(const ModelConfig& c, std::uint64_t seed, const CudaOpsLimits& limits) : CudaOps(c, limits) {
  c_.validate("synthetic model");
  const size_t dim = static_cast<size_t>(c_.dim), qkv = static_cast<size_t>(c_.q_dim() + 2 * c_.kv_dim()),
               qd = static_cast<size_t>(c_.q_dim()), ff = static_cast<size_t>(c_.hidden_dim),
               vocab = static_cast<size_t>(c_.vocab_size);
  std::uint64_t index = 0;
  embed_ = random_half(vocab * dim, tensor_seed(seed, index++));
  classifier_ = random_half(vocab * dim, tensor_seed(seed, index++));
  output_norm_ = ones(dim);
  for (int l = 0; l < c_.n_layers; ++l) {
    Layer d;
    d.attn_norm = ones(dim);
    d.ffn_norm = ones(dim);
    d.wqkv = random_half(qkv * dim, tensor_seed(seed, index++));
    d.wo = random_half(dim * qd, tensor_seed(seed, index++));
    d.w13 = random_half(2 * ff * dim, tensor_seed(seed, index++));
    d.w2 = random_half(dim * ff, tensor_seed(seed, index++));
    layers_.push_back(d);
  }
  allocate_activations();
  CUDA_CHECK(cudaStreamSynchronize(stream()));
}

CudaOps::~CudaOps() {
  // Let queued work finish before the members free the buffers it uses (errors cannot be
  // reported from a destructor; the next CUDA call would see a sticky one).
  (void)cudaStreamSynchronize(stream());
}

const __half* CudaOps::upload_half(const std::vector<std::uint16_t>& bits, size_t expect, const char* what) {
  if (bits.size() != expect)
    throw Error(std::string("stage 04 cuda: ") + what + " has " + std::to_string(bits.size()) + " values, the config needs " +
                std::to_string(expect));
  cuda::DeviceBuffer<__half> d(expect);
  CUDA_CHECK(cudaMemcpy(d.get(), bits.data(), expect * sizeof(std::uint16_t), cudaMemcpyHostToDevice));
  half_store_.push_back(std::move(d));
  return half_store_.back().get();
}

const float* CudaOps::upload_float(const std::vector<float>& v, size_t expect, const char* what) {
  if (v.size() != expect)
    throw Error(std::string("stage 04 cuda: ") + what + " has " + std::to_string(v.size()) + " values, the config needs " +
                std::to_string(expect));
  cuda::DeviceBuffer<float> d(expect);
  CUDA_CHECK(cudaMemcpy(d.get(), v.data(), expect * sizeof(float), cudaMemcpyHostToDevice));
  float_store_.push_back(std::move(d));
  return float_store_.back().get();
}

__half* CudaOps::random_half(size_t count, std::uint64_t seed) {
  cuda::DeviceBuffer<__half> d(count);
  cuda::fill_uniform_half(d.get(), count, seed, kSyntheticScale, stream());
  half_store_.push_back(std::move(d));
  return half_store_.back().get();
}

float* CudaOps::ones(size_t count) {
  cuda::DeviceBuffer<float> d(count);
  cuda::fill_constant(d.get(), count, 1.0f, stream());
  float_store_.push_back(std::move(d));
  return float_store_.back().get();
}

void CudaOps::allocate_activations() {
  const size_t T = static_cast<size_t>(limits_.token_budget), R = static_cast<size_t>(logit_cap_);
  const size_t dim = static_cast<size_t>(c_.dim), qd = static_cast<size_t>(c_.q_dim()),
               kvd = static_cast<size_t>(c_.kv_dim()), ff = static_cast<size_t>(c_.hidden_dim),
               vocab = static_cast<size_t>(c_.vocab_size);
  x_ = cuda::DeviceBuffer<float>(T * dim);
  h16_ = cuda::DeviceBuffer<__half>(T * dim);
  qkv_ = cuda::DeviceBuffer<float>(T * (qd + 2 * kvd));
  q16_ = cuda::DeviceBuffer<__half>(T * qd);
  att16_ = cuda::DeviceBuffer<__half>(T * qd);
  gu_ = cuda::DeviceBuffer<float>(T * 2 * ff);
  f16_ = cuda::DeviceBuffer<__half>(T * ff);
  xg_ = cuda::DeviceBuffer<float>(R * dim);
  hl16_ = cuda::DeviceBuffer<__half>(R * dim);
  logits_ = cuda::DeviceBuffer<float>(R * vocab);
  host_logits_ = PinnedArray<float>(R * vocab);
}

size_t CudaOps::workspace_bytes(const ModelConfig& c, const CudaOpsLimits& limits, int block_size, int max_blocks) {
  check_limits(limits);
  if (block_size < 1) throw Error("stage 04 cuda: block size " + std::to_string(block_size) + ": must be at least 1");
  const size_t T = static_cast<size_t>(limits.token_budget);
  const int cols = table_columns(c, block_size, max_blocks);
  const int longest = longest_sequence(c, block_size, max_blocks);
  const size_t meta = (5 * meta_stride(T) + T * static_cast<size_t>(cols)) * sizeof(int);
  const size_t gather = 2 * static_cast<size_t>(longest) * static_cast<size_t>(c.kv_dim()) * sizeof(__half);
  const size_t decode = decode_workspace_need(c, limits.token_budget, longest, block_size, cols);
  return activation_bytes(c, T, static_cast<size_t>(logit_turn_rows(limits))) + meta + gather + decode;
}

// ---------------------------------------------------------------------------------------------
// The KV cache and the pool-dependent buffers.

bool CudaOps::reserve_cache(int num_blocks, int block_size) {
  if (num_blocks < 1 || block_size < 1)
    throw Error("stage 04 cuda: a KV pool of " + std::to_string(num_blocks) + " blocks of " + std::to_string(block_size) +
                " tokens (both must be at least 1)");
  if (static_cast<long long>(num_blocks) * block_size > 0x7fffffffLL)
    throw Error("stage 04 cuda: " + std::to_string(num_blocks) + " blocks of " + std::to_string(block_size) +
                " tokens: more KV slots than an int32 slot index can address");
  if (num_blocks == num_blocks_ && block_size == block_size_) return false;

  CUDA_CHECK(cudaStreamSynchronize(stream()));
  // Free the old buffers first: the new cache may need the memory they hold.
  k_cache_ = {}, v_cache_ = {}, k_scales_ = {}, v_scales_ = {}, gather_k_ = {}, gather_v_ = {}, meta_ = {}, hmeta_ = {},
  decode_ws_ = {};
  num_blocks_ = block_size_ = 0;
  uploaded_ = false;

  const size_t slots = static_cast<size_t>(num_blocks) * block_size, kvd = static_cast<size_t>(c_.kv_dim());
  const size_t cache = static_cast<size_t>(c_.n_layers) * slots * kvd * cpu::kv_code_bytes(limits_.kv_cache);
  k_cache_ = cuda::DeviceBuffer<std::uint8_t>(cache);
  v_cache_ = cuda::DeviceBuffer<std::uint8_t>(cache);
  // Zero, like CpuOps (no kernel reads a slot before it is written; this keeps stale runs out).
  CUDA_CHECK(cudaMemsetAsync(k_cache_.get(), 0, cache, stream()));
  CUDA_CHECK(cudaMemsetAsync(v_cache_.get(), 0, cache, stream()));
  if (quantized_kv()) {
    const size_t scales = static_cast<size_t>(c_.n_layers) * slots * static_cast<size_t>(c_.n_kv_heads);
    k_scales_ = cuda::DeviceBuffer<float>(scales);
    v_scales_ = cuda::DeviceBuffer<float>(scales);
    CUDA_CHECK(cudaMemsetAsync(k_scales_.get(), 0, scales * sizeof(float), stream()));
    CUDA_CHECK(cudaMemsetAsync(v_scales_.get(), 0, scales * sizeof(float), stream()));
  }

  table_cols_ = table_columns(c_, block_size, num_blocks);
  gather_cap_ = longest_sequence(c_, block_size, num_blocks);
  gather_k_ = cuda::DeviceBuffer<__half>(static_cast<size_t>(gather_cap_) * kvd);
  gather_v_ = cuda::DeviceBuffer<__half>(static_cast<size_t>(gather_cap_) * kvd);

  const size_t T = static_cast<size_t>(limits_.token_budget), Ts = meta_stride(T);
  const size_t meta = 5 * Ts + T * static_cast<size_t>(table_cols_);
  meta_ = cuda::DeviceBuffer<int>(meta);
  hmeta_ = PinnedArray<int>(meta);
  std::memset(hmeta_.get(), 0, meta * sizeof(int));
  d_tokens_ = meta_.get();
  d_positions_ = d_tokens_ + Ts;
  d_slots_ = d_positions_ + Ts;
  d_seq_lens_ = d_slots_ + Ts;
  d_logit_rows_ = d_seq_lens_ + Ts;
  d_tables_ = d_logit_rows_ + Ts;

  decode_ws_bytes_ = decode_workspace_need(c_, limits_.token_budget, gather_cap_, block_size, table_cols_);
  decode_ws_ = cuda::DeviceBuffer<float>(ceil_div(decode_ws_bytes_, sizeof(float)));

  slots_per_layer_ = slots;
  num_blocks_ = num_blocks;
  block_size_ = block_size;
  CUDA_CHECK(cudaStreamSynchronize(stream()));
  return true;
}

std::uint8_t* CudaOps::k_codes(int layer) const {
  return k_cache_.get() + static_cast<size_t>(layer) * slots_per_layer_ * static_cast<size_t>(c_.kv_dim()) *
                              cpu::kv_code_bytes(limits_.kv_cache);
}

std::uint8_t* CudaOps::v_codes(int layer) const {
  return v_cache_.get() + static_cast<size_t>(layer) * slots_per_layer_ * static_cast<size_t>(c_.kv_dim()) *
                              cpu::kv_code_bytes(limits_.kv_cache);
}

__half* CudaOps::k_cache(int layer) const {
  return reinterpret_cast<__half*>(k_codes(layer));
}

__half* CudaOps::v_cache(int layer) const {
  return reinterpret_cast<__half*>(v_codes(layer));
}

float* CudaOps::k_scales(int layer) const {
  return k_scales_.get() + static_cast<size_t>(layer) * slots_per_layer_ * static_cast<size_t>(c_.n_kv_heads);
}

float* CudaOps::v_scales(int layer) const {
  return v_scales_.get() + static_cast<size_t>(layer) * slots_per_layer_ * static_cast<size_t>(c_.n_kv_heads);
}

// ---------------------------------------------------------------------------------------------
// The step's metadata: checked on the host, copied to fixed device addresses.

void CudaOps::upload(const StepLayout& L, bool for_graph) {
  if (num_blocks_ == 0) throw Error("stage 04 cuda: a step before the KV cache was reserved (begin_run)");
  const int T = limits_.token_budget;
  if (L.n > T)
    throw Error("stage 04 cuda: a step of " + std::to_string(L.n) + " rows exceeds the token budget of " +
                std::to_string(T) + " rows the device buffers were sized for");
  const int rows = static_cast<int>(L.logit_rows.size());
  if (rows > T) throw Error("stage 04 cuda: " + std::to_string(rows) + " logit rows in a step of at most " + std::to_string(T));
  const int table_rows = L.n_decode + static_cast<int>(L.chunks.size());
  const int slots = num_blocks_ * block_size_;
  for (int r = 0; r < L.n; ++r) {
    const int t = L.tokens[static_cast<size_t>(r)];
    if (t < 0 || t >= c_.vocab_size)
      throw Error("forward: token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(c_.vocab_size));
    const int s = L.slots[static_cast<size_t>(r)];
    if (s < 0 || s >= slots)
      throw Error("stage 04: KV slot " + std::to_string(s) + " is outside the cache of " + std::to_string(slots) + " slots");
  }
  for (const int r : L.logit_rows)
    if (r < 0 || r >= L.n) throw Error("stage 04 cuda: logit row " + std::to_string(r) + " outside a step of " + std::to_string(L.n));

  // Table stride: fixed (the widest table the pool allows) for a graph, which bakes it in; the
  // step's own width otherwise (fewer bytes to copy). Entries past a row's length are never read.
  const int stride = for_graph ? table_cols_ : std::min(std::max(L.max_blocks, 1), table_cols_);
  const int copy_cols = std::min(L.max_blocks, stride);
  // The blocks each table row needs: its sequence's keys 0 .. len-1. They must fit the stride and
  // name blocks of the pool (the kernels would read out of bounds otherwise).
  auto check_table = [&](int row, int len) {
    const int need = static_cast<int>(ceil_div(static_cast<size_t>(len), static_cast<size_t>(block_size_)));
    if (need > stride)
      throw Error("stage 04 cuda: a sequence of " + std::to_string(len) + " tokens needs " + std::to_string(need) +
                  " blocks; the device tables hold " + std::to_string(stride));
    const int* t = &L.tables[static_cast<size_t>(row) * static_cast<size_t>(L.max_blocks)];
    for (int j = 0; j < need; ++j)
      if (t[j] < 0 || t[j] >= num_blocks_)
        throw Error("stage 04 cuda: block " + std::to_string(t[j]) + " is outside the pool of " + std::to_string(num_blocks_) +
                    " blocks");
  };
  for (int d = 0; d < L.n_decode; ++d) check_table(d, L.seq_lens[static_cast<size_t>(d)]);
  for (const PrefillChunk& ch : L.chunks) {
    if (ch.start + ch.count > gather_cap_)
      throw Error("stage 04 cuda: a prompt chunk reaching position " + std::to_string(ch.start + ch.count) +
                  " exceeds the longest sequence the device buffers hold (" + std::to_string(gather_cap_) + ")");
    check_table(ch.table, ch.start + ch.count);
  }

  // The previous step's copy must have read the staging memory before it is overwritten (a
  // no-op wait in the usual case: logits() already waited for the stream).
  CUDA_CHECK(cudaStreamSynchronize(stream()));
  int* h = hmeta_.get();
  const size_t n = static_cast<size_t>(L.n), Tz = meta_stride(static_cast<size_t>(T));
  std::copy_n(L.tokens.data(), n, h);
  std::copy_n(L.positions.data(), n, h + Tz);
  std::copy_n(L.slots.data(), n, h + 2 * Tz);
  std::copy_n(L.seq_lens.data(), static_cast<size_t>(L.n_decode), h + 3 * Tz);
  std::copy_n(L.logit_rows.data(), static_cast<size_t>(rows), h + 4 * Tz);
  int* tables = h + 5 * Tz;
  for (int r = 0; r < table_rows; ++r) {
    int* dst = tables + static_cast<size_t>(r) * stride;
    std::copy_n(&L.tables[static_cast<size_t>(r) * static_cast<size_t>(L.max_blocks)], copy_cols, dst);
    std::fill(dst + copy_cols, dst + stride, 0);
  }
  // One copy: the five per-row arrays (fixed offsets) and the used rows of the tables.
  const size_t ints = 5 * Tz + static_cast<size_t>(table_rows) * static_cast<size_t>(stride);
  CUDA_CHECK(cudaMemcpyAsync(meta_.get(), h, ints * sizeof(int), cudaMemcpyHostToDevice, stream()));

  step_.table_stride = stride;
  if (for_graph) {
    // Bounded by the longest possible sequence, with the split count that bound gives for this
    // batch: the same launch serves every later step of this batch size as sequences grow. Splits
    // past a sequence's end get no keys, and the kernel's merge skips them.
    step_.decode_max_seq_len = std::min(gather_cap_, stride * block_size_);
    llm::cuda::DecodeAttentionArgs a;
    a.batch = std::max(1, L.n_decode);
    a.n_heads = c_.n_heads;
    a.n_kv_heads = c_.n_kv_heads;
    a.head_dim = c_.head_dim;
    a.block_size = block_size_;
    a.num_blocks = num_blocks_;
    a.max_blocks_per_seq = stride;
    a.max_seq_len = step_.decode_max_seq_len;
    a.num_splits = 0;
    step_.decode_splits = llm::cuda::decode_num_splits(a);
  } else {
    step_.decode_max_seq_len = L.max_seq_len;
    step_.decode_splits = 0;  // the kernel chooses for this step's longest sequence
  }
  uploaded_ = true;
}

void CudaOps::upload_for_graph(const StepLayout& L) { upload(L, true); }

bool CudaOps::graph_capable(int n, int rows) const {
  const bool widths = c_.dim % 8 == 0 && c_.q_dim() % 8 == 0 && c_.hidden_dim % 8 == 0;
  return widths && n >= 1 && n <= llm::cuda::kGemvMaxRows && n <= limits_.token_budget && rows >= 0 && rows <= logit_cap_ &&
         (!matrices_ || (matrices_->graph_capable(n) && matrices_->graph_capable(rows)));
}

// ---------------------------------------------------------------------------------------------
// The operations.

void fp16_matmul(cuda::CublasGemm& gemm, float* y, const __half* x, const __half* W, int n, int in, int out,
                 bool accumulate, cudaStream_t stream) {
  if (n == 0) return;
  if (n <= llm::cuda::kGemvMaxRows && in % 8 == 0) {
    llm::cuda::GemvArgs a;
    a.W = W;
    a.x = x;
    a.y = y;
    a.n = n;
    a.in = in;
    a.out = out;
    a.accumulate = accumulate;
    llm::cuda::gemv_02_warp_vectorized(a, stream);
  } else {
    gemm.run(y, x, W, n, in, out, accumulate, stream);
  }
}

void CudaOps::project(float* y, const __half* x, int layer, CudaMatrices::Matrix m, int n, bool accumulate) {
  if (n == 0) return;
  if (matrices_) return matrices_->matmul(y, x, n, layer, m, accumulate, gemm_, stream());
  const Layer& d = layers_[static_cast<size_t>(layer)];
  const int qkv = c_.q_dim() + 2 * c_.kv_dim();
  switch (m) {
    case CudaMatrices::Matrix::wqkv:
      return fp16_matmul(gemm_, y, x, d.wqkv, n, c_.dim, qkv, accumulate, stream());
    case CudaMatrices::Matrix::wo:
      return fp16_matmul(gemm_, y, x, d.wo, n, c_.q_dim(), c_.dim, accumulate, stream());
    case CudaMatrices::Matrix::w13:
      return fp16_matmul(gemm_, y, x, d.w13, n, c_.dim, 2 * c_.hidden_dim, accumulate, stream());
    case CudaMatrices::Matrix::w2:
      return fp16_matmul(gemm_, y, x, d.w2, n, c_.hidden_dim, c_.dim, accumulate, stream());
  }
}

void CudaOps::begin_step(const StepLayout& L) {
  if (!graph_body_) {
    upload(L, false);
  } else if (!uploaded_) {
    throw Error("stage 04 cuda: graph capture without the step's metadata (call upload_for_graph first)");
  }
}

void CudaOps::embed(const StepLayout& L) {
  llm::cuda::embedding(x_.get(), embed_, d_tokens_, L.n, c_.dim, stream());
}

void CudaOps::attention_norm(int layer, const StepLayout& L) {
  llm::cuda::add_rmsnorm_to_half(h16_.get(), x_.get(), nullptr, layers_[static_cast<size_t>(layer)].attn_norm, L.n, c_.dim,
                                 c_.norm_eps, stream());
}

void CudaOps::qkv(int layer, const StepLayout& L) {
  project(qkv_.get(), h16_.get(), layer, CudaMatrices::Matrix::wqkv, L.n, false);
}

void CudaOps::rope_store_kv(int layer, const StepLayout& L) {
  // The step's rows and the rotation, the same for either cache.
  const auto step = [&](llm::cuda::RopeStepArgs& a) {
    a.qkv = qkv_.get();
    a.positions = d_positions_;
    a.slots = d_slots_;
    a.q_out = q16_.get();
    a.n = L.n;
    a.n_heads = c_.n_heads;
    a.n_kv_heads = c_.n_kv_heads;
    a.head_dim = c_.head_dim;
    a.theta = c_.rope_theta;
  };
  if (quantized_kv()) {  // stage 05: each (token, KV head) row quantized as it is appended
    llm::cuda::RopeStoreKvQuantArgs a;
    step(a);
    a.k_codes = k_codes(layer);
    a.v_codes = v_codes(layer);
    a.k_scales = k_scales(layer);
    a.v_scales = v_scales(layer);
    a.code = kv_code(limits_.kv_cache);
    return llm::cuda::rope_store_kv_quant(a, stream());
  }
  llm::cuda::RopeStoreKvArgs a;
  step(a);
  a.k_cache = k_cache(layer);
  a.v_cache = v_cache(layer);
  llm::cuda::rope_store_kv(a, stream());
}

void CudaOps::attention(int layer, const StepLayout& L) {
  const size_t qd = static_cast<size_t>(c_.q_dim());
  // Decode rows (device rows 0 .. n_decode-1): one split-KV launch through their block tables.
  if (L.n_decode > 0) {
    llm::cuda::DecodeAttentionArgs a;
    a.q = q16_.get();
    a.out = att16_.get();
    a.k_cache = k_cache(layer);
    a.v_cache = v_cache(layer);
    a.block_table = d_tables_;
    a.seq_lens = d_seq_lens_;
    a.batch = L.n_decode;
    a.n_heads = c_.n_heads;
    a.n_kv_heads = c_.n_kv_heads;
    a.head_dim = c_.head_dim;
    a.block_size = block_size_;
    a.num_blocks = num_blocks_;
    a.max_blocks_per_seq = step_.table_stride;
    a.max_seq_len = std::max(1, step_.decode_max_seq_len);
    a.num_splits = step_.decode_splits;
    a.workspace = decode_ws_.get();
    if (llm::cuda::decode_num_splits(a) > 1 && llm::cuda::decode_workspace_bytes(a) > decode_ws_bytes_)
      throw Error("stage 04 cuda: decode attention needs " + std::to_string(llm::cuda::decode_workspace_bytes(a)) +
                  " bytes of workspace, " + std::to_string(decode_ws_bytes_) + " were reserved");
    if (quantized_kv()) {  // the same splits and workspace over the codes (03_split_kv_quant.cu)
      llm::cuda::QuantDecodeAttentionArgs qa;
      qa.base = a;
      qa.base.k_cache = qa.base.v_cache = nullptr;
      qa.code = kv_code(limits_.kv_cache);
      qa.k_codes = k_codes(layer);
      qa.v_codes = v_codes(layer);
      qa.k_scales = k_scales(layer);
      qa.v_scales = v_scales(layer);
      llm::cuda::attention_decode_03_split_kv_quant(qa, stream());
    } else {
      llm::cuda::attention_decode_02_split_kv(a, stream());
    }
  }
  // Prompt chunks: gather the sequence's K/V (positions 0 .. start+count-1) into contiguous fp16
  // rows (dequantized from an int8/fp8 cache), then causal attention of the chunk's queries over
  // them, one chunk at a time (the gather buffers are reused; the stream keeps the order).
  for (const PrefillChunk& ch : L.chunks) {
    const int kv_len = ch.start + ch.count;
    llm::cuda::GatherKvArgs g;
    g.k_out = gather_k_.get();
    g.v_out = gather_v_.get();
    g.table = d_tables_ + static_cast<size_t>(ch.table) * static_cast<size_t>(step_.table_stride);
    g.len = kv_len;
    g.block_size = block_size_;
    g.n_kv_heads = c_.n_kv_heads;
    g.head_dim = c_.head_dim;
    if (quantized_kv()) {
      g.k_codes = k_codes(layer);
      g.v_codes = v_codes(layer);
      g.k_scales = k_scales(layer);
      g.v_scales = v_scales(layer);
      g.code = kv_code(limits_.kv_cache);
      llm::cuda::gather_kv_dequant(g, stream());
    } else {
      g.k_cache = k_cache(layer);
      g.v_cache = v_cache(layer);
      llm::cuda::gather_kv(g, stream());
    }
    llm::cuda::PrefillAttentionArgs p;
    p.q = q16_.get() + static_cast<size_t>(ch.row_begin) * qd;
    p.k = gather_k_.get();
    p.v = gather_v_.get();
    p.out = att16_.get() + static_cast<size_t>(ch.row_begin) * qd;
    p.batch = 1;
    p.q_len = ch.count;
    p.kv_len = kv_len;
    p.n_heads = c_.n_heads;
    p.n_kv_heads = c_.n_kv_heads;
    p.head_dim = c_.head_dim;
    p.causal = true;
    llm::cuda::attention_prefill_03_tensor_cores(p, stream());
  }
}

void CudaOps::o_proj(int layer, const StepLayout& L) {
  project(x_.get(), att16_.get(), layer, CudaMatrices::Matrix::wo, L.n, true);
}

void CudaOps::ffn_norm(int layer, const StepLayout& L) {
  llm::cuda::add_rmsnorm_to_half(h16_.get(), x_.get(), nullptr, layers_[static_cast<size_t>(layer)].ffn_norm, L.n, c_.dim,
                                 c_.norm_eps, stream());
}

void CudaOps::gate_up(int layer, const StepLayout& L) {
  project(gu_.get(), h16_.get(), layer, CudaMatrices::Matrix::w13, L.n, false);
}

void CudaOps::swiglu(const StepLayout& L) { llm::cuda::swiglu_to_half(f16_.get(), gu_.get(), L.n, c_.hidden_dim, stream()); }

void CudaOps::down(int layer, const StepLayout& L) {
  project(x_.get(), f16_.get(), layer, CudaMatrices::Matrix::w2, L.n, true);
}

void CudaOps::logits_device(int first, int rows) {
  if (rows == 0) return;
  gather_rows_kernel<<<rows, 256, 0, stream()>>>(xg_.get(), x_.get(), d_logit_rows_ + first, c_.dim);
  CUDA_CHECK(cudaGetLastError());
  llm::cuda::add_rmsnorm_to_half(hl16_.get(), xg_.get(), nullptr, output_norm_, rows, c_.dim, c_.norm_eps, stream());
  if (matrices_)
    matrices_->classify(logits_.get(), hl16_.get(), rows, gemm_, stream());
  else
    fp16_matmul(gemm_, logits_.get(), hl16_.get(), classifier_, rows, c_.dim, c_.vocab_size, false, stream());
}

std::vector<float> CudaOps::logits(const StepLayout& L) {
  const int rows = static_cast<int>(L.logit_rows.size());
  if (graph_body_) {  // inside a capture: the download comes after the replay
    if (rows > logit_cap_) throw Error("stage 04 cuda: too many logit rows for a graph step");
    logits_device(0, rows);
    return {};
  }
  const size_t vocab = static_cast<size_t>(c_.vocab_size);
  std::vector<float> out(static_cast<size_t>(rows) * vocab);
  // In turns of at most R rows (the logits buffer), each copied back through pinned memory.
  for (int first = 0; first < rows; first += logit_cap_) {
    const int k = std::min(logit_cap_, rows - first);
    logits_device(first, k);
    CUDA_CHECK(cudaMemcpyAsync(host_logits_.get(), logits_.get(), static_cast<size_t>(k) * vocab * sizeof(float),
                               cudaMemcpyDeviceToHost, stream()));
    CUDA_CHECK(cudaStreamSynchronize(stream()));
    std::memcpy(out.data() + static_cast<size_t>(first) * vocab, host_logits_.get(), static_cast<size_t>(k) * vocab * sizeof(float));
  }
  // Also surfaces any error of the step's kernels here, where the step can still report it.
  CUDA_CHECK(cudaStreamSynchronize(stream()));
  uploaded_ = false;
  return out;
}

std::vector<float> CudaOps::download_logits(int rows) {
  if (rows < 0 || rows > logit_cap_)
    throw Error("stage 04 cuda: download of " + std::to_string(rows) + " logit rows, the buffer holds " + std::to_string(logit_cap_));
  const size_t count = static_cast<size_t>(rows) * static_cast<size_t>(c_.vocab_size);
  std::vector<float> out(count);
  if (count > 0)
    CUDA_CHECK(cudaMemcpyAsync(host_logits_.get(), logits_.get(), count * sizeof(float), cudaMemcpyDeviceToHost, stream()));
  CUDA_CHECK(cudaStreamSynchronize(stream()));
  if (count > 0) std::memcpy(out.data(), host_logits_.get(), count * sizeof(float));
  uploaded_ = false;
  return out;
}

}  // namespace llm::stage04
