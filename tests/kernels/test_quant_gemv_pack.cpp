// The host side of the CUDA quantized GEMV (kernels/cuda/quant_gemv/), tested without a GPU:
//   - pack_for_gemv / unpack_to_gguf round-trip GGUF Q8_0 and Q4_0 rows byte for byte, padding
//     zero, at shapes that leave partial groups of rows and partial steps;
//   - the packed layout walked exactly as 02_prepacked.cu walks it (packed_layout.h's index
//     functions, lane by lane, step by step) and decoded with the kernel's bit tricks
//     (q4_pair_bits, q8_pair_bits, minus the fp16 bias) gives y = x W^T of the dequantized GGUF
//     rows (llm::cpu::dequantize, in double): the indexing and the nibble order the kernel relies
//     on, checked where CI can run them;
//   - 01_fused_16B.cu's staging of GGUF rows (gguf_tiles.h; Q8_0, Q4_0, Q4_1): every tile's 16-byte words stay inside
//     the padded buffer and the shared-memory slot, and each lane finds its block's bytes at
//     skew + lane * block_bytes;
//   - bad types and shapes are refused naming the field and value.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cuda/quant_gemv/gguf_tiles.h"
#include "kernels/cuda/quant_gemv/prepack.h"

namespace {

using namespace llm::cuda::qgemv;
using llm::TensorType;

std::vector<std::uint8_t> random_rows(TensorType t, int out, int in, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> row(static_cast<std::size_t>(in));
  const std::size_t rb = llm::cpu::row_bytes(t, static_cast<std::size_t>(in));
  std::vector<std::uint8_t> bytes(rb * static_cast<std::size_t>(out));
  for (int o = 0; o < out; ++o) {
    for (auto& v : row) v = d(rng) * (o % 3 == 0 ? 100.0f : 0.01f);  // scales of many sizes
    llm::cpu::quantize(t, row.data(), bytes.data() + static_cast<std::size_t>(o) * rb, row.size());
  }
  return bytes;
}

struct Shape {
  int out, in;
};
const Shape kShapes[] = {{1, 32}, {7, 96}, {8, 128}, {9, 1056}, {33, 576}, {17, 4096}, {3, 160}};

/// The fp16 pair `bits` minus the fp16 `bias` in both halves, as the kernel's __hsub2 computes it
/// (exact here: both are integers below 2048).
void sub_bias(std::uint32_t bits, std::uint16_t bias, float& lo, float& hi) {
  const float b = llm::cpu::half_to_float(bias);
  lo = llm::cpu::half_to_float(static_cast<std::uint16_t>(bits & 0xFFFF)) - b;
  hi = llm::cpu::half_to_float(static_cast<std::uint16_t>(bits >> 16)) - b;
}

/// 02_prepacked.cu's loop on the CPU: every (group, step, lane), the lane's chunk decoded with the
/// kernel's bit tricks, times its scale, against x. Returns y[n, out] in double.
std::vector<double> walk_like_kernel(const PackedMatrix& m, const std::vector<float>& x, int n) {
  const PackedShape& p = m.shape;
  std::vector<double> y(static_cast<std::size_t>(n) * p.out, 0.0);
  const int wpc = weights_per_chunk(p.type);
  for (int g = 0; g < p.groups(); ++g)
    for (int s = 0; s < p.steps(); ++s)
      for (int lane = 0; lane < 32; ++lane) {
        const int r = lane_row(lane), c = lane_chunk(s, lane), row = g * kPackRows + r;
        if (c >= p.chunks_per_row() || row >= p.out) continue;
        std::uint32_t words[4];
        std::memcpy(words, &m.quants[chunk_index(p, g, s, lane) * kChunkBytes], 16);
        const float d = llm::cpu::half_to_float(m.scales[scale_index(p, g, chunk_block(p.type, c), r)]);
        float w[32];
        for (int k = 0; k < 4; ++k) {
          if (p.type == PackedType::Q8_0) {
            for (int q = 0; q < 2; ++q) sub_bias(q8_pair_bits(words[k], q), kQ8Bias, w[4 * k + 2 * q], w[4 * k + 2 * q + 1]);
          } else {
            for (int q = 0; q < 4; ++q) sub_bias(q4_pair_bits(words[k], q), kQ4Bias, w[8 * k + 2 * q], w[8 * k + 2 * q + 1]);
          }
        }
        for (int i = 0; i < n; ++i) {
          double sum = 0;
          for (int j = 0; j < wpc; ++j)
            sum += static_cast<double>(w[j]) * x[static_cast<std::size_t>(i) * p.in + static_cast<std::size_t>(c) * wpc + j];
          y[static_cast<std::size_t>(i) * p.out + row] += d * sum;
        }
      }
  return y;
}

}  // namespace

