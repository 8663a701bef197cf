// 01_fused_16B.cu: quantized decode GEMV, version 1: W8A16 / W4A16 on GGUF's own block layout
// (Q8_0, Q4_0, Q4_1), dequantized in registers and fused with the dot products.
//
// What it does against the fp16 GEMV (kernels/cuda/gemv/02_warp_vectorized.cu), and why:
//   1. It reads 1.0625 (Q8_0) or 0.5625 (Q4_0) bytes per weight instead of 2: decode is
//      memory-bound, so the time should fall by nearly that ratio.
//   2. GGUF interleaves a 2-byte scale with 32 (Q8_0) or 16 (Q4_0) bytes of quants: 34- and
//      18-byte blocks, never 16-byte aligned, so a lane cannot load "its" block with one 16-byte
//      load. A warp owns kRows = 2 rows and walks them in tiles of 32 blocks (one per lane): it
//      copies each tile's bytes (1088 or 576 per row) into shared memory with coalesced 16-byte
//      loads (__ldcs: streamed, used once), every load of a tile issued before any is stored,
//      then each lane decodes its block from shared memory: the scale once into a register, the
//      quants 8 at a time into floats (w = q or q - 8), multiplied with the 8 fp16 x values of
//      one 16-byte load per row of x. The block's partial dot is scaled once: acc += d * sum(q x).
//   3. n <= 8 rows of x are served by the same decoded weights, so W is read once per call; every
//      x load (through the read-only cache) serves both rows of the warp.
//   4. Q4_1 (20-byte blocks: fp16 scale d, fp16 min m, 16 bytes of nibbles; w = d q + m, q in
//      0..15) reads 0.625 bytes per weight. Its min stays out of the inner loop: a block's dot is
//      sum (d q_j + m) x_j = d sum q_j x_j + m sum x_j, so each lane also sums the block's 32 x
//      values per row of x (shared by the warp's rows) and adds m once: acc += d * sum(q x) +
//      m * sum(x). Its blocks start on multiples of 4 bytes, so the stage's 16-bit reads stay
//      aligned as Q4_0's do. NOT YET RUN ON A GPU (written without one; kernel_harness check
//      quant_gemv covers it against matmul_02_fused, which computes d q + m per weight).
// Its cost: the trip through shared memory (a store and 2-byte loads per weight pair) and 2-way
// bank conflicts from the 34-byte stride. 02_prepacked.cu removes both by changing the layout.
//
// Launch: blocks of 4 warps = 8 rows; grid ceil(out / 8) (512 blocks for 4096 rows). Shared
// memory 8960 (Q8_0), 4864 (Q4_0) or 5376 (Q4_1) bytes per block. W's buffer must be padded to a multiple of
// 16 bytes (quant_gemv_01_buffer_bytes): a tile's last 16-byte load may reach past the last row.
// Registers per thread (nvcc 13.0, sm_90, -Xptxas -v), n = 1..8: Q8_0 32 40 56 72 72 90 92 110,
// Q4_0 40 62 72 80 87 96 106 128, Q4_1 47 63 72 80 96 96 126 128; no spills except Q8_0 at n = 5
// (12 bytes, ptxas's choice at 72 registers).
//
// Run: build/kernels/kernel_harness check quant_gemv --version 1
//      build/kernels/kernel_harness bench quant_gemv --version 1
#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/quant_gemv/gguf_tiles.h"
#include "kernels/cuda/quant_gemv/quant_gemv.cuh"
#include "kernels/cuda/vector_loads.cuh"
#include "kernels/cuda/warp_rows.cuh"

namespace llm::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 2;        // rows of W per warp
using qgemv::kTileBlocks;  // blocks per tile: one per lane (gguf_tiles.h)

template <QuantFormat F>
constexpr qgemv::GgufBlock kGguf = F == QuantFormat::Q8_0   ? qgemv::GgufBlock::Q8_0
                                   : F == QuantFormat::Q4_0 ? qgemv::GgufBlock::Q4_0
                                                            : qgemv::GgufBlock::Q4_1;
