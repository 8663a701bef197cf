// Stage 01: the KV cache. See README.md in this folder.
#include "common/stage_main.h"
#include "kv_engine.h"

int main(int argc, char** argv) {
  const llm::StageInfo stage{"01_kv_cache", "KV cache: prefill the prompt once, then one token per step against the cache",
                             /*default_batch=*/1, /*max_batch=*/1};
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions&) {
    return std::make_unique<llm::stage01::KvCacheEngine>(model.weights, model.tokenizer->stop_ids());
  });
}
