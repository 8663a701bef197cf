// Stage 05: stage 04's engine with quantized weights resident in memory. See README.md in this folder.
#include <iostream>
#include <memory>

#include "common/stage_main.h"
#include "quant_engine.h"

int main(int argc, char** argv) {
  llm::StageInfo stage{"05_quantization",
                       "stage 04's engine with quantized weights (Q8_0, Q4_0, Q4_1, FP8) read at their stored size",
                       16};
  stage.paged_kv = true;
  stage.device_backend = true;
  stage.quantization = true;
  // The engine's stats name the storage --weights chose and its bytes (EngineStats::weight_storage).
  return llm::stage_main(argc, argv, stage, [](const llm::Model& model, const llm::CliOptions& o) {
    auto built = llm::stage05::make_quant_engine(model, o);
    std::cerr << "stage 05 backend: " << built.backend << " (" << built.note << "); weights "
              << built.engine->stats().weight_storage << "\n";
    return std::unique_ptr<llm::Engine>(std::move(built.engine));
  });
}
