#include "kv_quant.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "kernels/cpu/fp8.h"

namespace llm::stage05 {

namespace {

float max_abs(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace

void round_kv_to_int8(float* row, int n_kv_heads, int head_dim) {
  for (int h = 0; h < n_kv_heads; ++h) {
    float* x = row + static_cast<std::ptrdiff_t>(h) * head_dim;
    const float m = max_abs(x, head_dim);
    if (m == 0.0f) continue;  // an all-zero head stays zero (scale 0 would divide by zero)
    // BEGIN EXERCISE(kv-int8): one scale for the head so that its largest |x| maps to 127; each value to the nearest
    // int8 step and back
    const float scale = m / 127.0f;
    for (int i = 0; i < head_dim; ++i) x[i] = std::clamp(std::nearbyint(x[i] / scale), -127.0f, 127.0f) * scale;
    // END EXERCISE
  }
}

void round_kv_to_fp8(float* row, int n_kv_heads, int head_dim) {
  const float top = cpu::fp8_max(cpu::Fp8Format::E4M3);
  for (int h = 0; h < n_kv_heads; ++h) {
    float* x = row + static_cast<std::ptrdiff_t>(h) * head_dim;
    const float m = max_abs(x, head_dim);
    if (m == 0.0f) continue;
    const float scale = m / top;
    for (int i = 0; i < head_dim; ++i)
      x[i] = cpu::fp8_to_fp32(cpu::fp32_to_fp8(x[i] / scale, cpu::Fp8Format::E4M3), cpu::Fp8Format::E4M3) * scale;
  }
}

stage04::KvRounding kv_rounding(const std::string& kind) {
  if (kind == "f32") return {};
  if (kind == "f16") return stage04::round_kv_to_fp16;
  if (kind == "int8") return round_kv_to_int8;
  if (kind == "fp8") return round_kv_to_fp8;
  throw Error("--kv-cache " + printable(kind) + ": must be f32, f16, int8 or fp8");
}

std::size_t kv_element_bytes(const std::string& kind) {
  if (kind == "f32") return 4;
  if (kind == "f16") return 2;
  if (kind == "int8" || kind == "fp8") return 1;
  throw Error("--kv-cache " + printable(kind) + ": must be f32, f16, int8 or fp8");
}

}  // namespace llm::stage05
