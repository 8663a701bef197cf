// attention_decode.cuh: decode attention over a paged KV cache (the block table of stage 03),
// one query per sequence, in numbered versions:
//
//   01_one_block_per_head.cu  one thread block per (sequence, query head) walks the whole
//                             sequence: simple, but batch * n_heads blocks cannot fill the GPU
//                             when the batch is small and the context long
//   02_split_kv.cu            flash-decoding: the sequence is cut into splits, one block per
//                             (sequence, kv head, split) serving every query head of the group
//                             (K/V read once per group), then a reduction merges the partials
//   03_split_kv_quant.cu      02 over a cache of 1-byte codes (int8 or FP8 E4M3) with an fp32 scale
//                             per (token, KV head): half the bytes of fp16 per K/V element
//
// CPU twins: llm::cpu::paged_decode_attention (01, 02) and paged_decode_attention_quant (03)
// (kernels/cpu/attention.h). Check and time:
//   build/kernels/kernel_harness check attention_decode
//   build/kernels/kernel_harness bench attention_decode
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace llm::cuda {

/// One decode attention call, for one layer. Layouts (row-major, device memory):
///   q, out:       [batch, n_heads, head_dim] fp16
///   k_cache, v_cache: [num_blocks, block_size, n_kv_heads, head_dim] fp16
///   block_table:  [batch, max_blocks_per_seq] int32: block j of sequence b holds positions
///                 j*block_size .. (j+1)*block_size - 1
///   seq_lens:     [batch] int32 (>= 1): the query (the sequence's newest token, whose K/V is
///                 already in the cache) sees keys 0 .. seq_lens[b]-1
/// head_dim 32, 64 or 128; n_heads a multiple of n_kv_heads. Scores scaled by 1/sqrt(head_dim).
struct DecodeAttentionArgs {
  const __half* q = nullptr;
  __half* out = nullptr;
  const __half* k_cache = nullptr;
  const __half* v_cache = nullptr;
  const int* block_table = nullptr;
  const int* seq_lens = nullptr;
  int batch = 1;
  int n_heads = 1;
  int n_kv_heads = 1;
  int head_dim = 128;
  int block_size = 16;
  int num_blocks = 0;
  int max_blocks_per_seq = 0;
  /// The longest seq_lens entry (a host-side bound: it sizes the grid of 02).
  int max_seq_len = 1;
  /// 02 only: number of splits per sequence (0: choose from the SM count and max_seq_len) and
  /// device workspace of decode_workspace_bytes(args) bytes for the partial results.
  int num_splits = 0;
  void* workspace = nullptr;
};

/// The number of splits 02 uses for these args (resolves num_splits = 0).
int decode_num_splits(const DecodeAttentionArgs& a);
/// Workspace bytes 02 needs: batch * n_heads * splits * (head_dim + 2) floats.
std::size_t decode_workspace_bytes(const DecodeAttentionArgs& a);
/// Throws std::invalid_argument naming the field when the args are impossible.
void validate(const DecodeAttentionArgs& a);

void attention_decode_01_one_block_per_head(const DecodeAttentionArgs& a, cudaStream_t stream);
void attention_decode_02_split_kv(const DecodeAttentionArgs& a, cudaStream_t stream);

/// How version 03's cache stores K and V: 1-byte codes, value = scale * decode(code), as the CPU
/// twin's KvCodeType::int8 / fp8_e4m3 (stage 05's --kv-cache int8|fp8).
enum class KvCode { int8, fp8_e4m3 };
const char* kv_code_name(KvCode c);

/// Version 03's arguments: `base` as for 01/02 (q, out, block table, lengths, shape, splits,
/// workspace of decode_workspace_bytes(base)), its k_cache/v_cache unused, and the cache as
/// kernels/cpu/attention.h's QuantPagedKvView lays it out, in device memory:
///   k_codes, v_codes:   [num_blocks, block_size, n_kv_heads, head_dim] bytes (int8 or E4M3)
///   k_scales, v_scales: [num_blocks, block_size, n_kv_heads] fp32
struct QuantDecodeAttentionArgs {
  DecodeAttentionArgs base;
  KvCode code = KvCode::int8;
  const std::uint8_t* k_codes = nullptr;
  const std::uint8_t* v_codes = nullptr;
  const float* k_scales = nullptr;
  const float* v_scales = nullptr;
};
/// Throws std::invalid_argument naming the field when the args are impossible.
void validate(const QuantDecodeAttentionArgs& a);
void attention_decode_03_split_kv_quant(const QuantDecodeAttentionArgs& a, cudaStream_t stream);

struct DecodeAttentionVersion {
  int number;
  const char* name;
  void (*run)(const DecodeAttentionArgs&, cudaStream_t);
};
inline constexpr DecodeAttentionVersion kDecodeAttentionVersions[] = {
    {1, "01_one_block_per_head", attention_decode_01_one_block_per_head},
    {2, "02_split_kv", attention_decode_02_split_kv},
};

}  // namespace llm::cuda
