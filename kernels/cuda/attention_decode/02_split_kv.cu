// 02_split_kv.cu: decode attention, version 2: flash-decoding (split-KV) with grouped heads.
//
// What changes against 01_one_block_per_head.cu, and why it should be faster:
//   1. The keys of each sequence are cut into `splits` contiguous ranges, one block each:
//      grid (split, kv head, sequence). At batch 1 and 32k context that is 99 splits x 8 kv
//      heads = 792 blocks instead of 32 (two waves of 3 blocks per SM on 132 SMs), enough to keep
//      every SM's memory pipe busy. A second small kernel merges the splits' partial results.
//   2. A block serves every query head of its kv head's group (4 for Llama-8B): each K/V element
//      is read from memory once per group instead of once per query head.
//   3. 16-byte loads: a lane holds 8 consecutive head_dim values, so a key of head_dim 128 is
//      16 lanes (256 contiguous bytes) and one warp instruction loads 2 keys (4 for head_dim 64,
//      8 for head_dim 32): 512 bytes, every sector used. A warp issues kSteps such K loads and
//      kSteps V loads before it uses any of them, so several KB per warp are in flight.
//   4. The online softmax is updated once per chunk of kSteps * keys-per-step keys (8 for
//      head_dim 128, 32 for head_dim 32, in groups of up to 4 heads), not once per key: one max,
//      one rescale of o per chunk.
//
// Partial results and merge. Split s of (sequence b, head h) produces m_s (max score), l_s (sum
// of 2^(score - m_s)) and o_s (sum of 2^(score - m_s) v, unnormalised), written to the workspace;
// the merge computes m = max m_s, l = sum l_s 2^(m_s - m), out = sum o_s 2^(m_s - m) / l and
// rounds to fp16. Scores are in log2 units (q is pre-multiplied by log2(e)/sqrt(head_dim)), so
// every exponential is one exp2f: the same softmax as exp(score / sqrt(head_dim)). A split that
// gets no keys (a short sequence in a batch whose max_seq_len is long) writes m = -inf, l = 0,
// o = 0, and the merge skips splits with l = 0, so -inf - -inf (NaN) never happens. With
// splits == 1 the first kernel normalises and writes `out` itself: no workspace, no merge.
//
// Run: build/kernels/kernel_harness check attention_decode --version 2
//      build/kernels/kernel_harness bench attention_decode --version 2
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cuda/attention_decode/attention_decode.cuh"
#include "kernels/cuda/attention_decode/split_kv_common.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/vector_loads.cuh"

namespace llm::cuda {

namespace {

using split_kv::ceil_div;
using split_kv::group_tile;
using split_kv::kThreads;
using split_kv::kWarps;

// decode_num_splits(num_splits = 0). The target is kWaves waves of blocks, a wave being every
// SM holding as many blocks as fit at once (asked from the occupancy API: 3 for Llama-8B's group
// of 4, whose 163 registers per thread leave room for 3 blocks of 128 threads). The count is
// rounded down, so that the last wave is a little short rather than a few blocks running alone
// at the end (one block alone reads ~20 GB/s). A split gets at least kMinKeysPerSplit keys, so
// the per-block fixed costs (loading q, merging warps, writing G * (head_dim + 2) floats) stay a
// few percent of reading 256 keys of K and V (128 KiB for head_dim 128) and the merge reads
// little. kMaxSplits bounds the workspace.
constexpr int kWaves = 2;
constexpr int kMinKeysPerSplit = 256;
constexpr int kMaxSplits = 256;

/// The SM count of the current device, asked once; 132 (an H100 SXM) when there is no device,
/// so that workspace sizing also works on a machine without a GPU.
int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) {
      (void)cudaGetLastError();  // clear the error: not having a GPU is not a failure here
      return 132;
    }
    return n;
  }();
  return count;
}


/// The kernel's parameters: the shared shape (split_kv_common.cuh) and the fp16 cache.
struct SplitParams : split_kv::Shape {
  const __half* k_cache;
  const __half* v_cache;
};

/// Compile-time shape of the main loop for head_dim D and up to GMAX query heads per block.
template <int D, int GMAX>
struct Tile {
  static constexpr int kLanesPerKey = D / 8;              // 8 fp16 = 16 bytes per lane: 4, 8 or 16
  static constexpr int kKeysPerStep = 32 / kLanesPerKey;  // keys one warp-wide load covers: 8, 4 or 2
  static_assert(D == 32 || D == 64 || D == 128, "head_dim must be 32, 64 or 128");
  // Loads in flight per lane (K and V each). 8 heads need 2 * 64 registers for q and o, so
  // they get fewer steps to stay clear of spills.
  static constexpr int kSteps = GMAX >= 8 ? 2 : 4;
  static constexpr int kKeysPerChunk = kKeysPerStep * kSteps;
  // Blocks per SM the launch bounds promise (caps registers at 65536 / (128 * this)).
  static constexpr int kMinBlocks = GMAX >= 8 ? 2 : (GMAX >= 4 ? 3 : 4);
};


