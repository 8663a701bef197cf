// int8_build.h: what the int8 versions (03, 04) need from the compiler, in one place (private).
//   LLM_X86           x86-64: the AVX2 / AVX-VNNI / AVX-512 VNNI paths are built (with target
//                     attributes; cpuid picks at run time), <immintrin.h> included
//   LLM_NO_VECTORIZE  on a scalar definition: GCC 12.2 with -march=native on an AVX-512 VNNI CPU
//                     vectorises a signed x signed int8 dot loop into vpdpbusd, whose first
//                     operand is unsigned (wrong sums for negative weights; Debian's 12.2.0)
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>
#define LLM_X86 1
#endif

#if defined(__clang__)
#define LLM_NO_VECTORIZE
#else
#define LLM_NO_VECTORIZE __attribute__((optimize("no-tree-vectorize")))
#endif
