// 01_naive.cu: prefill attention as the definition reads, in three kernels.
//
//   1. scores:  S[b,h,i,j] = (q_i . k_j) / sqrt(head_dim), -inf where the causal mask hides j
//   2. softmax: each row of S in place: P = exp(S - max) / sum
//   3. output:  out[b,i,h,:] = sum_j P[b,h,i,j] v_j   (fp32 accumulation, rounded to fp16 once)
//
// One thread per score and one thread per output element; every operand comes from global
// memory. This is the baseline the later versions are measured against, and it is slow for two
// reasons that 02 and 03 remove:
//   - memory: the fp32 score matrix is batch * n_heads * q_len * kv_len floats (2 GiB at
//     16 x 1024 tokens with 32 heads), written by 1, read and written by 2, read by 3. That
//     traffic grows with the *square* of the sequence length, far more than Q, K, V and out.
//   - reuse: every score thread re-reads a whole key row, and every output thread a whole column
//     of V, from global memory (the caches catch some of it). Nothing is shared on chip.
//
// Run it:
//   build/kernels/kernel_harness check attention_prefill --version 1
//   build/kernels/kernel_harness bench attention_prefill --version 1
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_prefill/attention_prefill.cuh"
#include "kernels/cuda/check.cuh"

namespace llm::cuda {

namespace {

constexpr int kThreads = 256;
/// Grid-stride kernels launch at most this many blocks; each thread loops over the rest.
constexpr std::size_t kMaxBlocks = std::size_t{1} << 20;

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("attention_prefill: " + what);
}

int grid_for(std::size_t n) {
  return static_cast<int>(std::min((n + kThreads - 1) / kThreads, kMaxBlocks));
}

// ---- kernel 1: scores

/// S: [batch, n_heads, q_len, kv_len] fp32. One thread per score (grid-stride loop).
__global__ void scores_kernel(float* __restrict__ s, const __half* __restrict__ q, const __half* __restrict__ k,
                              int batch, int q_len, int kv_len, int n_heads, int n_kv_heads, int head_dim, bool causal,
                              float scale) {
  const std::size_t total = static_cast<std::size_t>(batch) * n_heads * q_len * kv_len;
  const int group = n_heads / n_kv_heads;  // query heads per kv head
  for (std::size_t idx = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    // idx = ((b * n_heads + h) * q_len + i) * kv_len + j
    const int j = static_cast<int>(idx % kv_len);
    std::size_t t = idx / kv_len;
    const int i = static_cast<int>(t % q_len);
    t /= q_len;
    const int h = static_cast<int>(t % n_heads);
    const int b = static_cast<int>(t / n_heads);
    const int pos = kv_len - q_len + i;  // the query's position in the sequence
    if (causal && j > pos) {
      s[idx] = -INFINITY;  // a future key: its probability will be exactly 0
      continue;
    }
    const __half* qr = q + ((static_cast<std::size_t>(b) * q_len + i) * n_heads + h) * head_dim;
    const __half* kr = k + ((static_cast<std::size_t>(b) * kv_len + j) * n_kv_heads + h / group) * head_dim;
    float dot = 0.0f;
    for (int d = 0; d < head_dim; ++d) dot += __half2float(qr[d]) * __half2float(kr[d]);
    s[idx] = dot * scale;
  }
}

// ---- kernel 2: softmax

/// Reduces `x` over the block with `op` (blockDim.x a multiple of 32, at most 1024); every thread
/// gets the result. `red` holds 32 floats of shared memory.
template <class Op>
__device__ float block_reduce(float x, float* red, Op op) {
  for (int o = 16; o > 0; o /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  __syncthreads();  // `red` may still be read by a previous call
  if (lane == 0) red[warp] = x;
  __syncthreads();
  x = red[0];
  for (int w = 1; w < n_warps; ++w) x = op(x, red[w]);
  return x;
}

/// One block per row of S (one query of one head): P = exp(S - max) / sum, in place.
__global__ void softmax_kernel(float* __restrict__ s, int kv_len) {
  __shared__ float red[32];
  float* row = s + static_cast<std::size_t>(blockIdx.x) * kv_len;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x) m = fmaxf(m, row[j]);
  m = block_reduce(m, red, [](float a, float b) { return fmaxf(a, b); });
  // A row with every key masked cannot happen (query i always sees key 0), but if it did,
  // exp(-inf - -inf) would be NaN: use 0 as the reference so every probability becomes 0.
  const float ref = m == -INFINITY ? 0.0f : m;
  float sum = 0.0f;
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x) {
    const float p = expf(row[j] - ref);
    row[j] = p;
    sum += p;
  }
  sum = block_reduce(sum, red, [](float a, float b) { return a + b; });
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int j = threadIdx.x; j < kv_len; j += blockDim.x) row[j] *= inv;
}

// ---- kernel 3: P V

