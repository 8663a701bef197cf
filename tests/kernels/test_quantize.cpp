// kernels/cpu/fp8.* and quantize.* against independent implementations (ml_dtypes for FP8,
// gguf-py for the GGUF block formats): datasets/test/quant_reference.json, written by
// tests/reference/make_quant_reference.py. Plus the properties a table cannot show: saturation,
// NaN, round trips, and the error bound of each block format at awkward lengths and scales.
// [dequantize-gguf-py]: the stored GGUF tensors of datasets/test/tiny_random_quant.gguf and of
// SmolLM2's Q4_1 file dequantized by our reader equal gguf-py's, bit for bit
// (datasets/test/dequant_reference.json, tests/reference/make_dequant_reference.py).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/gguf.h"
#include "common/model_weights.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/quantize.h"
#include "tests/helpers/random_model.h"

namespace {

using llm::cpu::Fp8Format;

nlohmann::json read_json(const std::string& relative) {
  std::ifstream f(llm::test::repo_path(relative));
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

const nlohmann::json& reference() {
  static const nlohmann::json j = read_json("datasets/test/quant_reference.json");
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
  std::student_t_distribution<float> heavy(2.0f);  // outliers, as trained weights have
  // Awkward lengths (one block, an odd number of blocks, many) and scales from tiny to large.
  for (const std::size_t n : {std::size_t{32}, std::size_t{96}, std::size_t{32 * 67}}) {
    for (const float sigma : {1e-4f, 0.05f, 300.0f}) {
      std::vector<float> x(n);
      for (std::size_t i = 0; i < n; ++i) x[i] = (i % 3 == 0 ? heavy(rng) : normal(rng)) * sigma;
      for (auto t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
        std::vector<std::uint8_t> q(llm::cpu::row_bytes(t, x.size()), 0xCD);
        llm::cpu::quantize(t, x.data(), q.data(), x.size());
        std::vector<float> back(x.size(), NAN);  // poisoned
        llm::cpu::dequantize(t, q.data(), back.data(), x.size());
        int wrong = 0;
        // Per block: half a step of the scale (plus fp16 rounding of the scale).
        for (std::size_t b = 0; b < x.size() / 32; ++b) {
          float lo = x[b * 32], hi = lo, amax = 0;
          for (std::size_t j = 0; j < 32; ++j) {
            lo = std::min(lo, x[b * 32 + j]);
            hi = std::max(hi, x[b * 32 + j]);
            amax = std::max(amax, std::fabs(x[b * 32 + j]));
          }
          const double step = t == TensorType::Q8_0   ? amax / 127.0
                              : t == TensorType::Q4_0 ? amax / 8.0
                                                      : (hi - lo) / 15.0;
          // The scale (and Q4_1's minimum) are stored in fp16: what that rounding moves, up to
          // the largest |q| times the scale's error. It dominates for tiny weights, whose scale is
          // an fp16 subnormal (below 6.1e-5) with few significant bits.
          const std::uint8_t* blk = q.data() + b * llm::block_bytes(t);
          std::uint16_t d16, m16 = 0;
          std::memcpy(&d16, blk, 2);
          if (t == TensorType::Q4_1) std::memcpy(&m16, blk + 2, 2);
          const double qmax = t == TensorType::Q8_0 ? 127 : t == TensorType::Q4_0 ? 8 : 15;
          const double scale_err = qmax * std::fabs(llm::cpu::fp16_to_fp32(d16) - step) +
                                   (t == TensorType::Q4_1 ? std::fabs(llm::cpu::fp16_to_fp32(m16) - lo) : 0.0);
          for (std::size_t j = 0; j < 32; ++j) {
            const double err = std::fabs(static_cast<double>(back[b * 32 + j]) - x[b * 32 + j]);
            // Q4_0 clamps the most positive values at q = 15: up to a whole step off there.
            const bool ok = std::isfinite(back[b * 32 + j]) &&
                            err <= (t == TensorType::Q4_0 ? 1.01 : 0.51) * step + scale_err + 1e-6 * amax;
            if (!ok && ++wrong <= 10)
              UNSCOPED_INFO(llm::tensor_type_name(t)
                            << " n " << n << " sigma " << sigma << " block " << b << " element " << j << ": got "
                            << back[b * 32 + j] << " want " << x[b * 32 + j] << " (step " << step << ")");
          }
        }
        CHECK(wrong == 0);
      }
    }
  }
}

namespace {

/// The float32 values of a row from its little-endian hex.
std::vector<float> floats_from_hex(const std::string& hex) {
  const std::vector<std::uint8_t> b = from_hex(hex);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

/// Compares our dequantization of each listed row of `path` with gguf-py's, bit for bit; the
/// count of rows checked.
int check_rows_against_gguf_py(const std::string& path, const nlohmann::json& rows) {
  llm::GGUFFile file(path);
  int checked = 0;
  for (const auto& r : rows) {
    const std::string name = r["tensor"].get<std::string>();
    const llm::GGUFTensorInfo* t = file.find_tensor(name);
    REQUIRE(t != nullptr);
    REQUIRE(llm::tensor_type_name(t->type) == r["type"].get<std::string>());
    const auto cols = r["cols"].get<std::size_t>();
    const auto row = r["row"].get<std::size_t>();
    REQUIRE(t->dims.at(0) == cols);
    const std::size_t rb = llm::cpu::row_bytes(t->type, cols);
    std::vector<float> got(cols, NAN);  // poisoned
    llm::cpu::dequantize(t->type, file.tensor_data(*t) + row * rb, got.data(), cols);
    const std::vector<float> want = floats_from_hex(r["bits"].get<std::string>());
    REQUIRE(want.size() == cols);
    int wrong = 0;
    for (std::size_t j = 0; j < cols; ++j)
      if (std::memcmp(&got[j], &want[j], 4) != 0 && ++wrong <= 10)
        UNSCOPED_INFO(name << " (" << r["type"].get<std::string>() << ") row " << row << " element " << j << ": got "
                           << got[j] << " want " << want[j]);
    CHECK(wrong == 0);
    ++checked;
  }
  return checked;
}

const nlohmann::json& dequant_reference() {
  static const nlohmann::json j = read_json("datasets/test/dequant_reference.json");
  return j;
}

}  // namespace

TEST_CASE("the committed quantized test model dequantizes exactly as gguf-py does", "[dequantize-gguf-py]") {
  const std::string path = llm::test::repo_path("datasets/test/tiny_random_quant.gguf");
  const auto& rows = dequant_reference()["tiny_random_quant"];
  // Q8_0, Q4_0, Q4_1, BF16, F16 and F32 tensors, first and last rows.
  CHECK(check_rows_against_gguf_py(path, rows) >= 30);
  // The loader's fp32 weights (what every stage runs) hold the same values.
  const llm::Model m = llm::load_model(path);
  const auto& w = m.weights;
  auto matrix = [&](const std::string& name) -> const std::vector<float>* {
    if (name == "token_embd.weight") return &w.token_embd;
    if (name == "output.weight") return &w.output;
    const std::map<std::string, std::vector<float> llm::LayerWeights::*> fields = {
        {"attn_q", &llm::LayerWeights::wq},       {"attn_k", &llm::LayerWeights::wk},
        {"attn_v", &llm::LayerWeights::wv},       {"attn_output", &llm::LayerWeights::wo},
        {"ffn_gate", &llm::LayerWeights::w_gate}, {"ffn_up", &llm::LayerWeights::w_up},
        {"ffn_down", &llm::LayerWeights::w_down}};
    for (const auto& [part, field] : fields)
      for (std::size_t l = 0; l < w.layers.size(); ++l)
        if (name == "blk." + std::to_string(l) + "." + part + ".weight") return &(w.layers[l].*field);
    return nullptr;  // the norms
  };
  int matrices = 0;
  for (const auto& r : rows) {
    const std::vector<float>* v = matrix(r["tensor"].get<std::string>());
    if (v == nullptr) continue;
    const auto cols = r["cols"].get<std::size_t>(), row = r["row"].get<std::size_t>();
    const std::vector<float> want = floats_from_hex(r["bits"].get<std::string>());
    INFO(r["tensor"].get<std::string>() << " row " << row);
    REQUIRE(v->size() >= (row + 1) * cols);
    CHECK(std::memcmp(v->data() + row * cols, want.data(), cols * 4) == 0);
    ++matrices;
  }
  CHECK(matrices >= 28);
}

TEST_CASE("SmolLM2's Q4_1 file dequantizes exactly as gguf-py does", "[dequantize-gguf-py-smollm2]") {
  const std::string path = llm::test::repo_path("datasets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!std::filesystem::exists(path)) {
    WARN("SmolLM2 is not here (scripts/fetch_models gets it): skipped");
    return;
  }
  // The Q8_0 embedding (first and last rows), Q4_1 matrices of layers 0 and 29, an F32 norm.
  CHECK(check_rows_against_gguf_py(path, dequant_reference()["smollm2"]) == 7);
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
