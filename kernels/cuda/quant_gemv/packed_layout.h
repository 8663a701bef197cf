// packed_layout.h: where every byte of a prepacked quantized weight matrix lives, and how a lane
// turns 4 packed bytes into fp16 weights. Plain C++ that nvcc also compiles for the device, so
// that the CPU tests run the very index arithmetic and bit tricks that 02_prepacked.cu runs
// (tests/kernels/test_quant_gemv_pack.cpp), and the packer (prepack.cpp) cannot disagree with
// the kernel about the layout.
//
// The layout (Marlin-style, for a GEMV; Marlin's own targets tensor-core fragments):
//   - rows are taken in groups of kPackRows = 8 consecutive rows (the last group padded with zero
//     rows);
//   - a row's quants are cut into 16-byte chunks: Q8_0 half a block (16 int8), Q4_0 one block
//     (32 nibbles); the fp16 scales go to a stream of their own;
//   - within a group, a "step" is 4 consecutive chunks of each of the 8 rows: 32 chunks, 512
//     contiguous bytes, lane l of a warp holding chunk 4s + l/8 of row l%8. So one warp load
//     instruction reads 512 contiguous bytes, and a group's quants are one contiguous stretch
//     (GGUF's layout: 34- or 18-byte blocks, scale and quants interleaved, never 16-byte aligned);
//   - scales [group][block][8 rows] fp16: the 8 lanes reading one chunk column read 16
//     contiguous bytes of scales;
//   - Q4_0 nibbles reordered inside each 32-bit word so that one shift, one AND and one OR give
//     two consecutive weights as an fp16 pair (1024 + q) that meets x's half2 pair directly
//     (q4_pair_bits below); GGUF stores element j and j + 16 in one byte.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define LLM_HD __host__ __device__ __forceinline__
#else
#define LLM_HD inline
#endif

namespace llm::cuda::qgemv {

/// Rows per packed group (= lanes that share one chunk column in a step).
inline constexpr int kPackRows = 8;
/// Bytes of quants a lane loads at once (one uint4).
inline constexpr int kChunkBytes = 16;
/// Chunks of one row in one step: 32 lanes / kPackRows rows.
inline constexpr int kChunksPerStep = 32 / kPackRows;

/// The packed formats. Q8_0: a chunk is half a block (16 int8 in element order). Q4_0: a chunk
/// is one block (32 nibbles, reordered: q4_nibble_position).
enum class PackedType { Q8_0, Q4_0 };

/// Weights per 16-byte chunk: 16 (Q8_0) or 32 (Q4_0).
LLM_HD constexpr int weights_per_chunk(PackedType t) { return t == PackedType::Q8_0 ? 16 : 32; }

/// The geometry of one packed matrix of `out` rows of `in` weights (in a multiple of 32).
struct PackedShape {
  PackedType type = PackedType::Q8_0;
  int in = 0, out = 0;

  LLM_HD constexpr int groups() const { return (out + kPackRows - 1) / kPackRows; }
  LLM_HD constexpr int blocks_per_row() const { return in / 32; }
  LLM_HD constexpr int chunks_per_row() const { return in / weights_per_chunk(type); }
  /// Steps per group: ceil(chunks_per_row / kChunksPerStep); the last may be partly padding.
  LLM_HD constexpr int steps() const { return (chunks_per_row() + kChunksPerStep - 1) / kChunksPerStep; }
  /// 16-byte chunks in the quant stream (padding included).
  LLM_HD constexpr std::size_t quant_chunks() const {
    return static_cast<std::size_t>(groups()) * static_cast<std::size_t>(steps()) * 32;
  }
  /// fp16 scales in the scale stream (padding rows included).
  LLM_HD constexpr std::size_t scale_count() const {
    return static_cast<std::size_t>(groups()) * static_cast<std::size_t>(blocks_per_row()) * kPackRows;
  }
};

/// The chunk (16-byte unit) index in the quant stream of (group g, step s, lane).
LLM_HD constexpr std::size_t chunk_index(const PackedShape& p, int g, int s, int lane) {
  return (static_cast<std::size_t>(g) * static_cast<std::size_t>(p.steps()) + static_cast<std::size_t>(s)) * 32 +
         static_cast<std::size_t>(lane);
}
/// The row within its group that `lane` works on.
LLM_HD constexpr int lane_row(int lane) { return lane % kPackRows; }
/// The chunk of its row that `lane` holds in step s.
LLM_HD constexpr int lane_chunk(int s, int lane) { return s * kChunksPerStep + lane / kPackRows; }
/// The scale index of (group g, block b, row r within the group).
LLM_HD constexpr std::size_t scale_index(const PackedShape& p, int g, int b, int r) {
  return (static_cast<std::size_t>(g) * static_cast<std::size_t>(p.blocks_per_row()) + static_cast<std::size_t>(b)) *
             kPackRows +
         static_cast<std::size_t>(r);
}
/// The block a chunk belongs to.
LLM_HD constexpr int chunk_block(PackedType t, int chunk) { return t == PackedType::Q8_0 ? chunk / 2 : chunk; }

/// Q4_0: the nibble position (0..31, bits 4k..4k+3 of the 16 bytes read as 4 little-endian
/// words, word w = positions 8w..8w+7) of element j (0..31) of the block. Word w holds elements
/// 8w..8w+7; element 8w + 2p sits in nibble p of the word (bits 4p..) and 8w + 2p + 1 in
/// nibble p + 4 (bits 16 + 4p..): a shift by 4p and a mask 0x000F000F bring both to the two
/// fp16 halves at once.
LLM_HD constexpr int q4_nibble_position(int j) {
  const int w = j / 8, e = j % 8;
  return 8 * w + (e % 2 == 0 ? e / 2 : 4 + e / 2);
}

/// Q4_0: the fp16x2 bits (low half first) of elements 8w + 2p and 8w + 2p + 1 of word w, as
/// 1024 + q each (0x6400 is 1024 in fp16, whose ulp is 1, so OR-ing a 4-bit q into the mantissa
/// adds it exactly); subtracting 1032 (0x6408) then gives q - 8 exactly.
LLM_HD constexpr std::uint32_t q4_pair_bits(std::uint32_t word, int p) {
  return ((word >> (4 * p)) & 0x000F000Fu) | 0x64006400u;
}
/// fp16 bits of 1024 + 8: q4_pair_bits minus this is the weight (q - 8).
inline constexpr std::uint16_t kQ4Bias = 0x6408;

/// Q8_0: the fp16x2 bits of int8 elements 2p and 2p + 1 (p = 0, 1) of a little-endian word, as
/// 1152 + q each: XOR 0x80 makes q + 128 an unsigned byte, placed under the exponent byte 0x64
/// (one PRMT on the device); subtracting 1152 (0x6480) gives q exactly.
LLM_HD std::uint32_t q8_pair_bits(std::uint32_t word, int p) {
  const std::uint32_t u = word ^ 0x80808080u;
#if defined(__CUDA_ARCH__)
  return __byte_perm(u, 0x64646464u, p == 0 ? 0x4140u : 0x4342u);
#else
  const std::uint32_t lo = (u >> (16 * p)) & 0xFFu, hi = (u >> (16 * p + 8)) & 0xFFu;
  return lo | (hi << 16) | 0x64006400u;
#endif
}
/// fp16 bits of 1024 + 128: q8_pair_bits minus this is the weight q.
inline constexpr std::uint16_t kQ8Bias = 0x6480;

}  // namespace llm::cuda::qgemv
