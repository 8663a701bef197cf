// random_fill.cuh: deterministic pseudo-random fp16 values generated on the device, for inputs
// too large to draw and upload from the host (bench inputs of gigabytes, synthetic model
// weights). Counter-based (splitmix64 of seed and index), so element i depends only on
// (seed, i), never on the launch shape.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace llm::cuda {

/// p[i] = uniform in [-scale, scale), rounded to fp16, for i < n; device memory.
void fill_uniform_half(__half* p, std::size_t n, std::uint64_t seed, float scale, cudaStream_t stream = 0);

/// p[i] = value for i < n; device memory.
void fill_constant(float* p, std::size_t n, float value, cudaStream_t stream = 0);

}  // namespace llm::cuda
