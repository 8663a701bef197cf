// attention_prefill.cuh: the prefill attention kernels, one numbered version per file, read in
// order. Each file's header says what it changes and why it should be faster.
//
//   01_naive.cu                 scores S = QK^T written to global memory, softmax, then PV
//   02_tiled_online_softmax.cu  K/V tiles in shared memory, online softmax: no score matrix
//   03_tensor_cores.cu          02 with QK^T and PV on tensor cores (WMMA, fp16 in, fp32 acc)
//
// CPU twins: llm::cpu::attention_reference (01), llm::cpu::attention_online_softmax (02, 03),
// kernels/cpu/attention.h. Check and time them all:
//   build/kernels/kernel_harness check attention_prefill
//   build/kernels/kernel_harness bench attention_prefill
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace llm::cuda {

/// One prefill attention call. Same shape and semantics as llm::cpu::AttentionShape:
///   q, out: [batch, q_len,  n_heads,    head_dim]  fp16, device memory
///   k, v:   [batch, kv_len, n_kv_heads, head_dim]  fp16, device memory
/// query i is at position kv_len - q_len + i; causal: it sees keys 0 .. kv_len - q_len + i.
/// head_dim must be 32, 64 or 128; n_heads a multiple of n_kv_heads; q_len <= kv_len.
/// All arithmetic after the fp16 loads is fp32; `out` is rounded to fp16 once at the end.
struct PrefillAttentionArgs {
  const __half* q = nullptr;
  const __half* k = nullptr;
  const __half* v = nullptr;
  __half* out = nullptr;
  int batch = 1;
  int q_len = 1;
  int kv_len = 1;
  int n_heads = 1;
  int n_kv_heads = 1;
  int head_dim = 128;
  bool causal = true;
  /// Device scratch of at least prefill_scratch_bytes(version, args) bytes (only 01 uses it).
  void* scratch = nullptr;
};

/// Bytes of scratch a version needs for these args (01: the fp32 score matrix; others: 0).
std::size_t prefill_scratch_bytes(int version, const PrefillAttentionArgs& a);

/// Throws std::invalid_argument naming the field when the args are impossible for the kernels.
void validate(const PrefillAttentionArgs& a);

void attention_prefill_01_naive(const PrefillAttentionArgs& a, cudaStream_t stream);
void attention_prefill_02_tiled_online_softmax(const PrefillAttentionArgs& a, cudaStream_t stream);
void attention_prefill_03_tensor_cores(const PrefillAttentionArgs& a, cudaStream_t stream);

/// The versions in order, for the harness and the engine: number, file stem, launcher.
struct PrefillAttentionVersion {
  int number;
  const char* name;
  void (*run)(const PrefillAttentionArgs&, cudaStream_t);
};
inline constexpr PrefillAttentionVersion kPrefillAttentionVersions[] = {
    {1, "01_naive", attention_prefill_01_naive},
    {2, "02_tiled_online_softmax", attention_prefill_02_tiled_online_softmax},
    {3, "03_tensor_cores", attention_prefill_03_tensor_cores},
};

}  // namespace llm::cuda
