// gemm_cublas.cuh: the prefill matmul, y[n, out] = x[n, in] W^T, on cuBLAS.
//
// At prefill every weight meets hundreds of rows: the product is compute-bound and tensor
// cores set the pace. Writing a GEMM that matches cuBLAS on Hopper (wgmma, TMA, warp
// specialisation) is a course of its own (see SGEMM_CUDA); here cuBLAS is the tool and the
// ceiling the attention kernels are measured against.
//
// Layout: our matrices are row-major. cuBLAS is column-major, where a row-major [out, in] W is
// an [in, out] matrix; so y^T = W x^T is one call with W transposed (op T, lda = in), x as is
// (op N, ldb = in) and y^T column-major (ldc = out), which is y row-major.
// CPU twin: llm::cpu::matmul (kernels/cpu/ops.h). Check and time:
//   build/kernels/kernel_harness check gemm / bench gemm
#pragma once

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace llm::cuda {

/// Owns a cuBLAS handle. Not thread-safe; one per stream.
class CublasGemm {
 public:
  CublasGemm();
  ~CublasGemm();
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;

  /// y[n, out] = x[n, in] W^T (or y += with `accumulate`, fusing the residual add into the
  /// epilogue). W: [out, in] fp16, x: [n, in] fp16, y: [n, out] fp32; fp32 accumulation.
  void run(float* y, const __half* x, const __half* W, int n, int in, int out, bool accumulate, cudaStream_t stream);

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace llm::cuda
