#include "kv_quant.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "kernels/cpu/fp8.h"

namespace llm::stage05 {

namespace {

/// max|x|, or NaN when any x is NaN (std::max would skip it).
float max_abs(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (std::isnan(a)) return a;
    m = std::max(m, a);
  }
  return m;
}

/// The rows that have no finite scale: zero (scale 0) and non-finite ones (scale NaN or Inf, so
/// every value reads back as NaN and the step's logits are refused as non-finite). Codes 0.
template <class Code>
bool special_row(float m, int head_dim, Code* codes, float* scale) {
  if (m != 0.0f && std::isfinite(m)) return false;
  std::fill(codes, codes + head_dim, Code{0});
  *scale = m;
  return true;
}

}  // namespace

void quantize_kv_int8(const float* x, int head_dim, std::int8_t* codes, float* scale) {
  const float m = max_abs(x, head_dim);
  if (special_row(m, head_dim, codes, scale)) return;
  // BEGIN EXERCISE(kv-int8): one scale for the head so that its largest |x| maps to 127; each value to the nearest
  // int8 step (clamped to -127..127)
  const float s = m / 127.0f;
  for (int i = 0; i < head_dim; ++i)
    codes[i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(x[i] / s), -127.0f, 127.0f));
  *scale = s;
  // END EXERCISE
}

void quantize_kv_fp8(const float* x, int head_dim, std::uint8_t* codes, float* scale) {
  const float m = max_abs(x, head_dim);
  if (special_row(m, head_dim, codes, scale)) return;
  const float s = m / cpu::fp8_max(cpu::Fp8Format::E4M3);
  for (int i = 0; i < head_dim; ++i) codes[i] = cpu::fp32_to_fp8(x[i] / s, cpu::Fp8Format::E4M3);
  *scale = s;
}

stage04::KvStorage kv_storage(const std::string& kind) {
  if (kind == "f32") return {cpu::KvCodeType::f32, {}};
  if (kind == "f16") return {cpu::KvCodeType::f16, {}};
  if (kind == "int8")
    return {cpu::KvCodeType::int8, [](const float* x, int hd, std::uint8_t* codes, float* scale) {
              quantize_kv_int8(x, hd, reinterpret_cast<std::int8_t*>(codes), scale);
            }};
  if (kind == "fp8") return {cpu::KvCodeType::fp8_e4m3, quantize_kv_fp8};
  throw Error("--kv-cache " + printable(kind) + ": must be f32, f16, int8 or fp8");
}

std::size_t kv_element_bytes(const std::string& kind) { return cpu::kv_code_bytes(kv_storage(kind).type); }

std::size_t kv_scale_bytes(const std::string& kind) {
  return cpu::kv_code_has_scale(kv_storage(kind).type) ? sizeof(float) : 0;
}

}  // namespace llm::stage05