/// out: [batch, q_len, n_heads, head_dim] fp16. One thread per output element (grid-stride):
/// the weighted sum of one column of V. Consecutive threads take consecutive d, so their V reads
/// are coalesced and their P reads are one broadcast.
__global__ void pv_kernel(__half* __restrict__ out, const float* __restrict__ p, const __half* __restrict__ v,
                          int batch, int q_len, int kv_len, int n_heads, int n_kv_heads, int head_dim, bool causal) {
  const std::size_t total = static_cast<std::size_t>(batch) * q_len * n_heads * head_dim;
  const int group = n_heads / n_kv_heads;
  for (std::size_t idx = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    // idx = ((b * q_len + i) * n_heads + h) * head_dim + d: the layout of out
    const int d = static_cast<int>(idx % head_dim);
    std::size_t t = idx / head_dim;
    const int h = static_cast<int>(t % n_heads);
    t /= n_heads;
    const int i = static_cast<int>(t % q_len);
    const int b = static_cast<int>(t / q_len);
    const float* pr = p + ((static_cast<std::size_t>(b) * n_heads + h) * q_len + i) * kv_len;
    const std::size_t v_stride = static_cast<std::size_t>(n_kv_heads) * head_dim;  // between keys
    const __half* vc = v + (static_cast<std::size_t>(b) * kv_len * n_kv_heads + h / group) * head_dim + d;
    // Masked keys have P = 0 exactly; with a causal mask, stop at the query's own position.
    const int end = causal ? kv_len - q_len + i + 1 : kv_len;
    float acc = 0.0f;
    for (int j = 0; j < end; ++j) acc += pr[j] * __half2float(vc[j * v_stride]);
    out[idx] = __float2half_rn(acc);
  }
}

}  // namespace

/// Bytes of device scratch `version` needs: 01 keeps the whole fp32 score matrix
/// (batch * n_heads * q_len * kv_len floats); 02 and 03 need none.
std::size_t prefill_scratch_bytes(int version, const PrefillAttentionArgs& a) {
  if (version < 1 || version > 3) fail("no version " + std::to_string(version) + " (1, 2 or 3)");
  if (version != 1) return 0;
  return static_cast<std::size_t>(std::max(a.batch, 0)) * std::max(a.n_heads, 0) * std::max(a.q_len, 0) *
         std::max(a.kv_len, 0) * sizeof(float);
}

/// Checks the args every version relies on; throws std::invalid_argument naming the field and
/// its value. The kernels read 16-byte vectors, so the four tensors must be 16-byte aligned
/// (cudaMalloc gives 256).
void validate(const PrefillAttentionArgs& a) {
  auto positive = [](const char* field, int value) {
    if (value <= 0) fail(std::string(field) + " = " + std::to_string(value) + " must be positive");
  };
  positive("batch", a.batch);
  positive("q_len", a.q_len);
  positive("kv_len", a.kv_len);
  positive("n_heads", a.n_heads);
  positive("n_kv_heads", a.n_kv_heads);
  if (a.head_dim != 32 && a.head_dim != 64 && a.head_dim != 128) {
    fail("head_dim = " + std::to_string(a.head_dim) + " must be 32, 64 or 128");
  }
  if (a.n_heads % a.n_kv_heads != 0) {
    fail("n_heads = " + std::to_string(a.n_heads) +
         " is not a multiple of n_kv_heads = " + std::to_string(a.n_kv_heads));
  }
  if (a.q_len > a.kv_len) {
    fail("q_len = " + std::to_string(a.q_len) + " exceeds kv_len = " + std::to_string(a.kv_len) +
         " (the queries are the last q_len positions of the sequence)");
  }
  // 02 and 03 put heads and batch in grid.y and grid.z.
  if (a.n_heads > 65535) fail("n_heads = " + std::to_string(a.n_heads) + " exceeds 65535 (grid limit)");
  if (a.batch > 65535) fail("batch = " + std::to_string(a.batch) + " exceeds 65535 (grid limit)");
  auto pointer = [](const char* field, const void* p) {
    if (p == nullptr) fail(std::string(field) + " is null");
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) fail(std::string(field) + " is not 16-byte aligned");
  };
  pointer("q", a.q);
  pointer("k", a.k);
  pointer("v", a.v);
  pointer("out", a.out);
}

/// Version 1: scores to the fp32 scratch, softmax in place, then P V. Needs
/// a.scratch of prefill_scratch_bytes(1, a) bytes.
void attention_prefill_01_naive(const PrefillAttentionArgs& a, cudaStream_t stream) {
  validate(a);
  if (a.scratch == nullptr) {
    fail("scratch is null; version 1 needs prefill_scratch_bytes(1, args) = " +
         std::to_string(prefill_scratch_bytes(1, a)) + " bytes for the score matrix");
  }
  float* s = static_cast<float*>(a.scratch);
  const float scale = 1.0f / std::sqrt(static_cast<float>(a.head_dim));
  const std::size_t n_scores = prefill_scratch_bytes(1, a) / sizeof(float);
  const std::size_t n_rows = static_cast<std::size_t>(a.batch) * a.n_heads * a.q_len;
  const std::size_t n_out = n_rows * a.head_dim;
  if (n_rows > 0x7fffffffu) fail("batch * n_heads * q_len = " + std::to_string(n_rows) + " exceeds the grid limit");

  scores_kernel<<<grid_for(n_scores), kThreads, 0, stream>>>(s, a.q, a.k, a.batch, a.q_len, a.kv_len, a.n_heads,
                                                             a.n_kv_heads, a.head_dim, a.causal, scale);
  CUDA_CHECK(cudaGetLastError());
  softmax_kernel<<<static_cast<unsigned>(n_rows), kThreads, 0, stream>>>(s, a.kv_len);
  CUDA_CHECK(cudaGetLastError());
  pv_kernel<<<grid_for(n_out), kThreads, 0, stream>>>(a.out, s, a.v, a.batch, a.q_len, a.kv_len, a.n_heads,
                                                      a.n_kv_heads, a.head_dim, a.causal);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
