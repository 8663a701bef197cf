#include "decode_profile.h"

#include <random>
#include <string>

#include "common/error.h"

namespace llm::stage04 {

std::vector<OpTime> profile_decode_step(stage03::StepExecutor& exec, const ModelConfig& c, int batch, int context,
                                        int block_size, int num_blocks) {
  const int per_seq = (context + 1 + block_size - 1) / block_size;
  if (static_cast<long>(batch) * per_seq > num_blocks)
    throw Error("profile: " + std::to_string(batch) + " sequences of " + std::to_string(context + 1) +
                " tokens need " + std::to_string(batch * per_seq) + " blocks; the pool has " + std::to_string(num_blocks));
  if (context + 1 > c.context_length) throw Error("profile: context " + std::to_string(context) + " is too long");
  stage03::BlockPool pool(c, num_blocks, block_size, false, exec.kv_element_bytes());
  exec.begin_run(pool);
  std::mt19937 rng(3);
  std::vector<std::vector<int>> tables(static_cast<std::size_t>(batch));
  for (auto& t : tables)
    for (int j = 0; j < per_seq; ++j) t.push_back(pool.allocate());
  // Prefill each sequence's cache (the times of these steps are not reported).
  std::vector<int> tokens(static_cast<std::size_t>(context)), positions(static_cast<std::size_t>(context));
  for (int p = 0; p < context; ++p) positions[static_cast<std::size_t>(p)] = p;
  for (const auto& t : tables) {
    for (int& x : tokens) x = static_cast<int>(rng() % static_cast<unsigned>(c.vocab_size));
    const stage03::StepRows chunk{t, 0, context};
    const std::vector<int> none;
    if (context > 0) exec.forward({tokens, positions, none, std::span(&chunk, 1)});
  }
  // One decode step of every sequence, each sampling.
  std::vector<stage03::StepRows> chunks;
  std::vector<int> dtokens, dpositions, logit_rows;
  for (int b = 0; b < batch; ++b) {
    chunks.push_back({tables[static_cast<std::size_t>(b)], context, 1});
    dtokens.push_back(static_cast<int>(rng() % static_cast<unsigned>(c.vocab_size)));
    dpositions.push_back(context);
    logit_rows.push_back(b);
  }
  const stage03::StepBatch step{dtokens, dpositions, logit_rows, chunks};
  (void)exec.forward(step);  // warm-up (the cache at `context` is rewritten with the same values)
  return profile_step_on(exec, step);
}

}  // namespace llm::stage04
