// device_buffer.cuh: an owning device allocation (RAII around cudaMalloc/cudaFree), used by the
// kernel harness and by stage 04's CUDA backend.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "kernels/cuda/check.cuh"

namespace llm::cuda {

/// `n` elements of T in device memory (cudaMalloc: 256-byte aligned). Throws
/// std::runtime_error (CUDA_CHECK) when the allocation fails. Movable, not copyable.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    if (n > 0) CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (p_) (void)cudaFree(p_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  /// Takes o's memory; this buffer's old memory is freed when o (now holding it) goes.
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }

  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * sizeof(T); }
  /// Sets every bit of every element: NaN for float and __half, -1 for int.
  void poison() { CUDA_CHECK(cudaMemset(p_, 0xFF, bytes())); }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace llm::cuda
