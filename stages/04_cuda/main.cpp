// Stage 04: the continuous-batching engine on the GPU. See README.md in this folder.
#include <iostream>

#include "common/stage_main.h"
#include "gpu_engine.h"
#include "packed_weights.h"

int main(int argc, char** argv) {
  llm::StageInfo stage{"04_cuda", "the GPU engine: stage 03's scheduler, every step's forward pass on the device", 16};
  stage.paged_kv = true;
  stage.device_backend = true;
  // Both backends run on the fp16 copy (packed_weights.h), not on the fp32 weights loaded first.
  stage.weight_storage = "fp16";
  stage.weight_storage_bytes = [](const llm::ModelWeights& w) {
    return llm::stage04::packed_weight_bytes(w.config, w.output.empty());
  };
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    llm::stage04::GpuEngine built =
        llm::stage04::make_gpu_engine(model.weights, model.tokenizer->stop_ids(), llm::stage04::gpu_engine_config(o));
    std::cerr << "stage 04 backend: " << built.backend << (built.note.empty() ? "" : " (" + built.note + ")") << "\n";
    return std::move(built.engine);
  });
}