template <QuantFormat F>
constexpr int kBlockBytes = qgemv::gguf_block_bytes(kGguf<F>);
// A tile's bytes plus up to 14 bytes before it and the rounding up of its end, in 16-byte words:
// 70 (Q8_0), 38 (Q4_0), 42 (Q4_1).
template <QuantFormat F>
constexpr int kSlotWords = qgemv::tile_slot_words(kGguf<F>);
template <QuantFormat F>
constexpr int kCopyIters = (kSlotWords<F> + 31) / 32;

/// Element 8k + 2m and 8k + 2m + 1 of a block's quants (k = 0..3, m = 0..3), as floats, from the
/// block's bytes in shared memory (2-byte aligned: read 16 bits at a time).
template <QuantFormat F>
__device__ __forceinline__ void decode_piece(const std::uint8_t* blk, int k, float (&w)[8]) {
  if constexpr (F == QuantFormat::Q8_0) {
    const auto* q = reinterpret_cast<const std::uint16_t*>(blk + 2 + 8 * k);
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const std::uint16_t v = q[m];
      w[2 * m] = static_cast<float>(static_cast<std::int8_t>(v & 0xFF));
      w[2 * m + 1] = static_cast<float>(static_cast<std::int8_t>(v >> 8));
    }
  } else {
    // Byte j holds element j (low nibble) and j + 16 (high): pieces 0, 1 are low nibbles of
    // bytes 0-7, 8-15; pieces 2, 3 the high nibbles. Q4_0: w = q - 8 after its scale; Q4_1:
    // w = q after its scale and min.
    constexpr int kQuants = F == QuantFormat::Q4_1 ? 4 : 2;
    constexpr int kBias = F == QuantFormat::Q4_1 ? 0 : 8;
    const auto* q = reinterpret_cast<const std::uint16_t*>(blk + kQuants + 8 * (k % 2));
    const int shift = k < 2 ? 0 : 4;
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const std::uint16_t v = q[m];
      w[2 * m] = static_cast<float>(static_cast<int>((v >> shift) & 0x0F) - kBias);
      w[2 * m + 1] = static_cast<float>(static_cast<int>((v >> (8 + shift)) & 0x0F) - kBias);
    }
  }
}

