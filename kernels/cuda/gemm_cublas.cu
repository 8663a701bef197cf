#include <stdexcept>
#include <string>

#include "kernels/cuda/gemm_cublas.cuh"

namespace llm::cuda {

namespace {

void check_cublas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + " failed: " + cublasGetStatusString(st));
}

}  // namespace

CublasGemm::CublasGemm() { check_cublas(cublasCreate(&handle_), "cublasCreate"); }

CublasGemm::~CublasGemm() {
  if (handle_) cublasDestroy(handle_);
}

void CublasGemm::run(float* y, const __half* x, const __half* W, int n, int in, int out, bool accumulate,
                     cudaStream_t stream) {
  if (n < 0 || in < 1 || out < 1)
    throw std::invalid_argument("CublasGemm::run: n = " + std::to_string(n) + ", in = " + std::to_string(in) +
                                ", out = " + std::to_string(out) + " (in and out must be >= 1)");
  if (n == 0) return;
  check_cublas(cublasSetStream(handle_, stream), "cublasSetStream");
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  check_cublas(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, W, CUDA_R_16F, in, x, CUDA_R_16F, in,
                            &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

}  // namespace llm::cuda
