// ops.h: reference CPU math for a Llama step, fp32, row-major.
//
// These are the CPU twins of the CUDA kernels and the building blocks of the CPU stages from
// stage 01 on. Stage 00 writes the same math out as plain loops (its exercises) and its tests
// compare the two. Shapes are given as [rows, cols]; every matrix is row-major and contiguous.
#pragma once

#include <cstddef>

namespace llm::cpu {

/// y[n, out] = x[n, in] * W^T, where W is [out, in] (the GGUF / PyTorch nn.Linear layout).
/// y must not alias x or W. Dispatches on n, the number of tokens in the step:
///   n = 1                   matvec_streaming    (decode, batch 1: reading W is the cost)
///   n <= kSmallBatchRows    matmul_small_batch  (decode of a batch: W read once for all rows)
///   larger                  matmul_blocked      (prefill: arithmetic is the cost)
void matmul(float* y, const float* x, const float* W, int n, int in, int out);

/// Up to this many rows, matmul uses matmul_small_batch (measured on a 2-core Zen 4: above it,
/// Eigen's blocked GEMM wins).
inline constexpr int kSmallBatchRows = 16;

/// y[out] = W x for one row x[in] (GEMV): the threads (parallel.h) split W's rows, each row is read from
/// memory once, eight rows at a time (four without AVX-512), the next band prefetched. Memory-bound:
/// its speed is bytes of W per second.
void matvec_streaming(float* y, const float* x, const float* W, int in, int out);

/// y[n, out] = x W^T for a few rows: tiles of 4 rows of W by 4 rows of x (2 by 2 without AVX-512),
/// so each vector of W loaded meets several rows of x in registers; threads split W's rows, each
/// read from memory once per call. Every output is summed in the same order as matvec_streaming's
/// (16 partial sums over `in`, then folded), so a row of x gives the same bits in a batch of any
/// size as alone: batching does not change a request's logits.
void matmul_small_batch(float* y, const float* x, const float* W, int n, int in, int out);

/// matmul_small_batch (n > 1) or matvec_streaming (n = 1) with the tile sizes of a build without
/// AVX-512, whatever this build's CPU: lets a test on an AVX-512 machine check that those tiles
/// give the same bits.
void matmul_portable_tiles(float* y, const float* x, const float* W, int n, int in, int out);

/// The prefill kernel: Eigen's cache-blocked GEMM (packs tiles of x and W so that each weight
/// loaded from memory is used for many rows). Compute-bound for large n.
void matmul_blocked(float* y, const float* x, const float* W, int n, int in, int out);

/// RMSNorm over each row: y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:].
/// x, y: [n, dim] (may alias); weight: [dim].
void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps);

/// Rotary position embedding, interleaved (pairwise) convention as in GGUF `llama` tensors and
/// llama2.c: for each head and each pair (2i, 2i+1) of dims, rotate by angle
/// pos * theta^(-2i / head_dim). x: [n_heads, head_dim] for one token at position pos, in place.
void rope(float* x, int n_heads, int head_dim, int pos, float theta);

/// sum of a[i] * b[i] over i < n, in fp32 with eight-wide vector partial sums (the attention
/// score of one query against one key).
float dot(const float* a, const float* b, int n);

/// Numerically stable softmax of x[0..n) in place (subtracts the max first).
void softmax(float* x, int n);

/// SwiGLU: out[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)). out may alias gate.
void swiglu(float* out, const float* gate, const float* up, std::size_t n);

/// Causal grouped-query attention for one sequence.
///   q:   [n, n_heads,    head_dim]  (already rotated)
///   k,v: [n, n_kv_heads, head_dim]  (k already rotated)
///   out: [n, n_heads,    head_dim]
/// Query i attends to keys 0..i; query head h reads kv head h / (n_heads / n_kv_heads).
/// Scores are scaled by 1/sqrt(head_dim).
void causal_attention(float* out, const float* q, const float* k, const float* v, int n, int n_heads, int n_kv_heads,
                      int head_dim);

/// Asks the CPU to bring p[0 .. n) into its caches ahead of use, one request per 64-byte line; no
/// effect on any result. Attention reads each key and value row once, from memory (a step's weights
/// have evicted them since they were written): requesting a row a few keys ahead overlaps those
/// misses instead of waiting on each in turn.
inline void prefetch(const float* p, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

/// Index of the largest element (the first one on ties).
int argmax(const float* x, int n);

}  // namespace llm::cpu
