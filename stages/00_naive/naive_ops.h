// naive_ops.h: the four pieces of a Llama block that stage 00 writes out by hand, as plain
// loops, so that a student can read (and re-write) every multiply. Matrix multiplies come from
// kernels/cpu (Eigen); everything else a block does is here.
//
// Shapes: row-major, fp32; n = tokens in the sequence.
#pragma once

namespace llm::stage00 {

/// RMSNorm of each of the n rows of x [n, dim]: y = x / sqrt(mean(x^2) + eps) * weight.
/// y may alias x.
void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps);

/// Rotary position embedding, interleaved pairs, in place on x [n, n_heads, head_dim]:
/// token t rotates pair (2i, 2i+1) of every head by angle t * theta^(-2i / head_dim).
void rope(float* x, int n, int n_heads, int head_dim, float theta);

/// Causal grouped-query self-attention over the whole sequence.
///   q [n, n_heads, head_dim], k and v [n, n_kv_heads, head_dim]  ->  out [n, n_heads, head_dim]
/// Token i attends to tokens 0..i; query head h uses kv head h / (n_heads / n_kv_heads).
void causal_attention(float* out, const float* q, const float* k, const float* v, int n, int n_heads, int n_kv_heads,
                      int head_dim);

/// SwiGLU activation, elementwise over `size` values: out = silu(gate) * up. out may alias gate.
void swiglu(float* out, const float* gate, const float* up, long size);

}  // namespace llm::stage00
