#include <cfloat>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/sampling.cuh"

namespace llm::cuda {

namespace {

constexpr int kThreads = 512;

/// A candidate: its logit and id. `a` comes before `b` in the sampler's order when its logit is
/// larger, or equal with a lower id.
struct Candidate {
  float value;
  int id;
};
__device__ bool before(Candidate a, Candidate b) {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}
/// A "no candidate" marker that every real candidate comes before.
__device__ Candidate none() { return Candidate{-FLT_MAX, 0x7FFFFFFF}; }

/// The first candidate of the row (in the sampler's order) that comes strictly after `after`
/// (pass none-with-id -1 semantics via `first` for the very first round). Block-wide.
__device__ Candidate next_candidate(const float* row, int vocab, Candidate after, bool first) {
  Candidate best = none();
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const Candidate c{row[i], i};
    if (c.value != c.value) continue;  // NaN never wins
    if (!first && !before(after, c)) continue;
    if (before(c, best)) best = c;
  }
  for (int o = 16; o > 0; o /= 2) {
    const Candidate other{__shfl_xor_sync(0xFFFFFFFFu, best.value, o), __shfl_xor_sync(0xFFFFFFFFu, best.id, o)};
    if (before(other, best)) best = other;
  }
  __shared__ Candidate warp_best[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_best[threadIdx.x / 32] = best;
  __syncthreads();
  best = none();
  for (int w = 0; w < static_cast<int>(blockDim.x) / 32; ++w)
    if (before(warp_best[w], best)) best = warp_best[w];
  __syncthreads();
  return best;
}

__global__ void argmax_kernel(int* out, const float* logits, int vocab) {
  const Candidate best = next_candidate(logits + static_cast<long>(blockIdx.x) * vocab, vocab, none(), true);
  if (threadIdx.x == 0) out[blockIdx.x] = best.id == 0x7FFFFFFF ? 0 : best.id;
}

__global__ void sample_top_k_kernel(int* out, const float* logits, const SamplingRow* rows, int vocab) {
  const float* row = logits + static_cast<long>(blockIdx.x) * vocab;
  const SamplingRow prm = rows[blockIdx.x];
  __shared__ Candidate cand[kMaxDeviceTopK];  // in the sampler's order
  __shared__ float prob[kMaxDeviceTopK];
  __shared__ int by_id[kMaxDeviceTopK];  // candidate indices sorted by token id
  __shared__ int keep_s;
  // Only logits that are neither NaN nor -inf become candidates: with fewer of them than top_k,
  // the later rounds find none, and k stops at the count found (the -inf logits the CPU sampler
  // would keep get probability 0, which pick skips). `found` is the same in every thread (each
  // gets the block's result), so the break is uniform.
  int k = 0;
  Candidate prev = none();
  for (const int want = min(prm.top_k, min(vocab, kMaxDeviceTopK)); k < want; ++k) {
    prev = next_candidate(row, vocab, prev, k == 0);
    if (prev.id == none().id) break;
    if (threadIdx.x == 0) cand[k] = prev;
  }
  if (k == 0) {  // no finite logit (or top_k < 1): nothing to draw from; token 0, as argmax_rows
    if (threadIdx.x == 0) out[blockIdx.x] = 0;
    return;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    // Exactly llm::Sampler::distribution over the k candidates: double weights relative to the
    // top logit, the top-p prefix, then float probabilities.
    double w[kMaxDeviceTopK];
    const double top = cand[0].value;
    double sum = 0.0;
    for (int i = 0; i < k; ++i) sum += (w[i] = exp((cand[i].value - top) / prm.temperature));
    int keep = k;
    if (prm.top_p < 1.0f) {
      double mass = 0.0;
      int cut = 0;
      while (cut < keep) {
        mass += w[cut] / sum;
        ++cut;
        if (mass >= prm.top_p) break;
      }
      keep = cut;
      sum = 0.0;
      for (int i = 0; i < keep; ++i) sum += w[i];
    }
    for (int i = 0; i < keep; ++i) prob[i] = static_cast<float>(w[i] / sum);
    keep_s = keep;
  }
  __syncthreads();
  // Rank each kept candidate by token id, in parallel.
  const int keep = keep_s;
  for (int i = threadIdx.x; i < keep; i += blockDim.x) {
    int rank = 0;
    for (int j = 0; j < keep; ++j) rank += cand[j].id < cand[i].id;
    by_id[rank] = i;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    // Sampler::pick: the cdf in token-id order, in float; zero probabilities are skipped.
    float cdf = 0.0f;
    int chosen = cand[by_id[0]].id;
    for (int r = 0; r < keep; ++r) {
      const int i = by_id[r];
      if (prob[i] <= 0.0f) continue;
      cdf += prob[i];
      chosen = cand[i].id;
      if (prm.u < cdf) break;
    }
    out[blockIdx.x] = chosen;
  }
}

}  // namespace

void argmax_rows(int* out, const float* logits, int n, int vocab, cudaStream_t stream) {
  if (n == 0) return;
  argmax_kernel<<<n, kThreads, 0, stream>>>(out, logits, vocab);
  CUDA_CHECK(cudaGetLastError());
}

void sample_top_k_rows(int* out, const float* logits, const SamplingRow* rows, int n, int vocab, cudaStream_t stream) {
  if (n == 0) return;
  sample_top_k_kernel<<<n, kThreads, 0, stream>>>(out, logits, rows, vocab);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
