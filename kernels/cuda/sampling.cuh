// sampling.cuh: choosing the next token on the device, so that only one int per sequence
// crosses PCIe instead of a row of logits (128k floats = 512 KB at Llama-3's vocabulary).
//
//   argmax_rows        greedy: one block per row, a block-wide (value, index) max reduction;
//                      ties go to the lower id, as std::max_element does.
//   sample_top_k_rows  temperature + top-k (k <= kMaxDeviceTopK) + top-p, one block per row:
//                      k rounds of block argmax, round r finding the largest logit strictly
//                      below round r-1's in the order (logit descending, id ascending) - the
//                      order of the CPU sampler's stable sort - so no candidate list needs to
//                      be excluded and ties resolve identically. Then one thread applies the
//                      temperature, the top-p cut and the draw u exactly as llm::Sampler does
//                      (double weights, float probabilities, cdf in token-id order).
//                      k passes over the row cost k reads of it (from L2 after the first);
//                      a radix select would need four: that is the next version to write.
//
// CPU twins: std::max_element and llm::Sampler::distribution + Sampler::pick
// (common/sampler.h). The draw u comes from the request's Sampler on the host, so a seed
// gives the same text on the CPU and the GPU.
// Check and time: build/kernels/kernel_harness check sampling / bench sampling
#pragma once

#include <cuda_runtime.h>

namespace llm::cuda {

/// Largest top_k sample_top_k_rows accepts (larger, or 0 = all, falls back to the host).
inline constexpr int kMaxDeviceTopK = 256;

/// One row's sampling parameters: temperature > 0, 1 <= top_k <= kMaxDeviceTopK,
/// 0 < top_p <= 1, and the uniform draw u in [0, 1).
struct SamplingRow {
  float temperature = 1.0f;
  int top_k = 40;
  float top_p = 1.0f;
  float u = 0.0f;
};

/// out[r] = argmax of logits[r, 0..vocab) (lowest id on ties); device memory.
void argmax_rows(int* out, const float* logits, int n, int vocab, cudaStream_t stream = 0);

/// out[r] = the token llm::Sampler would pick for row r with these parameters and draw;
/// rows: [n] SamplingRow in device memory, so nothing here can check them: the caller checks
/// 1 <= top_k <= kMaxDeviceTopK on the host (a larger top_k would be clamped to it silently).
void sample_top_k_rows(int* out, const float* logits, const SamplingRow* rows, int n, int vocab,
                       cudaStream_t stream = 0);

}  // namespace llm::cuda
