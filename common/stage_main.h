// stage_main.h: what every stage executable does around its engine: parse the flags, load the
// model, turn the prompt (or workload) into requests, stream the text, print the metrics, and
// turn bad input into one clear message and exit code 2.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/cli.h"
#include "common/engine.h"
#include "common/model_weights.h"
#include "common/workload.h"

namespace llm {

/// Name and one-line description of a stage, for --help and the metrics.
struct StageInfo {
  std::string name;         ///< "00_naive"
  std::string description;  ///< "naive CPU transformer: recomputes the whole sequence for every token"
  int default_batch = 1;    ///< --batch when not given
  int max_batch = 0;        ///< largest --batch the stage accepts; 0 = no limit
  /// The stage has a paged KV cache: it takes its flags (cli.h) and rejects a request that does
  /// not fit on its own (RequestResult::rejected) instead of stopping the whole run.
  bool paged_kv = false;
  /// The engine refuses a request that can never fit (RequestResult::rejected) while it serves
  /// the others, without the paged-KV flags (stage 02). paged_kv implies it.
  bool rejects_requests = false;
  /// The stage has a GPU backend: it takes --backend, --kv-memory-fraction, --no-cuda-graphs.
  bool device_backend = false;
  /// The stage stores its weights quantized (stage 05 on): it takes --weights, --kv-cache, --matmul.
  bool quantization = false;
  /// The stage speculates (stage 06): it takes --speculate, --draft-model, --spec-k, --draft-layers.
  bool speculative = false;
  /// The type of the weights the engine runs on, for the metrics ("fp32": the loaded
  /// ModelWeights), and their bytes (unset: the loaded weights'). Stage 04 runs on an fp16 copy.
  std::string weight_storage = "fp32";
  std::function<std::size_t(const ModelWeights&)> weight_storage_bytes = {};
};

/// Builds the stage's engine for a loaded model. May throw llm::Error for options it refuses.
using EngineFactory = std::function<std::unique_ptr<Engine>(const Model&, const CliOptions&)>;

/// The requests a command line asks for: the --workload file's, or the one --prompt (with
/// --chat applied), tokenized, with max_new_tokens lowered to fit the context. Throws llm::Error
/// for a prompt that does not fit, unless engine_rejects: then a workload's too-long request is
/// passed on as it is, for the engine to refuse.
std::vector<Request> build_requests(const Model& model, const CliOptions& o, bool engine_rejects = false);

/// The same for workload items already read (e.g. a workload cycled to more requests than its
/// file holds, stages/bench/rate_sweep.h): tokenized as build_requests does, arrival_s kept.
std::vector<Request> build_requests(const Model& model, const CliOptions& o, const std::vector<WorkloadItem>& items,
                                    bool engine_rejects = false);

/// The whole main(): returns the process exit code.
int stage_main(int argc, char** argv, const StageInfo& stage, const EngineFactory& make_engine);

}  // namespace llm
