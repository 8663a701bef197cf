// attention.h: CPU twins of the CUDA attention kernels (kernels/cuda/attention_prefill/,
// kernels/cuda/attention_decode/), fp32, written to follow the same algorithms step by step.
//
//   attention_reference        the definition: scores, softmax, weighted sum (twin of 01_naive)
//   attention_online_softmax   K/V in tiles, a running max and sum per query, no score matrix
//                              (the FlashAttention recurrence; twin of 02 and 03)
//   paged_decode_attention     one query per sequence, keys and values read through a block
//                              table, the sequence cut into splits whose partial results are
//                              merged at the end (flash-decoding; twin of the decode kernels)
//
// The tests check the last two against the first at awkward shapes; the GPU harness checks
// each CUDA version against them.
#pragma once

#include <cstddef>

namespace llm::cpu {

/// Shape of a batched attention call. Layouts (row-major, contiguous):
///   q, out: [batch, q_len,  n_heads,    head_dim]
///   k, v:   [batch, kv_len, n_kv_heads, head_dim]
/// Query i sits at position kv_len - q_len + i (the new tokens come last, as in a prefill that
/// continues a cached prefix). With `causal`, it sees keys 0 .. kv_len - q_len + i; without, all.
/// Query head h reads kv head h / (n_heads / n_kv_heads) (grouped-query attention).
/// Scores are scaled by 1/sqrt(head_dim).
struct AttentionShape {
  int batch = 1;
  int q_len = 1;
  int kv_len = 1;
  int n_heads = 1;
  int n_kv_heads = 1;
  int head_dim = 64;
  bool causal = true;

  std::size_t q_elems() const { return static_cast<std::size_t>(batch) * q_len * n_heads * head_dim; }
  std::size_t kv_elems() const { return static_cast<std::size_t>(batch) * kv_len * n_kv_heads * head_dim; }
  /// Multiply-adds of QK^T and PV counted as 2 FLOPs each, halved for causal (the convention of
  /// FlashAttention's benchmarks, so figures compare with theirs).
  double flops() const;
  /// Throws std::invalid_argument naming the field when the shape is impossible.
  void validate() const;
};

/// The definition of attention: for each query, all scores, a softmax, then the weighted sum of
/// values. Scores are accumulated in double, so it is also the reference for the fp32 twins.
void attention_reference(float* out, const float* q, const float* k, const float* v, const AttentionShape& s);

/// The FlashAttention recurrence on the CPU: keys and values are visited in tiles of `tile_kv`
/// rows; each query keeps a running maximum m, a running sum l and an unnormalised output, and
/// rescales them by exp(m_old - m_new) when a tile raises the maximum. No score matrix exists.
void attention_online_softmax(float* out, const float* q, const float* k, const float* v, const AttentionShape& s,
                              int tile_kv);

/// A paged KV cache as the decode kernels see it, for one layer:
///   k, v:        [num_blocks, block_size, n_kv_heads, head_dim]
///   block_table: [batch, max_blocks_per_seq]: block j of sequence b holds its positions
///                j*block_size .. (j+1)*block_size - 1
///   seq_lens:    [batch]: keys 0 .. seq_lens[b]-1 are valid (the new token's included)
struct PagedKvView {
  const float* k = nullptr;
  const float* v = nullptr;
  int num_blocks = 0;
  int block_size = 16;
  int n_kv_heads = 1;
  int head_dim = 64;
  const int* block_table = nullptr;
  int max_blocks_per_seq = 0;
  const int* seq_lens = nullptr;
};

/// Decode attention: q, out: [batch, n_heads, head_dim], one query per sequence, at its last
/// position (it sees every key of its sequence). The keys are cut into `num_splits` contiguous
/// ranges; each yields (m, l, unnormalised o), merged at the end:
///   m = max m_s,  l = sum l_s e^(m_s - m),  out = sum o_s e^(m_s - m) / l.
/// num_splits = 1 is plain attention over the block table.
void paged_decode_attention(float* out, const float* q, int batch, int n_heads, const PagedKvView& kv,
                            int num_splits);

}  // namespace llm::cpu
