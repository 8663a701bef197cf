// shard_formats.h: the storage of a rank's matrices and K/V (stage 05's formats, or stage 04's
// fp16). Each rank quantizes its own shard from the loaded fp32 weights; that equals the shard
// of the whole model quantized only when no block of 32 input columns is cut, so the block
// formats ask plan_shards for 32-column alignment of the Wo/W2 splits (the column-parallel
// matrices are split by rows, which never cuts a block). FP8's per-row scale would change with
// the split of Wo's and W2's rows: refused over more than one rank.
#pragma once

#include <memory>
#include <string>

#include "stages/04_cuda/cpu_ops.h"

namespace llm::stage07 {

/// --weights / --matmul / --kv-cache as stage 05 takes them; "auto" weights = stage 04's fp16.
struct ShardFormats {
  std::string weights = "auto", matmul = "auto", kv_cache = "f16";
  /// false: activations stay fp32 (CpuOps' fp16_activations); the tests' 1e-4 check, with kv_cache f32.
  bool fp16_activations = true;
};

/// The column alignment the weight format needs of the row-parallel splits (1 or 32). Throws
/// llm::Error naming --weights for an unknown format, or fp8 over more than one rank.
int shard_alignment(const ShardFormats& f, int ranks);

/// A shard's matrices in format `f` (fp16: stage 04's fp16_cpu_matrices) and the bytes of weights
/// a step reads from them.
struct ShardMatrices {
  std::unique_ptr<stage04::CpuMatrices> matrices;
  double bytes_per_step = 0.0;
};
ShardMatrices make_shard_matrices(const ModelWeights& shard, const ShardFormats& f);

/// The K/V storage of --kv-cache (stage 05's kv_storage).
stage04::KvStorage shard_kv_storage(const ShardFormats& f);

}  // namespace llm::stage07
