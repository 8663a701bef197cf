// check.cuh: CUDA_CHECK(call) throws std::runtime_error with the file, line and CUDA's message.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#define CUDA_CHECK(call)                                                                                  \
  do {                                                                                                    \
    const cudaError_t err_ = (call);                                                                      \
    if (err_ != cudaSuccess) {                                                                            \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #call ": " + \
                               cudaGetErrorString(err_));                                                 \
    }                                                                                                     \
  } while (0)
