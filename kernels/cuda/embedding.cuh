// embedding.cuh: the embedding lookup: copies each token's row of the fp16 table into the
// fp32 residual stream. CPU twin: the row copy in the pointwise family's check.
// Check and time: build/kernels/kernel_harness check pointwise / bench pointwise
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace llm::cuda {

/// x[r, :] = table[tokens[r], :] for r < n. table: [vocab, dim] fp16, tokens: [n] int32 (the
/// caller checks 0 <= token < vocab on the host, where a bad id can be reported), x: [n, dim]
/// fp32; device memory.
void embedding(float* x, const __half* table, const int* tokens, int n, int dim, cudaStream_t stream = 0);

}  // namespace llm::cuda