/// grid (splits, n_kv_heads * head_chunks, batch), block kThreads.
///
/// Lane layout: lane = kg * kLanesPerKey + sub. `sub` picks head_dim values sub*8 .. sub*8+7,
/// `kg` which key of a step the lane works on. Warp w takes chunks w, w+4, ... of its split;
/// in a chunk, step st covers keys c0 + st*kKeysPerStep + kg.
///
/// Per lane state: q[g][8] (pre-scaled), o[g][8] (its keys' part of the unnormalised output),
/// l[g] (its key group's part of the sum) and m[g] (the warp's running max, the same on every
/// lane). l and o are summed over the key groups once, after the loop.
template <int D, int GMAX>
__global__ void __launch_bounds__(kThreads, Tile<D, GMAX>::kMinBlocks) split_kv_kernel(SplitParams p) {
  using T = Tile<D, GMAX>;
  constexpr int kLanesPerKey = T::kLanesPerKey, kKeysPerStep = T::kKeysPerStep, kSteps = T::kSteps;
  constexpr int kKeysPerChunk = T::kKeysPerChunk;
  constexpr unsigned kFull = 0xffffffffu;

  const split_kv::Place w = split_kv::place_of_block<GMAX>(p);
  const int split = w.split, kvh = w.kvh, b = w.b, h0 = w.h0, ng = w.ng, k0 = w.k0, k1 = w.k1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int kg = lane / kLanesPerKey, sub = lane % kLanesPerKey;

  float q[GMAX][8], m[GMAX], l[GMAX], o[GMAX][8];
  split_kv::start_split<D, GMAX>(p, w, sub, q, m, l, o);

  const int* table = p.block_table + static_cast<std::size_t>(b) * p.max_blocks_per_seq;
  const std::size_t pos_stride = static_cast<std::size_t>(p.n_kv_heads) * D;  // halves between positions
  const uint4* k_base = reinterpret_cast<const uint4*>(p.k_cache + static_cast<std::size_t>(kvh) * D) + sub;
  const uint4* v_base = reinterpret_cast<const uint4*>(p.v_cache + static_cast<std::size_t>(kvh) * D) + sub;

  for (int c0 = k0 + warp * kKeysPerChunk; c0 < k1; c0 += kWarps * kKeysPerChunk) {
    // 1. Issue every load of the chunk before using any (kSteps K and kSteps V per lane).
    uint4 kr[kSteps], vr[kSteps];
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      const int t = c0 + st * kKeysPerStep + kg;
      kr[st] = vr[st] = make_uint4(0, 0, 0, 0);
      if (t < k1) {
        const int blk = p.block_shift >= 0 ? t >> p.block_shift : t / p.block_size;
        const std::size_t pos = static_cast<std::size_t>(table[blk]) * p.block_size + (t - blk * p.block_size);
        const std::size_t off = pos * pos_stride / 8;  // in uint4 units; pos_stride % 8 == 0
        kr[st] = __ldcs(k_base + off);                 // streaming: each K/V byte is read once
        vr[st] = __ldcs(v_base + off);
      }
    }

    // 2. Scores: 8 products per lane, summed over the kLanesPerKey lanes of the key.
    float s[kSteps][GMAX];
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      float kf[8];
      unpack8(kr[st], kf);
      const bool valid = c0 + st * kKeysPerStep + kg < k1;
#pragma unroll
      for (int g = 0; g < GMAX; ++g) {
        if (g < ng) {
          float acc = 0.0f;
#pragma unroll
          for (int j = 0; j < 8; ++j) acc = fmaf(q[g][j], kf[j], acc);
#pragma unroll
          for (int offset = kLanesPerKey / 2; offset > 0; offset /= 2) acc += __shfl_xor_sync(kFull, acc, offset);
          s[st][g] = valid ? acc : -INFINITY;
        }
      }
    }

    // 3. One online-softmax update per head for the whole chunk (split_kv_common.cuh).
    split_kv::softmax_chunk<GMAX, kSteps, kLanesPerKey>(s, m, l, o, ng);

    // 4. o += p v, each V value converted once and used by every head of the group.
