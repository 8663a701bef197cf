// prepack.cpp: GGUF Q8_0 / Q4_0 rows <-> the packed layout of 02_prepacked.cu (packed_layout.h).
#include "kernels/cuda/quant_gemv/prepack.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/dequantize.h"

namespace llm::cuda::qgemv {

namespace {

/// Where the 16 bytes of chunk c of row o start in the quant stream.
std::size_t chunk_offset(const PackedShape& p, int o, int c) {
  const int lane = (c % kChunksPerStep) * kPackRows + o % kPackRows;
  return chunk_index(p, o / kPackRows, c / kChunksPerStep, lane) * kChunkBytes;
}

}  // namespace

PackedType packed_type(TensorType t) {
  if (t == TensorType::Q8_0) return PackedType::Q8_0;
  if (t == TensorType::Q4_0) return PackedType::Q4_0;
  throw std::invalid_argument("prepacked GEMV: type " + tensor_type_name(t) + " is not packed (Q8_0 and Q4_0 are)");
}

PackedMatrix pack_for_gemv(TensorType t, const std::uint8_t* rows, int out, int in) {
  PackedMatrix m;
  m.shape.type = packed_type(t);
  if (out < 1) throw std::invalid_argument("prepacked GEMV: out = " + std::to_string(out) + " (must be >= 1)");
  if (in < 32 || in % 32 != 0)
    throw std::invalid_argument("prepacked GEMV: in = " + std::to_string(in) + " (must be a positive multiple of 32)");
  m.shape.in = in;
  m.shape.out = out;
  const PackedShape& p = m.shape;
  m.quants.assign(p.quant_chunks() * kChunkBytes, 0);
  m.scales.assign(p.scale_count(), 0);
  const std::size_t rb = cpu::row_bytes(t, static_cast<std::size_t>(in));
  const std::size_t bb = block_bytes(t);
  for (int o = 0; o < out; ++o) {
    for (int b = 0; b < p.blocks_per_row(); ++b) {
      const std::uint8_t* blk = rows + static_cast<std::size_t>(o) * rb + static_cast<std::size_t>(b) * bb;
      std::memcpy(&m.scales[scale_index(p, o / kPackRows, b, o % kPackRows)], blk, 2);
      if (p.type == PackedType::Q8_0) {
        for (int h = 0; h < 2; ++h) std::memcpy(&m.quants[chunk_offset(p, o, 2 * b + h)], blk + 2 + 16 * h, 16);
        continue;
      }
      std::uint8_t* dst = &m.quants[chunk_offset(p, o, b)];
      for (int j = 0; j < 32; ++j) {
        const int q = j < 16 ? blk[2 + j] & 0x0F : blk[2 + j - 16] >> 4;
        const int pos = q4_nibble_position(j);
        dst[pos / 2] |= static_cast<std::uint8_t>(pos % 2 == 0 ? q : q << 4);
      }
    }
  }
  return m;
}

std::vector<std::uint8_t> unpack_to_gguf(const PackedMatrix& m) {
  const PackedShape& p = m.shape;
  const TensorType t = p.type == PackedType::Q8_0 ? TensorType::Q8_0 : TensorType::Q4_0;
  const std::size_t rb = cpu::row_bytes(t, static_cast<std::size_t>(p.in));
  const std::size_t bb = block_bytes(t);
  if (m.quants.size() != p.quant_chunks() * kChunkBytes || m.scales.size() != p.scale_count())
    throw std::invalid_argument("unpack_to_gguf: the streams do not match the shape");
  std::vector<std::uint8_t> rows(static_cast<std::size_t>(p.out) * rb, 0);
  for (int o = 0; o < p.out; ++o) {
    for (int b = 0; b < p.blocks_per_row(); ++b) {
      std::uint8_t* blk = rows.data() + static_cast<std::size_t>(o) * rb + static_cast<std::size_t>(b) * bb;
      std::memcpy(blk, &m.scales[scale_index(p, o / kPackRows, b, o % kPackRows)], 2);
      if (p.type == PackedType::Q8_0) {
        for (int h = 0; h < 2; ++h) std::memcpy(blk + 2 + 16 * h, &m.quants[chunk_offset(p, o, 2 * b + h)], 16);
        continue;
      }
      const std::uint8_t* src = &m.quants[chunk_offset(p, o, b)];
      for (int j = 0; j < 32; ++j) {
        const int pos = q4_nibble_position(j);
        const int q = pos % 2 == 0 ? src[pos / 2] & 0x0F : src[pos / 2] >> 4;
        blk[2 + j % 16] |= static_cast<std::uint8_t>(j < 16 ? q : q << 4);
      }
    }
  }
  return rows;
}

}  // namespace llm::cuda::qgemv
