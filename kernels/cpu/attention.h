// attention.h: CPU twins of the CUDA attention kernels (kernels/cuda/attention_prefill/,
// kernels/cuda/attention_decode/), fp32, written to follow the same algorithms step by step.
//
//   attention_reference        the definition: scores, softmax, weighted sum (twin of 01_naive)
//   attention_online_softmax   K/V in tiles, a running max and sum per query, no score matrix
//                              (the FlashAttention recurrence; twin of 02 and 03)
//   paged_decode_attention     one query per sequence, keys and values read through a block
//                              table, the sequence cut into splits whose partial results are
//                              merged at the end (flash-decoding; twin of the decode kernels)
//   paged_decode_attention_quant / paged_prefill_attention_quant
//                              the same over a cache stored as codes: fp32, fp16, or int8 / FP8
//                              E4M3 with a scale per (token, KV head), dequantized in the dot
//                              (stage 05's --kv-cache; twin of the int8/fp8 split-KV decode kernel)
//
// The tests check the last two against the first at awkward shapes; the GPU harness checks
// each CUDA version against them.
#pragma once

#include <cstddef>
#include <cstdint>

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

/// How one K or V value is stored in a cache read by the *_quant functions below:
///   f32       float                                                  4 bytes
///   f16       IEEE fp16 bits (uint16_t, half.h)                      2 bytes
///   int8      int8_t code c, value = scale * c (c in -127..127)      1 byte + a scale per (token, KV head)
///   fp8_e4m3  OCP E4M3 code c (uint8_t, fp8.h), value = scale * e4m3(c)   1 byte + the same scale
/// The scales are fp32: one per token and KV head is 4 / head_dim bytes per element (6% at 64),
/// and fp32 holds any amax / 127 or amax / 448 without the underflow an fp16 scale would have.
enum class KvCodeType { f32, f16, int8, fp8_e4m3 };
/// Bytes of one code: 4, 2, 1, 1.
std::size_t kv_code_bytes(KvCodeType t);
/// Whether each (token, KV head) row carries a scale (int8 and fp8_e4m3).
bool kv_code_has_scale(KvCodeType t);
/// "f32", "f16", "int8", "fp8_e4m3".
const char* kv_code_name(KvCodeType t);

/// One layer of a paged KV cache stored as codes. K and V each have a code plane and (int8,
/// fp8_e4m3) a scale plane, indexed by the same slot s = block * block_size + offset:
///   k_codes, v_codes:   [num_blocks, block_size, n_kv_heads, head_dim] codes of `type`, dense:
///                       the codes of slot s, KV head g are elements (s * n_kv_heads + g) * head_dim
///                       .. + head_dim - 1 (a block is block_size * n_kv_heads * head_dim codes)
///   k_scales, v_scales: [num_blocks, block_size, n_kv_heads] fp32: the scale of slot s, KV head g
///                       is element s * n_kv_heads + g (null for f32 and f16)
///   block_table:        [batch, max_blocks_per_seq] int32, as in PagedKvView
///   seq_lens:           [batch] int32: keys 0 .. seq_lens[b]-1 of sequence b are valid
/// Value = scale * decode(code); f32 and f16 have no scale (1).
struct QuantPagedKvView {
  KvCodeType type = KvCodeType::int8;
  const void* k_codes = nullptr;
  const void* v_codes = nullptr;
  const float* k_scales = nullptr;
  const float* v_scales = nullptr;
  int num_blocks = 0;
  int block_size = 16;
  int n_kv_heads = 1;
  int head_dim = 64;
  const int* block_table = nullptr;
  int max_blocks_per_seq = 0;
  const int* seq_lens = nullptr;
};

/// Decode attention over a cache of codes: the contract of paged_decode_attention (q, out:
/// [batch, n_heads, head_dim] fp32, one query per sequence at its last position, num_splits
/// contiguous key ranges merged at the end), with every key and value read as a code:
///   score(p) = k_scale(p) * sum_i q_i * decode(k_code(p)_i) / sqrt(head_dim)
///   o       += (e^(score(p) - m) * v_scale(p)) * decode(v_code(p))
/// Each token's codes are decoded once per KV head and serve every query head of its group (as
/// the CUDA kernel's thread block serves the group). For f32 and f16 the arithmetic is
/// paged_decode_attention's, operation for operation, so the result is bit-identical to it on
/// the decoded values; int8 and fp8 sum the dot in 16 lanes (cpu::dot), not one chain.
/// Throws std::invalid_argument naming the field for an impossible argument or a block table
/// entry outside the pool.
void paged_decode_attention_quant(float* out, const float* q, int batch, int n_heads, const QuantPagedKvView& kv,
                                  int num_splits);

/// Prefill (or chunked-prefill) attention over a cache of codes, for sequence `seq` of the view:
/// q, out: [q_len, n_heads, head_dim] fp32 are the queries at its last q_len positions
/// kv.seq_lens[seq] - q_len .. kv.seq_lens[seq] - 1, each seeing the keys up to its own position
/// (causal). Keys are visited in tiles of tile_kv with attention_online_softmax's recurrence; each
/// tile's codes are decoded once per KV head and serve every query of the chunk. For f32 and f16
/// the result is bit-identical to attention_online_softmax on the decoded rows with the same tile.
void paged_prefill_attention_quant(float* out, const float* q, int q_len, int n_heads, int seq,
                                   const QuantPagedKvView& kv, int tile_kv);

}  // namespace llm::cpu
