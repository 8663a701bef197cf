// Stage 01: the KV cache. See README.md in this folder.
#include "common/error.h"
#include "common/stage_main.h"
#include "kv_engine.h"

int main(int argc, char** argv) {
  const llm::StageInfo stage{"01_kv_cache", "KV cache: prefill the prompt once, then one token per step against the cache"};
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    if (o.batch != 1) {
      throw llm::Error("--batch " + std::to_string(o.batch) +
                       ": stage 01 runs one request at a time (batching arrives in stage 02)");
    }
    return std::make_unique<llm::stage01::KvCacheEngine>(model.weights, model.tokenizer->stop_ids());
  });
}
