// quant_gemv.cu: what the quantized GEMV versions share: argument checks, buffer sizes, and
// whether the device has FP8 conversions.
#include "kernels/cuda/quant_gemv/quant_gemv.cuh"

#include "kernels/cuda/quant_gemv/gguf_tiles.h"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace llm::cuda {

const char* quant_format_name(QuantFormat f) {
  switch (f) {
    case QuantFormat::Q8_0:
      return "Q8_0";
    case QuantFormat::Q4_0:
      return "Q4_0";
    case QuantFormat::Q4_1:
      return "Q4_1";
    case QuantFormat::FP8_E4M3:
      return "FP8_E4M3";
  }
  return "?";
}

std::size_t quant_gemv_01_buffer_bytes(QuantFormat f, int out, int in) {
  if (f == QuantFormat::FP8_E4M3)
    throw std::invalid_argument("quant_gemv_01_buffer_bytes: FP8_E4M3 is not a GGUF block format");
  const qgemv::GgufBlock b = f == QuantFormat::Q8_0   ? qgemv::GgufBlock::Q8_0
                             : f == QuantFormat::Q4_0 ? qgemv::GgufBlock::Q4_0
                                                      : qgemv::GgufBlock::Q4_1;
  return qgemv::gguf_buffer_bytes(b, out, in);
}

bool device_has_fp8() {
  // Asked once per process (validate runs on every launch).
  static const bool has = [] {
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
      (void)cudaGetLastError();  // no device is an answer here, not an error to leave behind
      return false;
    }
    return major > 8 || (major == 8 && minor >= 9);
  }();
  return has;
}

void validate(const QuantGemvArgs& a, int version) {
  const std::string where = "quant_gemv " + std::to_string(version) + ": ";
  auto fail = [&](const std::string& what) { throw std::invalid_argument(where + what); };
  auto aligned16 = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  const bool fp8 = a.format == QuantFormat::FP8_E4M3;
  if (version < 1 || version > 3) fail("no version " + std::to_string(version));
  if (version >= 1 && version <= 3 && !version_takes(version, a.format))
    fail(std::string("format ") + quant_format_name(a.format) + " is not taken by this version");
  if (a.n < 1 || a.n > kQuantGemvMaxRows)
    fail("n = " + std::to_string(a.n) + " (must be 1.." + std::to_string(kQuantGemvMaxRows) + ")");
  const int multiple = fp8 ? 16 : 32;
  if (a.in < multiple || a.in % multiple != 0)
    fail("in = " + std::to_string(a.in) + " (must be a positive multiple of " + std::to_string(multiple) + ")");
  if (a.out < 1) fail("out = " + std::to_string(a.out) + " (must be >= 1)");
  if (!a.W || !aligned16(a.W)) fail("W = " + std::to_string(reinterpret_cast<std::uintptr_t>(a.W)) + " (must be 16-byte aligned, not null)");
  if (!a.x || !aligned16(a.x)) fail("x = " + std::to_string(reinterpret_cast<std::uintptr_t>(a.x)) + " (must be 16-byte aligned, not null)");
  if (!a.y) fail("y = null");
  if (version != 1 && !a.scales) fail("scales = null");
  if (fp8 && !device_has_fp8())
    fail("FP8 E4M3 weights need a GPU with FP8 conversions (compute capability 8.9 or newer; Hopper is 9.0)");
}

}  // namespace llm::cuda