TEST_CASE("prepacked GEMV layout: pack and unpack round-trip GGUF rows byte for byte", "[quant-gemv-pack]") {
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0}) {
    for (const Shape& s : kShapes) {
      INFO(llm::tensor_type_name(t) << " out=" << s.out << " in=" << s.in);
      const std::vector<std::uint8_t> rows = random_rows(t, s.out, s.in, 17u * s.out + s.in);
      const PackedMatrix m = pack_for_gemv(t, rows.data(), s.out, s.in);
      REQUIRE(m.quants.size() == m.shape.quant_chunks() * kChunkBytes);
      REQUIRE(m.scales.size() == m.shape.scale_count());
      REQUIRE(m.quants.size() % 512 == 0);  // whole steps: every warp load is 512 bytes
      CHECK(unpack_to_gguf(m) == rows);
      // Every byte of the rows landed somewhere: the packed streams hold as many non-padding
      // bytes as GGUF, and padding (rows past out, chunks past the row) is zero.
      std::size_t padding_nonzero = 0;
      const PackedShape& p = m.shape;
      for (int g = 0; g < p.groups(); ++g)
        for (int st = 0; st < p.steps(); ++st)
          for (int lane = 0; lane < 32; ++lane) {
            const bool real = lane_chunk(st, lane) < p.chunks_per_row() && g * kPackRows + lane_row(lane) < p.out;
            if (real) continue;
            for (int b = 0; b < kChunkBytes; ++b) padding_nonzero += m.quants[chunk_index(p, g, st, lane) * kChunkBytes + b] != 0;
          }
      CHECK(padding_nonzero == 0);
    }
  }
}

TEST_CASE("prepacked GEMV layout: the kernel's walk and bit tricks give x W^T of the GGUF rows", "[quant-gemv-pack]") {
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0}) {
    for (const Shape& s : kShapes) {
      INFO(llm::tensor_type_name(t) << " out=" << s.out << " in=" << s.in);
      const int n = 3;
      const std::vector<std::uint8_t> rows = random_rows(t, s.out, s.in, 31u * s.out + s.in);
      std::mt19937_64 rng(s.in);
      std::normal_distribution<float> d(0.0f, 1.0f);
      std::vector<float> x(static_cast<std::size_t>(n) * s.in);
      for (auto& v : x) v = d(rng);
      llm::cpu::round_to_half(x);
      // The definition: dequantize, then dot in double.
      std::vector<float> W(static_cast<std::size_t>(s.out) * s.in);
      llm::cpu::dequantize(t, rows.data(), W.data(), W.size());
      const std::vector<double> got = walk_like_kernel(pack_for_gemv(t, rows.data(), s.out, s.in), x, n);
      for (int i = 0; i < n; ++i)
        for (int o = 0; o < s.out; ++o) {
          double want = 0, scale = 0;
          for (int j = 0; j < s.in; ++j) {
            const double prod = static_cast<double>(W[static_cast<std::size_t>(o) * s.in + j]) * x[static_cast<std::size_t>(i) * s.in + j];
            want += prod;
            scale += std::fabs(prod);
          }
          const double g = got[static_cast<std::size_t>(i) * s.out + o];
          INFO("row " << o << " x row " << i << ": got " << g << " want " << want);
          REQUIRE(std::isfinite(g));
          // Only the products' order and the scale's place (d * sum vs sum of q d x) differ.
          REQUIRE(std::fabs(g - want) <= 1e-9 * scale + 1e-30);
        }
    }
  }
}

