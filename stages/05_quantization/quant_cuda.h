// quant_cuda.h: stage 05's weights on stage 04's CUDA backend. The step recipe, the executor, the
// activations and the K/V cache are stage 04's (CudaOps, step_recipe.h; the cache in --kv-cache's
// format, CudaOptions::kv_cache); only the matrices change (a stage04::CudaMatrices of
// quant_cuda_matrices.cu, the twin of QuantCpuMatrices):
//
//   on the device   each matrix in its stored format: GGUF Q8_0 / Q4_0 / Q4_1 blocks as the file
//                   (or the quantizer) laid them out, rows back to back, padded to 16 bytes; FP8
//                   E4M3 codes [rows, cols] and one fp32 scale per row; f16 as fp16. The embedding
//                   lookup reads an fp16 copy of the table (dequantized on the host at load).
//   decode (n <= 8 rows)   Q8_0, Q4_0, Q4_1: kernels/cuda/quant_gemv 01_fused_16B (W8A16 / W4A16
//                   on the GGUF blocks; Q4_1's min added once per block); FP8: 03_fp8_e4m3; f16:
//                   stage 04's fp16 GEMV
//   prefill (n > 8) every quantized format: dequantize to fp16 scratch (kernels/cuda/
//                   dequantize_half.cuh), then cuBLAS (tensor cores); f16: cuBLAS
// The scratch holds the largest quantized matrix in fp16. The K/V cache (CudaOps, cuda_ops.cuh):
// f16 as stage 04's; int8 / fp8 E4M3 quantized per (token, KV head) as it is appended
// (rope_kv.cuh's rope_store_kv_quant, the twin of kv_quant.h), read by attention_decode 03 for
// decode rows and gathered dequantized to fp16 (kv_gather.cuh) for the prefill kernel. E4M3 is only
// storage there (converted in registers), so fp8 K/V needs no FP8 hardware; fp8 weights do.
//
// NOT YET RUN ON A GPU: this file's CPU-side parts are tested in CI (tests/stages/test_stage05.cpp
// [cuda-plan]); the device path is checked by gpu_stage05 (tests/stages/test_stage05_gpu.cpp)
// where a GPU is present.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "quant_weights.h"
#include "stages/03_continuous_batching/step_executor.h"
#include "stages/04_cuda/backend.h"

namespace llm::stage05 {

/// How the CUDA backend multiplies by one matrix in a step of n rows.
enum class CudaMatmulPath {
  fp16_gemv,           ///< f16, n <= 8: stage 04's GEMV (kernels/cuda/gemv 02)
  fp16_cublas,         ///< f16, n > 8: cuBLAS
  quant_gemv_01,       ///< Q8_0 / Q4_0 / Q4_1, n <= 8: quant_gemv 01_fused_16B on the GGUF blocks
  fp8_gemv_03,         ///< FP8, n <= 8: quant_gemv 03_fp8_e4m3
  dequantize_cublas,   ///< any quantized format, n > 8: dequantize to fp16 scratch, then cuBLAS
};

/// The path for format f and n >= 1 rows (most rows of a GEMV: 8, as kGemvMaxRows and
/// kQuantGemvMaxRows). Throws llm::Error for f32, which the CUDA backend does not keep.
CudaMatmulPath cuda_matmul_path(WeightFormat f, int n);
/// "fp16 GEMV", "cuBLAS", "quant_gemv 01", ...
const char* cuda_matmul_path_name(CudaMatmulPath p);

/// Why the CUDA backend cannot hold these matrices ("" when it can), naming the tensor and the
/// format: f32 matrices (the GPU keeps fp16 at most; --weights f16), FP8 rows not a multiple of
/// 16 (03_fp8_e4m3's 16-byte loads), block rows not a multiple of 32.
std::string cuda_weights_unsupported(const QuantWeights& q);

/// One matrix as uploaded: the bytes copied to the device as they are, and FP8's row scales.
///   f16:               fp16 bits, little-endian, [rows, cols] (2 bytes per weight)
///   q8_0, q4_0, q4_1:  the GGUF blocks of the rows back to back, zero-padded to a multiple of
///                      16 bytes (quant_gemv 01's last 16-byte load may reach past the last row)
///   fp8:               the E4M3 codes [rows, cols], zero-padded to a multiple of 16 bytes;
///                      row_scales [rows]
struct DeviceMatrixImage {
  WeightFormat format = WeightFormat::f16;
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> bytes;
  std::vector<float> row_scales;
};
/// The image of `m`. Throws llm::Error for f32 (see cuda_weights_unsupported).
DeviceMatrixImage device_image(const StoredMatrix& m);

/// The embedding table the CUDA lookup reads: every row of `embed` dequantized (dequantize_row)
/// and rounded to fp16 bits, [rows, cols].
std::vector<std::uint16_t> fp16_table(const StoredMatrix& embed);

/// fp16 elements of the dequantization scratch: the largest quantized matrix (rows x cols, the
/// classifier included); 0 when every matrix is f16.
std::size_t cuda_scratch_elements(const QuantWeights& q);

/// Device bytes of these weights on the CUDA backend: every matrix's image (and FP8's scales), the
/// fp16 embedding table, the scratch, and the norms (fp32). What the memory plan reserves.
std::size_t cuda_weight_bytes(const QuantWeights& q);

/// Why this machine's GPU cannot run these matrices ("" when it can, and without a GPU): FP8
/// matrices on a device without FP8 conversions (compute capability below 8.9). Asks the device,
/// unlike cuda_weights_unsupported; make_quant_engine refuses with it on --backend cuda and runs
/// the CPU backend on auto.
std::string cuda_device_refusal(const QuantWeights& q);

/// Stage 04's CUDA executor with these matrices (`w` gives the config and the norms). Throws
/// llm::Error without a GPU, for matrices the backend cannot hold (cuda_weights_unsupported), or for
/// FP8 on a GPU without FP8 conversions (compute capability below 8.9), naming --weights.
std::unique_ptr<stage03::StepExecutor> make_quant_cuda_executor(const ModelWeights& w, const QuantWeights& q,
                                                                const stage04::CudaOptions& options, int* num_blocks);

}  // namespace llm::stage05
