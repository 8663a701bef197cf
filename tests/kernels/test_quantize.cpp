// kernels/cpu/fp8.* and quantize.* against independent implementations (ml_dtypes for FP8,
// gguf-py for the GGUF block formats): datasets/test/quant_reference.json, written by
// tests/reference/make_quant_reference.py. Plus the properties a table cannot show: saturation,
// NaN, round trips, and the error bound of each block format.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/quantize.h"
#include "tests/helpers/random_model.h"

namespace {

using llm::cpu::Fp8Format;

const nlohmann::json& reference() {
  static const nlohmann::json j = [] {
    std::ifstream f(llm::test::repo_path("datasets/test/quant_reference.json"));
    REQUIRE(f.good());
    return nlohmann::json::parse(f);
  }();
  return j;
}

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  std::vector<std::uint8_t> out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

}  // namespace

TEST_CASE("fp8: every code decodes as ml_dtypes says", "[quantize]") {
  for (auto [name, format] : {std::pair{"E4M3", Fp8Format::E4M3}, {"E5M2", Fp8Format::E5M2}}) {
    const auto& table = reference()["fp8"][name]["decode"];
    REQUIRE(table.size() == 256);
    int wrong = 0;
    for (int code = 0; code < 256; ++code) {
      const float got = llm::cpu::fp8_to_fp32(static_cast<std::uint8_t>(code), format);
      const auto& want = table[static_cast<std::size_t>(code)];
      bool ok;
      if (want.is_null()) {
        ok = std::isnan(got);
      } else if (want.is_string()) {
        ok = std::isinf(got) && ((want.get<std::string>() == "inf") == (got > 0));
      } else {
        ok = got == want.get<float>() && std::signbit(got) == std::signbit(want.get<float>());
      }
      if (!ok && ++wrong <= 10)
        UNSCOPED_INFO(name << " code 0x" << std::hex << code << std::dec << ": got " << got << " want " << want.dump());
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("fp8: encoding rounds to nearest even as ml_dtypes does", "[quantize]") {
  for (auto [name, format] : {std::pair{"E4M3", Fp8Format::E4M3}, {"E5M2", Fp8Format::E5M2}}) {
    const auto& cases = reference()["fp8"][name]["encode"];
    REQUIRE(cases.size() > 1000);
    int wrong = 0;
    for (const auto& c : cases) {
      const float x = from_bits(c[0].get<std::uint32_t>());
      const int want = c[1].get<int>(), got = llm::cpu::fp32_to_fp8(x, format);
      if (got != want && ++wrong <= 10)
        UNSCOPED_INFO(name << " x=" << x << ": got 0x" << std::hex << got << " want 0x" << want << std::dec);
    }
    INFO(cases.size() << " encodings of " << name);
    CHECK(wrong == 0);
  }
}

TEST_CASE("fp8: saturation, NaN, signed zero and round trips", "[quantize]") {
  for (auto format : {Fp8Format::E4M3, Fp8Format::E5M2}) {
    INFO(llm::cpu::fp8_name(format));
    const float max = llm::cpu::fp8_max(format);
    const std::uint8_t max_code = llm::cpu::fp32_to_fp8(max, format);
    CHECK(llm::cpu::fp8_to_fp32(max_code, format) == max);
    for (float big : {max * 1.01f, max * 2, 1e30f, INFINITY}) {
      CHECK(llm::cpu::fp32_to_fp8(big, format) == max_code);
      CHECK(llm::cpu::fp32_to_fp8(-big, format) == (max_code | 0x80));
    }
    CHECK(std::isnan(llm::cpu::fp8_to_fp32(llm::cpu::fp32_to_fp8(NAN, format), format)));
    CHECK(llm::cpu::fp32_to_fp8(-0.0f, format) == 0x80);
    CHECK(llm::cpu::fp32_to_fp8(1e-30f, format) == 0x00);
    // Every finite code survives decode + encode.
    for (int code = 0; code < 256; ++code) {
      const float v = llm::cpu::fp8_to_fp32(static_cast<std::uint8_t>(code), format);
      if (std::isfinite(v)) CHECK(llm::cpu::fp32_to_fp8(v, format) == code);
    }
  }
}

TEST_CASE("Q8_0, Q4_0, Q4_1 and BF16 bytes equal gguf-py's quantizers", "[quantize]") {
  using llm::TensorType;
  int row = 0;
  for (const auto& entry : reference()["blocks"]) {
    std::vector<float> x;
    for (const auto& b : entry["x"]) x.push_back(from_bits(b.get<std::uint32_t>()));
    for (auto [name, t] : {std::pair{"Q8_0", TensorType::Q8_0},
                           {"Q4_0", TensorType::Q4_0},
                           {"Q4_1", TensorType::Q4_1},
                           {"BF16", TensorType::BF16}}) {
      const auto want = from_hex(entry[name].get<std::string>());
      std::vector<std::uint8_t> got(llm::cpu::row_bytes(t, x.size()), 0xCD);
      REQUIRE(got.size() == want.size());
      llm::cpu::quantize(t, x.data(), got.data(), x.size());
      std::size_t first = got.size();
      for (std::size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i]) {
          first = i;
          break;
        }
      INFO("row " << row << " (" << x.size() << " values) as " << name << ": first differing byte " << first
                  << (first < got.size() ? " got " + std::to_string(got[first]) + " want " + std::to_string(want[first])
                                         : ""));
      CHECK(first == got.size());
    }
    ++row;
  }
}

TEST_CASE("each block format dequantizes within its error bound", "[quantize]") {
  using llm::TensorType;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  std::vector<float> x(32 * 64);
  for (auto& v : x) v = normal(rng) * 0.05f;
  for (auto t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    std::vector<std::uint8_t> q(llm::cpu::row_bytes(t, x.size()));
    llm::cpu::quantize(t, x.data(), q.data(), x.size());
    std::vector<float> back(x.size());
    llm::cpu::dequantize(t, q.data(), back.data(), x.size());
    // Per block: half a step of the scale (plus fp16 rounding of the scale).
    for (std::size_t b = 0; b < x.size() / 32; ++b) {
      float lo = x[b * 32], hi = lo, amax = 0;
      for (std::size_t j = 0; j < 32; ++j) {
        lo = std::min(lo, x[b * 32 + j]);
        hi = std::max(hi, x[b * 32 + j]);
        amax = std::max(amax, std::fabs(x[b * 32 + j]));
      }
      const float step = t == TensorType::Q8_0 ? amax / 127 : t == TensorType::Q4_0 ? amax / 8 : (hi - lo) / 15;
      for (std::size_t j = 0; j < 32; ++j) {
        const float err = std::fabs(back[b * 32 + j] - x[b * 32 + j]);
        INFO(llm::tensor_type_name(t) << " block " << b << " element " << j);
        // Q4_0 clamps the most positive values at q = 15: up to a whole step off there.
        CHECK(err <= (t == TensorType::Q4_0 ? 1.01f : 0.51f) * step + 1e-3f * amax);
      }
    }
  }
}

TEST_CASE("fp8 rows with a per-row scale", "[quantize]") {
  std::vector<float> x = {0.0f, 1e-3f, -2.5f, 7.0f, -100.0f, 3.14159f};
  for (auto format : {Fp8Format::E4M3, Fp8Format::E5M2}) {
    std::vector<std::uint8_t> codes(x.size());
    const float scale = llm::cpu::quantize_fp8_row(x.data(), codes.data(), x.size(), format);
    CHECK(scale == Approx(100.0f / llm::cpu::fp8_max(format)));
    // The largest magnitude maps to the largest code; relative error within half an ulp of the format.
    const double rel = format == Fp8Format::E4M3 ? 1.0 / 16 : 1.0 / 8;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const float back = llm::cpu::fp8_to_fp32(codes[i], format) * scale;
      INFO(llm::cpu::fp8_name(format) << " x=" << x[i] << " back=" << back);
      CHECK(std::fabs(back - x[i]) <= rel * std::fabs(x[i]) + 1e-6 + (std::fabs(x[i]) < 1e-2 ? 1e-3 : 0.0));
    }
    std::vector<float> zeros(8, 0.0f);
    codes.resize(zeros.size());
    CHECK(llm::cpu::quantize_fp8_row(zeros.data(), codes.data(), zeros.size(), format) == 1.0f);
  }
}
