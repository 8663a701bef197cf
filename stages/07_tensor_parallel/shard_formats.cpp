#include "shard_formats.h"

#include "common/error.h"
#include "stages/04_cuda/packed_weights.h"
#include "stages/05_quantization/kv_quant.h"
#include "stages/05_quantization/quant_cpu_ops.h"
#include "stages/05_quantization/quant_weights.h"

namespace llm::stage07 {

namespace {
bool is_fp16(const std::string& w) { return w == "auto" || w == "f16"; }
}  // namespace

int shard_alignment(const ShardFormats& f, int ranks) {
  if (!stage05::valid_weights_mode(f.weights))
    throw Error("--weights " + f.weights + ": not one of auto, f32, f16, q8_0, q4_0, q4_1, fp8");
  if (f.weights == "fp8" && ranks > 1)
    throw Error("--weights fp8: its per-row scales would change with the split of Wo's and W2's rows; over " +
                std::to_string(ranks) + " ranks use f16, q8_0, q4_0 or q4_1");
  return f.weights == "q8_0" || f.weights == "q4_0" || f.weights == "q4_1" ? 32 : 1;
}

ShardMatrices make_shard_matrices(const ModelWeights& shard, const ShardFormats& f) {
  ShardMatrices out;
  if (is_fp16(f.weights)) {
    const stage04::PackedWeights packed = stage04::pack_weights(shard);
    out.matrices = stage04::fp16_cpu_matrices(packed);
    out.bytes_per_step = packed.bytes_per_step();
    return out;
  }
  stage05::QuantWeights q = stage05::make_quant_weights(shard, nullptr, f.weights);
  out.bytes_per_step = q.bytes_per_step();
  out.matrices = std::make_unique<stage05::QuantCpuMatrices>(
      std::move(q), stage05::resolve_matmul(stage05::parse_matmul(f.matmul)));
  return out;
}

stage04::KvStorage shard_kv_storage(const ShardFormats& f) { return stage05::kv_storage(f.kv_cache); }

}  // namespace llm::stage07