#pragma unroll
    for (int st = 0; st < kSteps; ++st) {
      float vf[8];
      unpack8(vr[st], vf);
#pragma unroll
      for (int g = 0; g < GMAX; ++g) {
        if (g < ng) {
#pragma unroll
          for (int j = 0; j < 8; ++j) o[g][j] = fmaf(s[st][g], vf[j], o[g][j]);
        }
      }
    }
  }

  // The lanes' and warps' partial results merged; the split's (m, l, o) or the output written.
  split_kv::finish_split<D, GMAX, kLanesPerKey>(m, l, o, ng, b, h0, split, p.n_heads, p.splits, p.out, p.o_part, p.ml);
}

/// Blocks of split_kv_kernel<D, GMAX> one SM holds at once, asked once per instance; the launch
/// bounds' promise when there is no device.
template <int D, int GMAX>
int resident_blocks() {
  static const int count = [] {
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, split_kv_kernel<D, GMAX>, kThreads, 0) != cudaSuccess ||
        n <= 0) {
      (void)cudaGetLastError();
      return Tile<D, GMAX>::kMinBlocks;
    }
    return n;
  }();
  return count;
}

template <int D>
int resident_blocks(int gmax) {
  switch (gmax) {
    case 1:
      return resident_blocks<D, 1>();
    case 2:
      return resident_blocks<D, 2>();
    case 4:
      return resident_blocks<D, 4>();
    default:
      return resident_blocks<D, 8>();
  }
}

template <int D>
void launch_split_kv(const SplitParams& p, int gmax, dim3 grid, cudaStream_t stream) {
  switch (gmax) {
    case 1:
      split_kv_kernel<D, 1><<<grid, kThreads, 0, stream>>>(p);
      break;
    case 2:
      split_kv_kernel<D, 2><<<grid, kThreads, 0, stream>>>(p);
      break;
    case 4:
      split_kv_kernel<D, 4><<<grid, kThreads, 0, stream>>>(p);
      break;
    default:
      split_kv_kernel<D, 8><<<grid, kThreads, 0, stream>>>(p);
      break;
  }
}

}  // namespace

/// Splits per sequence for version 2. num_splits > 0 is used as given (more splits than keys is
/// allowed: the extra splits are empty). num_splits = 0: as many splits as make kWaves full
/// waves of blocks (rounded down), but at least 1, at most kMaxSplits, and no more than leave
/// kMinKeysPerSplit keys per split of max_seq_len. On a 132-SM H100 with Llama-8B heads (3
/// blocks per SM): batch 1 at 32k context gets 99 splits of 331 keys (792 blocks), batch 4
/// gets 24, batch 16 gets 6; batch 1 at 4k gets 16 (capped by the keys per split).
int decode_num_splits(const DecodeAttentionArgs& a) {
  if (a.num_splits > 0) return a.num_splits;
  const int group = std::max(1, a.n_heads / std::max(1, a.n_kv_heads));
  const int gmax = group_tile(group);
  const long long blocks_per_split =
      static_cast<long long>(std::max(1, a.batch)) * std::max(1, a.n_kv_heads) * ceil_div(group, gmax);
  const int resident = a.head_dim == 32   ? resident_blocks<32>(gmax)
                       : a.head_dim == 64 ? resident_blocks<64>(gmax)
                                          : resident_blocks<128>(gmax);
  const long long target_blocks = static_cast<long long>(kWaves) * resident * sm_count();
  const int by_length = std::max(1, a.max_seq_len / kMinKeysPerSplit);
  return static_cast<int>(std::clamp<long long>(target_blocks / blocks_per_split, 1, std::min(by_length, kMaxSplits)));
}

/// Workspace bytes of version 2: batch * n_heads * splits * (head_dim + 2) floats, the o
/// partials first, then the (m, l) pairs (16-byte aligned: head_dim is a multiple of 4).
std::size_t decode_workspace_bytes(const DecodeAttentionArgs& a) {
  return static_cast<std::size_t>(a.batch) * a.n_heads * decode_num_splits(a) * (a.head_dim + 2) * sizeof(float);
}

/// Version 2: flash-decoding. One block per (split, kv head, sequence) serving the group's query
/// heads, then a merge kernel when there is more than one split.
void attention_decode_02_split_kv(const DecodeAttentionArgs& a, cudaStream_t stream) {
  validate(a);
  SplitParams p{};
  static_cast<split_kv::Shape&>(p) = split_kv::split_shape(a, decode_num_splits(a), "attention_decode_02_split_kv");
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  if (a.head_dim == 128)
    launch_split_kv<128>(p, p.gmax, p.grid, stream);
  else if (a.head_dim == 64)
    launch_split_kv<64>(p, p.gmax, p.grid, stream);
  else
    launch_split_kv<32>(p, p.gmax, p.grid, stream);
  CUDA_CHECK(cudaGetLastError());
  split_kv::merge_splits(p, a.batch, a.head_dim, stream);
}

}  // namespace llm::cuda
