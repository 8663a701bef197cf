// quant_gemv.cuh: the decode matrix-vector product with quantized weights, in numbered versions.
// Decode reads every weight once per step and does 2 flops with it, so its time is the time to
// read W: fewer bytes per weight is more tokens per second. Against fp16's 2 bytes per weight:
// Q8_0 1.0625 (34 bytes per 32), Q4_0 0.5625 (18 per 32), Q4_1 0.625 (20 per 32), FP8 E4M3 1 (+
// one scale per row).
//
//   01_fused_16B.cu    W8A16 / W4A16 on GGUF's own layout (Q8_0, Q4_0, Q4_1): a warp's rows
//                      copied into shared memory with coalesced 16-byte loads, each lane
//                      dequantizing one block in registers (its scale, and Q4_1's min, read
//                      once), fused with the dot products
//   02_prepacked.cu    the same arithmetic (Q8_0, Q4_0) on weights re-packed at load (packed_layout.h): every
//                      lane's 16-byte load is its own weights, straight into registers; no shared
//                      memory, nibbles unpacked to fp16 pairs with 3 integer ops
//   03_fp8_e4m3.cu     FP8 E4M3 weights with one fp32 scale per row (stage 05's --weights fp8):
//                      Hopper's cvt turns two codes into an fp16 pair in one instruction
//
// Activations x are fp16 (the matmul input of stage 04's plan, kernels/README.md), y is fp32,
// accumulation fp32. n <= 8 rows of x meet each weight while it is in registers: W is read once
// per call, whatever n.
//
// CPU twins: llm::cpu::qmm::matmul_02_fused (kernels/cpu/quant_matmul) on x rounded to fp16 for
// Q8_0/Q4_0/Q4_1; for FP8, each row decoded by llm::cpu::fp8_to_fp32 times its scale, then
// llm::cpu::matmul. Check and time:
//   build/kernels/kernel_harness check quant_gemv [--version N]
//   build/kernels/kernel_harness bench quant_gemv [--version N]
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace llm::cuda {

/// Weight formats of the quantized GEMV.
enum class QuantFormat { Q8_0, Q4_0, Q4_1, FP8_E4M3 };
const char* quant_format_name(QuantFormat f);

/// Most rows of x one launch takes (as the fp16 GEMV: a larger batch goes to a GEMM).
inline constexpr int kQuantGemvMaxRows = 8;

/// y[n, out] = x[n, in] W^T (or y += with `accumulate`). Device memory; what W and scales hold
/// depends on the version:
///   01: W = GGUF Q8_0, Q4_0 or Q4_1 rows back to back ([out][in/32] blocks of 34 / 18 / 20
///       bytes), the buffer 16-byte aligned and padded to quant_gemv_01_buffer_bytes(); scales
///       unused.
///   02: W = the quant stream and scales = the fp16 scale stream of qgemv::pack_for_gemv
///       (prepack.h), as the packer wrote them.
///   03: W = E4M3 codes [out][in] (in % 16 == 0), scales = float[out], w = code * scale[row].
/// x: [n, in] fp16, 16-byte aligned; y: [n, out] fp32; 1 <= n <= 8; in % 32 == 0 for the GGUF
/// block formats.
struct QuantGemvArgs {
  QuantFormat format = QuantFormat::Q8_0;
  const void* W = nullptr;
  const void* scales = nullptr;
  const __half* x = nullptr;
  float* y = nullptr;
  int n = 1;
  int in = 0;
  int out = 0;
  bool accumulate = false;
};

/// Bytes version 01's W buffer must have: the rows rounded up to a multiple of 16 (its last
/// 16-byte load may cover up to 15 bytes past the last row).
std::size_t quant_gemv_01_buffer_bytes(QuantFormat f, int out, int in);

/// Whether this device converts FP8 natively (compute capability 8.9 or newer); false without one.
bool device_has_fp8();

void quant_gemv_01_fused_16B(const QuantGemvArgs& a, cudaStream_t stream);
void quant_gemv_02_prepacked(const QuantGemvArgs& a, cudaStream_t stream);
void quant_gemv_03_fp8_e4m3(const QuantGemvArgs& a, cudaStream_t stream);

/// Throws std::invalid_argument naming the field (and the version) when the args are impossible
/// for `version` (1, 2 or 3), including a format that version does not take.
void validate(const QuantGemvArgs& a, int version);

struct QuantGemvVersion {
  int number;
  const char* name;
  bool (*takes)(QuantFormat);
  void (*run)(const QuantGemvArgs&, cudaStream_t);
};
/// Version 01 reads every GGUF block format as stored; 02's packer takes Q8_0 and Q4_0 only.
inline bool takes_gguf_blocks(QuantFormat f) {
  return f == QuantFormat::Q8_0 || f == QuantFormat::Q4_0 || f == QuantFormat::Q4_1;
}
inline bool takes_block_formats(QuantFormat f) { return f == QuantFormat::Q8_0 || f == QuantFormat::Q4_0; }
inline bool takes_fp8(QuantFormat f) { return f == QuantFormat::FP8_E4M3; }
/// Whether `version` (1, 2 or 3) takes format f.
inline bool version_takes(int version, QuantFormat f) {
  return version == 1 ? takes_gguf_blocks(f) : version == 2 ? takes_block_formats(f) : version == 3 && takes_fp8(f);
}
inline constexpr QuantGemvVersion kQuantGemvVersions[] = {
    {1, "01_fused_16B", takes_gguf_blocks, quant_gemv_01_fused_16B},
    {2, "02_prepacked", takes_block_formats, quant_gemv_02_prepacked},
    {3, "03_fp8_e4m3", takes_fp8, quant_gemv_03_fp8_e4m3},
};

}  // namespace llm::cuda
