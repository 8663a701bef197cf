// rope_kv.cuh: rotary position embedding fused with the KV-cache write.
//
// After the QKV projection each token's row holds q | k | v in fp32. One kernel rotates q and
// k (the interleaved-pairs convention of llm::cpu::rope), writes q as the fp16 input of
// attention, and writes k and v as fp16 into the token's slot of the paged KV cache
// (slot = block * block_size + offset, the block table's address of the token). Unfused this
// is a RoPE kernel, a cast and a scatter: three trips through memory instead of one.
// CPU twin: llm::cpu::rope plus the slot arithmetic (kernels/harness/families/pointwise.cu).
// Check and time: build/kernels/kernel_harness check pointwise / bench pointwise
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace llm::cuda {

/// Arguments of rope_store_kv; all pointers are device memory.
struct RopeStoreKvArgs {
  const float* qkv = nullptr;   ///< [n, (n_heads + 2 * n_kv_heads) * head_dim]: q | k | v per token
  const int* positions = nullptr;  ///< [n]: each token's position in its sequence
  const int* slots = nullptr;      ///< [n]: each token's KV slot, block * block_size + offset
  __half* q_out = nullptr;         ///< [n, n_heads, head_dim]
  __half* k_cache = nullptr;       ///< [num_slots, n_kv_heads, head_dim]
  __half* v_cache = nullptr;       ///< [num_slots, n_kv_heads, head_dim]
  int n = 0;
  int n_heads = 1;
  int n_kv_heads = 1;
  int head_dim = 64;  ///< even
  float theta = 10000.0f;
};

void rope_store_kv(const RopeStoreKvArgs& a, cudaStream_t stream = 0);

}  // namespace llm::cuda
