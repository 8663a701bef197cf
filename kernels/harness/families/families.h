// families.h: the kernel families kernel_harness knows. Each family checks every version
// against its CPU twin (returns false on any failure) and prints a timing row per version and
// size.
#pragma once

#include "kernels/harness/harness.cuh"

namespace llm::harness {

struct Family {
  const char* name;
  const char* what;
  bool (*check)(const FamilyOptions&);
  void (*bench)(const FamilyOptions&);
};

bool check_attention_prefill(const FamilyOptions& o);
void bench_attention_prefill(const FamilyOptions& o);
bool check_attention_decode(const FamilyOptions& o);
void bench_attention_decode(const FamilyOptions& o);
bool check_gemv(const FamilyOptions& o);
void bench_gemv(const FamilyOptions& o);
bool check_quant_gemv(const FamilyOptions& o);
void bench_quant_gemv(const FamilyOptions& o);
bool check_gemm(const FamilyOptions& o);
void bench_gemm(const FamilyOptions& o);
bool check_pointwise(const FamilyOptions& o);
void bench_pointwise(const FamilyOptions& o);
bool check_sampling(const FamilyOptions& o);
void bench_sampling(const FamilyOptions& o);

inline constexpr Family kFamilies[] = {
    {"attention_prefill", "prefill attention (FlashAttention-style versions)", check_attention_prefill,
     bench_attention_prefill},
    {"attention_decode", "paged decode attention (split-KV)", check_attention_decode, bench_attention_decode},
    {"gemv", "decode GEMV, fp16 weights", check_gemv, bench_gemv},
    {"quant_gemv", "decode GEMV, Q8_0/Q4_0 (W8A16/W4A16) and FP8 E4M3 weights", check_quant_gemv, bench_quant_gemv},
    {"gemm", "prefill GEMM (cuBLAS)", check_gemm, bench_gemm},
    {"pointwise", "RMSNorm, RoPE + KV store, SwiGLU, residual, embedding", check_pointwise, bench_pointwise},
    {"sampling", "argmax and top-k/top-p sampling on the device", check_sampling, bench_sampling},
};

}  // namespace llm::harness
