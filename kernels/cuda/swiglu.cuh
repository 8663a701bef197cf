// swiglu.cuh: the SwiGLU activation fused with the cast to fp16.
//
// The feed-forward's gate and up projections run as one matmul against the concatenated
// weights [w1; w3], so each row of its output is gate | up (fp32). This kernel computes
// silu(gate) * up and writes the fp16 input of the down projection: one read of each value,
// one fp16 write, instead of a silu kernel, a multiply kernel and a cast.
// CPU twin: llm::cpu::swiglu (kernels/cpu/ops.h).
// Check and time: build/kernels/kernel_harness check pointwise / bench pointwise
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace llm::cuda {

/// out[r, i] = silu(gate_up[r, i]) * gate_up[r, ff + i] as fp16, for r < n, i < ff.
/// gate_up: [n, 2 * ff] fp32, out: [n, ff] fp16, device memory.
void swiglu_to_half(__half* out, const float* gate_up, int n, int ff, cudaStream_t stream = 0);

}  // namespace llm::cuda
