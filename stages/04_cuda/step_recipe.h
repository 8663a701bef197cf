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

#include <chrono>
#include <string>
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

/// Time spent in one operation of the recipe over a step, summed over the layers.
struct OpTime {
  std::string op;
  double seconds = 0.0;
};

/// Runs the step like run_step, but waits for the backend after every operation (ops.sync())
/// and adds up the wall time of each: where the time of a step goes. The waiting itself costs
/// time, so the total is above an unprofiled step's; the shares are what it is for.
template <class Ops>
std::vector<OpTime> profile_step(Ops& ops, const StepLayout& L, int n_layers) {
  std::vector<OpTime> t = {{"metadata upload", 0}, {"embed", 0},  {"attention_norm", 0}, {"qkv", 0},
                           {"rope_store_kv", 0},   {"attention", 0}, {"o_proj", 0},      {"ffn_norm", 0},
                           {"gate_up", 0},         {"swiglu", 0},    {"down", 0},        {"logits (+ copy to host)", 0}};
  using clock = std::chrono::steady_clock;
  ops.sync();
  auto last = clock::now();
  auto lap = [&](std::size_t i) {
    ops.sync();
    const auto now = clock::now();
    t[i].seconds += std::chrono::duration<double>(now - last).count();
    last = now;
  };
  ops.begin_step(L), lap(0);
  ops.embed(L), lap(1);
  for (int l = 0; l < n_layers; ++l) {
    ops.attention_norm(l, L), lap(2);
    ops.qkv(l, L), lap(3);
    ops.rope_store_kv(l, L), lap(4);
    ops.attention(l, L), lap(5);
    ops.o_proj(l, L), lap(6);
    ops.ffn_norm(l, L), lap(7);
    ops.gate_up(l, L), lap(8);
    ops.swiglu(L), lap(9);
    ops.down(l, L), lap(10);
  }
  (void)ops.logits(L), lap(11);
  return t;
}

}  // namespace llm::stage04
