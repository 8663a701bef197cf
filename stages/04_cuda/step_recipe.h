// step_recipe.h: the order of operations of one step on the device, written once for both of
// this stage's backends. A backend (`Ops`) owns the weights, the KV cache and the activation
// buffers wherever it keeps them (host memory for CpuOps, device memory for CudaOps) and
// implements each operation; this recipe is the Llama forward pass as the kernels see it:
//
//   x  = embed(tokens)                                    fp32 residual stream [n, dim]
//   per layer:
//     h   = rmsnorm(x) -> fp16                            (rmsnorm.cuh)
//     qkv = h Wqkv^T                                      (GEMV or cuBLAS GEMM, fp32 out)
//     q, K/V slots = rope(qkv)                            (rope_kv.cuh: fused with the cache write)
//     a   = attention(q, cache)                           decode rows: split-KV over the block
//                                                         tables; prompt chunks: prefill kernel
//     x  += a Wo^T                                        (the residual add in the epilogue)
//     h   = rmsnorm(x) -> fp16
//     gu  = h W13^T ; f = silu(gate) * up -> fp16         (swiglu.cuh)
//     x  += f W2^T
//   logits = rmsnorm(x[logit rows]) Wcls^T                 fp32, to the host
#pragma once

#include <vector>

#include "step_layout.h"

namespace llm::stage04 {

/// Runs one laid-out step on `ops` and returns the logits of L.logit_rows, [rows, vocab].
template <class Ops>
std::vector<float> run_step(Ops& ops, const StepLayout& L, int n_layers) {
  ops.begin_step(L);
  ops.embed(L);
  for (int l = 0; l < n_layers; ++l) {
    ops.attention_norm(l, L);
    ops.qkv(l, L);
    ops.rope_store_kv(l, L);
    ops.attention(l, L);
    ops.o_proj(l, L);
    ops.ffn_norm(l, L);
    ops.gate_up(l, L);
    ops.swiglu(L);
    ops.down(l, L);
  }
  return ops.logits(L);
}

}  // namespace llm::stage04
