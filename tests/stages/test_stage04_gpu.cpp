// Stage 04's checks on the CUDA backend (labels stage04, gpu): the same checks as the CPU
// backend's in test_stage04.cpp (tests/stages/stage04_checks.*), on the device, plus the
// real model when it has been fetched. Exits 77 (ctest: skipped) where no GPU can run them.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/model_weights.h"
#include "stages/04_cuda/backend.h"
#include "stages/04_cuda/gpu_engine.h"
#include "tests/helpers/random_model.h"
#include "tests/helpers/random_requests.h"
#include "tests/stages/stage04_checks.h"

using namespace llm;

TEST_CASE("stage 04 on the GPU agrees with stage 03 on the default model and the random shapes", "[gpu-vs-stage03]") {
  test::check_stage04_against_stage03("cuda", true, false);
}

// The default model (tiny-target) is head_dim 32 with a context of 256: one split in every decode
// launch. These run the engine at the head sizes of the real models, 128 with Llama-3's group of 4
// and 64 with SmolLM2's group of 3, the first with a context of 520, so that decode steps captured
// in a graph (bounded by the context) launch 2 splits, the second past a short sequence's end, and
// the split workspace and the merge are used.
TEST_CASE("stage 04 on the GPU agrees with stage 03 at real head sizes", "[gpu-shapes]") {
  // name, dim, layers, heads, kv heads, hidden, vocab, context, theta, eps, tied, seed
  test::check_stage04_on_shapes("cuda", {{"d128-gqa4", 512, 2, 4, 1, 768, 300, 520, 500000.0f, 1e-5f, false, 21},
                                         {"d64-gqa3", 192, 2, 3, 1, 320, 257, 72, 10000.0f, 1e-5f, true, 22}});
}

// stage08_serving --engine 04|05 builds the engine (its stream, cuBLAS handle, pinned buffers) on
// the main thread and runs every step on its engine thread (OnlineEngine): the runtime API makes
// device 0's primary context current on any thread, so the steps, the graph captures and the
// replays of a graph captured by another thread must give what the building thread gets.
TEST_CASE("stage 04's CUDA engine runs its steps on a thread other than the one that built it", "[gpu-thread]") {
  Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  std::vector<Request> reqs = test::default_model_requests(m);
  for (Request& r : reqs) r.sampling = SamplingParams{};  // greedy: parts only at a near-tie (stage04_checks.cpp)
  const int vocab = m.config().vocab_size;
  const stage03::StepExecutor* exec = nullptr;  // the last engine's
  auto build = [&] {
    stage04::GpuEngineConfig c;
    c.batching = test::batching(4, 256, 16);
    stage04::GpuEngine e = stage04::make_cuda_engine(
        m.weights, m.tokenizer->stop_ids(), c, [&](const stage04::CudaOptions& options, int* fits) {
          auto x = stage04::make_cuda_executor(m.weights, options, fits);
          exec = x.get();
          return x;
        });
    return std::move(e.engine);
  };
  auto ref_engine = build();
  ref_engine->set_keep_logits(true);
  const std::vector<RequestResult> want = ref_engine->run(reqs, nullptr);
  auto engine = build();  // built here, run on two other threads in turn (the second replays the graphs)
  for (int round = 0; round < 2; ++round) {
    std::vector<RequestResult> got;
    std::string error;
    std::thread t([&] {
      try {
        got = engine->run(reqs, nullptr);
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
    t.join();
    INFO("round " << round);
    REQUIRE(error.empty());
    REQUIRE(got.size() == want.size());
    int near_ties = 0;
    for (std::size_t i = 0; i < got.size(); ++i) test::check_same_or_near_tie(got[i], want[i], vocab, near_ties);
    CHECK(engine->blocks_in_use_after_run() == 0);
  }
  long long launches = 0, captures = 0, eager = 0;
  REQUIRE(stage04::cuda_step_counts(*exec, &launches, &captures, &eager));
  CHECK(launches > 0);  // decode steps did run from graphs on those threads
}

TEST_CASE("stage 04 on the GPU agrees with stage 03 on the real model", "[gpu-real]") {
  const std::string path = test::repo_path("datasets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!std::filesystem::exists(path)) {
    WARN("real model absent (scripts/fetch_models): skipped");
    return;
  }
  Model m = load_model(path);
  std::vector<int> tokens = m.tokenizer->encode_prompt(
      "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined");
  const test::LogitAgreement a = test::teacher_forced(m.weights, tokens, "cuda");
  WARN("SmolLM2: top-1 " << a.top1_agree << "/" << a.positions << ", max rel err " << a.max_rel_err << ", mean KL "
                         << a.mean_kl);
  CHECK(a.top1_agree >= 0.99 * a.positions);
  CHECK(a.max_rel_err <= test::kFp16LogitTol);
  const test::GreedyDivergence d = test::greedy_divergence(m.weights, tokens, 48, "cuda");
  if (d.first_diff >= 0) {
    WARN("SmolLM2: greedy parts from stage 03 at token " << d.first_diff << ", top-2 gap " << d.gap_at_diff);
    CHECK(d.gap_at_diff < test::kNearTie);
  }
}

int main(int argc, char** argv) {
  const std::string why = stage04::cuda_unavailable_reason();
  if (!why.empty()) {
    std::printf("stage 04 GPU checks skipped: %s\n", why.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