TEST_CASE("prepacked GEMV layout: the bit tricks on every code", "[quant-gemv-pack]") {
  // Q4_0: a word holding nibble v at every position gives pairs (v - 8, v - 8).
  for (std::uint32_t v = 0; v < 16; ++v) {
    std::uint32_t word = 0;
    for (int k = 0; k < 8; ++k) word |= v << (4 * k);
    for (int p = 0; p < 4; ++p) {
      float lo, hi;
      sub_bias(q4_pair_bits(word, p), kQ4Bias, lo, hi);
      CHECK(lo == static_cast<float>(static_cast<int>(v) - 8));
      CHECK(hi == static_cast<float>(static_cast<int>(v) - 8));
    }
  }
  // Q8_0: every signed byte, in each of the four byte positions.
  for (int q = -128; q < 128; ++q) {
    for (int pos = 0; pos < 4; ++pos) {
      const std::uint32_t word = (static_cast<std::uint32_t>(static_cast<std::uint8_t>(q)) << (8 * pos)) | (pos == 0 ? 0u : 0x01u);
      float v[4];
      sub_bias(q8_pair_bits(word, 0), kQ8Bias, v[0], v[1]);
      sub_bias(q8_pair_bits(word, 1), kQ8Bias, v[2], v[3]);
      CHECK(v[pos] == static_cast<float>(q));
      if (pos != 0) CHECK(v[0] == 1.0f);
    }
  }
  // The nibble positions are a permutation of 0..31 that keeps each word's elements in the word.
  std::vector<int> seen(32, 0);
  for (int j = 0; j < 32; ++j) {
    const int pos = q4_nibble_position(j);
    REQUIRE(pos / 8 == j / 8);
    ++seen[static_cast<std::size_t>(pos)];
  }
  for (int c : seen) CHECK(c == 1);
}

TEST_CASE("prepacked GEMV layout: bad types and shapes are refused by name", "[quant-gemv-pack]") {
  const std::vector<std::uint8_t> rows(1024, 0);
  auto message = [&](TensorType t, int out, int in) {
    try {
      (void)pack_for_gemv(t, rows.data(), out, in);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(message(TensorType::Q4_1, 1, 32), Catch::Contains("Q4_1"));
  CHECK_THAT(message(TensorType::F16, 1, 32), Catch::Contains("F16"));
  CHECK_THAT(message(TensorType::Q8_0, 0, 32), Catch::Contains("out = 0"));
  CHECK_THAT(message(TensorType::Q8_0, 1, 48), Catch::Contains("in = 48"));
  CHECK_THAT(message(TensorType::Q4_0, 1, 0), Catch::Contains("in = 0"));
}

TEST_CASE("GGUF tiles of version 01: every lane finds its block inside the words it copies", "[quant-gemv-pack]") {
  for (TensorType t : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_1}) {
    const GgufBlock gb = t == TensorType::Q8_0   ? GgufBlock::Q8_0
                         : t == TensorType::Q4_0 ? GgufBlock::Q4_0
                                                 : GgufBlock::Q4_1;
    const int bb = gguf_block_bytes(gb);
    REQUIRE(static_cast<std::size_t>(bb) == llm::cpu::row_bytes(t, 32));  // the blocks kernels/cpu writes
    for (const Shape& s : kShapes) {
      INFO(llm::tensor_type_name(t) << " out=" << s.out << " in=" << s.in);
      const std::vector<std::uint8_t> rows = random_rows(t, s.out, s.in, 7u * s.out + s.in);
      std::vector<std::uint8_t> buffer(gguf_buffer_bytes(gb, s.out, s.in), 0xFF);  // padding as the harness
      REQUIRE(buffer.size() % 16 == 0);
      REQUIRE(buffer.size() >= rows.size());
      std::memcpy(buffer.data(), rows.data(), rows.size());
      const int blocks = s.in / 32;
      for (int row = 0; row < s.out; ++row)
        for (int b0 = 0; b0 < blocks; b0 += kTileBlocks) {
          const int nb = std::min(kTileBlocks, blocks - b0);
          const TileSpan span = tile_span(gb, blocks, row, b0, nb);
          INFO("row " << row << " tile at block " << b0 << ": words " << span.words << ", skew " << span.skew);
          REQUIRE(span.words <= tile_slot_words(gb));
          REQUIRE((span.first_word + static_cast<std::size_t>(span.words)) * 16 <= buffer.size());
          REQUIRE(span.skew % 2 == 0);  // the fp16 scale (and min) and 16-bit quant reads stay aligned
          REQUIRE(span.skew <= 14);
          const std::uint8_t* stage = buffer.data() + span.first_word * 16;  // what the warp copies
          for (int lane = 0; lane < nb; ++lane) {
            const std::uint8_t* want = rows.data() + (static_cast<std::size_t>(row) * blocks + b0 + lane) * bb;
            REQUIRE(std::memcmp(stage + span.skew + lane * bb, want, static_cast<std::size_t>(bb)) == 0);
            REQUIRE(span.skew + (lane + 1) * bb <= span.words * 16);
          }
        }
    }
  }
}
