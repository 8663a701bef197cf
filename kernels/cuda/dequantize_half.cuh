// dequantize_half.cuh: stored weights (GGUF Q8_0 / Q4_0 / Q4_1 blocks, or FP8 E4M3 codes with one
// scale per row) to an fp16 matrix, on the device. Stage 05's CUDA backend runs it before the
// fp16 matmul where no fused kernel takes the shape: prefill steps (more rows than the quantized
// GEMV takes: dequantize once, then cuBLAS on tensor cores; 03_fp8_e4m3.cu says why not
// cuBLASLt's FP8 GEMM). Decode steps of every format, Q4_1 included, take quant_gemv.
// A memory-bound pass: 0.56-1 byte read and 2 written per weight.
//
// CPU twin: llm::cpu::dequantize (kernels/cpu/dequantize.h) or fp8_to_fp32(code) * scale, then
// each value rounded to fp16 (round to nearest even). Both round the same fp32 values: the
// products (and Q4_1's d * q + m) are computed without fused multiply-adds, as the CPU does, so
// the twin is exact.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace llm::cuda {

/// The stored formats dequantize_to_half reads.
enum class StoredFormat { Q8_0, Q4_0, Q4_1, FP8_E4M3 };

/// out[rows, cols] fp16 = the stored weights. src: the GGUF blocks of each row, rows back to back
/// (Q8_0 34, Q4_0 18, Q4_1 20 bytes per 32 weights; cols % 32 == 0), or E4M3 codes [rows, cols]
/// with row_scales [rows] fp32 (weight = code's value x its row's scale); device memory, any
/// alignment. Queued on `stream`. Throws std::invalid_argument naming the field for an impossible
/// shape or a null pointer.
void dequantize_to_half(StoredFormat format, const void* src, const float* row_scales, __half* out, int rows, int cols,
                        cudaStream_t stream);

}  // namespace llm::cuda