/// grid ceil(out / (kWarps * kRows)), block kThreads.
template <QuantFormat F, int kN>
__global__ void __launch_bounds__(kThreads)
    quant_gemv_01_kernel(const std::uint8_t* W, const __half* x, float* y, int in, int out, bool accumulate) {
  constexpr int BB = kBlockBytes<F>;
  constexpr bool kMin = F == QuantFormat::Q4_1;  // a min per block: + m * sum(x)
  __shared__ uint4 stage[kWarps][kRows][kSlotWords<F>];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  if (row0 >= out) return;  // the whole warp leaves; only __syncwarp follows

  const int blocks = in / 32;
  const uint4* W4 = reinterpret_cast<const uint4*>(W);
  const uint4* x4 = reinterpret_cast<const uint4*>(x);
  const int xcols = in / 8;

  float acc[kRows][kN];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int i = 0; i < kN; ++i) acc[r][i] = 0.0f;

  for (int b0 = 0; b0 < blocks; b0 += kTileBlocks) {
    const int nb = min(kTileBlocks, blocks - b0);
    // Copy the tile of each row to shared memory: all loads first, then the stores.
    int skew[kRows], words[kRows];
    uint4 tmp[kRows][kCopyIters<F>];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int row = min(row0 + r, out - 1);  // a row past the end re-reads the last one; never written
      const qgemv::TileSpan span = qgemv::tile_span(kGguf<F>, blocks, row, b0, nb);
      words[r] = span.words;
      skew[r] = span.skew;
#pragma unroll
      for (int k = 0; k < kCopyIters<F>; ++k) {
        const int idx = lane + 32 * k;
        tmp[r][k] = idx < words[r] ? __ldcs(W4 + span.first_word + idx) : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int k = 0; k < kCopyIters<F>; ++k)
        if (lane + 32 * k < words[r]) stage[warp][r][lane + 32 * k] = tmp[r][k];
    __syncwarp();

    if (lane < nb) {
      const int b = b0 + lane;
      int off[kRows];  // byte offset of this lane's block in its row's stage
      float d[kRows], mn[kRows], part[kRows][kN], xs[kN];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        off[r] = skew[r] + lane * BB;
        const std::uint8_t* blk = reinterpret_cast<const std::uint8_t*>(stage[warp][r]) + off[r];
        d[r] = __half2float(*reinterpret_cast<const __half*>(blk));                     // the scale, once per block
        mn[r] = kMin ? __half2float(*reinterpret_cast<const __half*>(blk + 2)) : 0.0f;  // Q4_1's min
#pragma unroll
        for (int i = 0; i < kN; ++i) part[r][i] = 0.0f;
      }
#pragma unroll
      for (int i = 0; i < kN; ++i) xs[i] = 0.0f;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        float w[kRows][8];
#pragma unroll
        for (int r = 0; r < kRows; ++r)
          decode_piece<F>(reinterpret_cast<const std::uint8_t*>(stage[warp][r]) + off[r], k, w[r]);
#pragma unroll
        for (int i = 0; i < kN; ++i) {
          float xf[8];
          unpack8(__ldg(x4 + static_cast<std::size_t>(i) * xcols + b * 4 + k), xf);
          if constexpr (kMin) {
#pragma unroll
            for (int j = 0; j < 8; ++j) xs[i] += xf[j];
          }
#pragma unroll
          for (int r = 0; r < kRows; ++r)
#pragma unroll
            for (int j = 0; j < 8; ++j) part[r][i] = fmaf(w[r][j], xf[j], part[r][i]);
        }
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int i = 0; i < kN; ++i) {
          acc[r][i] = fmaf(d[r], part[r][i], acc[r][i]);
          if constexpr (kMin) acc[r][i] = fmaf(mn[r], xs[i], acc[r][i]);
        }
    }
    __syncwarp();  // the next tile overwrites the stage
  }

  warp_sum_store<kRows, kN>(acc, lane, row0, out, y, accumulate);
}

template <QuantFormat F, int kN>
void launch(const QuantGemvArgs& a, cudaStream_t stream) {
  const int blocks = (a.out + kWarps * kRows - 1) / (kWarps * kRows);
  quant_gemv_01_kernel<F, kN><<<blocks, kThreads, 0, stream>>>(static_cast<const std::uint8_t*>(a.W), a.x, a.y, a.in,
                                                               a.out, a.accumulate);
}

template <QuantFormat F>
void dispatch(const QuantGemvArgs& a, cudaStream_t stream) {
  switch (a.n) {
    case 1: return launch<F, 1>(a, stream);
    case 2: return launch<F, 2>(a, stream);
    case 3: return launch<F, 3>(a, stream);
    case 4: return launch<F, 4>(a, stream);
    case 5: return launch<F, 5>(a, stream);
    case 6: return launch<F, 6>(a, stream);
    case 7: return launch<F, 7>(a, stream);
    default: return launch<F, 8>(a, stream);
  }
}

}  // namespace

void quant_gemv_01_fused_16B(const QuantGemvArgs& a, cudaStream_t stream) {
  validate(a, 1);
  if (a.format == QuantFormat::Q8_0)
    dispatch<QuantFormat::Q8_0>(a, stream);
  else if (a.format == QuantFormat::Q4_0)
    dispatch<QuantFormat::Q4_0>(a, stream);
  else
    dispatch<QuantFormat::Q4_1>(a, stream);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::cuda
