// gguf_tiles.h: how 01_fused_16B.cu stages GGUF rows through shared memory, as plain arithmetic
// that nvcc also compiles for the device, so that the CPU tests walk the very spans the kernel
// copies (tests/kernels/test_quant_gemv_pack.cpp).
//
// GGUF stores a row as blocks of 34 (Q8_0), 18 (Q4_0) or 20 (Q4_1) bytes back to back, rows back
// to back: a tile of up to 32 blocks of one row starts anywhere (on an even byte; Q4_1's on a
// multiple of 4). The kernel copies the
// 16-byte words that cover it, [first_word, first_word + words), and finds the tile `skew` bytes
// into the first word. The matrix buffer is padded to a multiple of 16 bytes, so the last word of
// the last row is inside it.
#pragma once

#include <cstddef>

#include "kernels/cuda/quant_gemv/packed_layout.h"  // LLM_HD

namespace llm::cuda::qgemv {

/// Blocks per tile: one per lane.
inline constexpr int kTileBlocks = 32;

/// The GGUF block types version 01 reads, each with its bytes per 32 weights: Q8_0 (fp16 scale,
/// 32 int8), Q4_0 (fp16 scale, 16 bytes of nibbles), Q4_1 (fp16 scale, fp16 min, 16 bytes of
/// nibbles). A type of its own (not a bool or an int) so that a caller cannot pass another count.
enum class GgufBlock { Q8_0, Q4_0, Q4_1 };

/// Bytes of a block: 34 (Q8_0), 18 (Q4_0), 20 (Q4_1).
LLM_HD constexpr int gguf_block_bytes(GgufBlock b) {
  return b == GgufBlock::Q8_0 ? 34 : b == GgufBlock::Q4_0 ? 18 : 20;
}

/// 16-byte words of shared memory a tile may need: its bytes, up to 14 before it (its start
/// rounded down) and the rounding up of its end: 70 (Q8_0), 38 (Q4_0), 42 (Q4_1).
LLM_HD constexpr int tile_slot_words(GgufBlock b) {
  return (kTileBlocks * gguf_block_bytes(b) + 32) / 16;
}

/// Bytes the kernel's W buffer must have: the rows, rounded up to a multiple of 16.
LLM_HD constexpr std::size_t gguf_buffer_bytes(GgufBlock b, int out, int in) {
  return (static_cast<std::size_t>(out) * static_cast<std::size_t>(in / 32) * gguf_block_bytes(b) + 15) / 16 * 16;
}

/// The words covering blocks b0 .. b0 + nb - 1 of `row` (rows of `blocks` blocks).
struct TileSpan {
  std::size_t first_word;  // in 16-byte words from the buffer's start
  int words;               // <= tile_slot_words
  int skew;                // bytes from the first word's start to block b0 (even, <= 14)
};
LLM_HD TileSpan tile_span(GgufBlock b, int blocks, int row, int b0, int nb) {
  const std::size_t bb = static_cast<std::size_t>(gguf_block_bytes(b));
  const std::size_t s = (static_cast<std::size_t>(row) * static_cast<std::size_t>(blocks) + static_cast<std::size_t>(b0)) * bb;
  const std::size_t first = s / 16;
  TileSpan t;
  t.first_word = first;
  t.words = static_cast<int>((s + static_cast<std::size_t>(nb) * bb + 15) / 16 - first);
  t.skew = static_cast<int>(s - first * 16);
  return t;
}

}  // namespace llm::cuda::qgemv
