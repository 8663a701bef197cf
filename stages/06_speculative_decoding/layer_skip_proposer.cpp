#include "layer_skip_proposer.h"

#include <string>

#include "common/error.h"

namespace llm::stage06 {

ModelWeights first_layers(const ModelWeights& target, int layers) {
  const int total = target.config.n_layers;
  if (layers < 1 || layers >= total)
    throw Error("--draft-layers " + std::to_string(layers) + ": must be between 1 and " + std::to_string(total - 1) +
                " (the target has " + std::to_string(total) + " layers)");
  ModelWeights w;
  w.config = target.config;
  w.config.n_layers = layers;
  w.token_embd = target.token_embd;
  w.layers.assign(target.layers.begin(), target.layers.begin() + layers);
  w.output_norm = target.output_norm;
  w.output = target.output;
  return w;
}

LayerSkipProposer::LayerSkipProposer(const ModelWeights& target, int layers, int block_size)
    : weights_(first_layers(target, layers)), draft_(std::make_unique<DraftModelProposer>(weights_, block_size)) {}

}  // namespace llm::stage06
