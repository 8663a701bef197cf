// Stage 04 (the engine on the GPU) on its CPU backend, which CI can run: the same step layout,
// packed fp16 weights, fp16 K/V cache and operations as the CUDA backend, with the kernels' CPU
// twins. The GPU half of these checks is test_stage04_gpu.cpp.
//   [layout]       layout_step on random steps: decode rows first, every slot the address of
//                  its position, tables, lengths, chunks and logit rows where they belong
//   [memory-plan]  the KV pool from free memory; a model that does not fit is refused with sizes
//   [vs-stage03]   teacher-forced logits and greedy tokens against stage 03 (fp32), and every
//                  request's solo output under staggered arrivals, chunked prefill, preemption
//   [ex:NAME]      each exercise against its reference
#include <catch2/catch.hpp>
#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "common/error.h"
#include "stages/04_cuda/cpu_ops.h"
#include "stages/04_cuda/decode_profile.h"
#include "stages/04_cuda/gpu_engine.h"
#include "stages/04_cuda/memory_plan.h"
#include "stages/04_cuda/packed_weights.h"
#include "stages/04_cuda/step_layout.h"
#include "tests/helpers/random_model.h"
#include "tests/stages/stage04_checks.h"

using namespace llm;

namespace {

/// A random step: chunks of 1 (decode) or more tokens of sequences with distinct random blocks.
struct RandomStep {
  std::vector<std::vector<int>> tables;
  std::vector<stage03::StepRows> chunks;
  std::vector<int> tokens, positions, logit_rows;
  stage03::StepBatch batch() const { return {tokens, positions, logit_rows, chunks}; }
};

RandomStep random_step(std::mt19937& rng, int block_size) {
  RandomStep s;
  const int n_chunks = 1 + static_cast<int>(rng() % 7);
  std::vector<int> blocks(400);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::size_t next_block = 0;
  s.tables.resize(static_cast<std::size_t>(n_chunks));
  std::vector<std::pair<int, int>> spans;  // (start, count) per chunk
  for (int c = 0; c < n_chunks; ++c) {
    const bool decode = rng() % 2 == 0;
    const int start = static_cast<int>(rng() % 40);
    const int count = decode ? 1 : 2 + static_cast<int>(rng() % 9);
    const int need = (start + count + block_size - 1) / block_size + static_cast<int>(rng() % 2);  // maybe a spare
    for (int b = 0; b < need; ++b) s.tables[static_cast<std::size_t>(c)].push_back(blocks[next_block++]);
    spans.emplace_back(start, count);
  }
  for (int c = 0; c < n_chunks; ++c) {
    const auto [start, count] = spans[static_cast<std::size_t>(c)];
    s.chunks.push_back(stage03::StepRows{s.tables[static_cast<std::size_t>(c)], start, count});
    for (int i = 0; i < count; ++i) {
      s.tokens.push_back(static_cast<int>(rng() % 1000));
      s.positions.push_back(start + i);
    }
    if (rng() % 3 != 0) s.logit_rows.push_back(static_cast<int>(s.tokens.size()) - 1);  // samples
  }
  return s;
}

void check_layout(const RandomStep& s, int block_size) {
  const stage04::StepLayout L = stage04::layout_step(s.batch(), block_size);
  REQUIRE(L.n == static_cast<int>(s.tokens.size()));
  // order is a permutation, decode rows first.
  std::vector<int> sorted = L.order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> iota(sorted.size());
  std::iota(iota.begin(), iota.end(), 0);
  REQUIRE(sorted == iota);
  // Which chunk and table each step row came from.
  std::vector<int> chunk_of;
  for (std::size_t c = 0; c < s.chunks.size(); ++c)
    for (int i = 0; i < s.chunks[c].count; ++i) chunk_of.push_back(static_cast<int>(c));
  int decode_rows = 0;
  for (const auto& ch : s.chunks) decode_rows += ch.count == 1;
  CHECK(L.n_decode == decode_rows);
  for (int d = 0; d < L.n; ++d) {
    const int r = L.order[static_cast<std::size_t>(d)];
    const auto& ch = s.chunks[static_cast<std::size_t>(chunk_of[static_cast<std::size_t>(r)])];
    CHECK((d < L.n_decode) == (ch.count == 1));
    CHECK(L.tokens[static_cast<std::size_t>(d)] == s.tokens[static_cast<std::size_t>(r)]);
    const int pos = L.positions[static_cast<std::size_t>(d)];
    CHECK(pos == s.positions[static_cast<std::size_t>(r)]);
    // The slot is inside the block the table assigns to this position, at the right offset.
    const int slot = L.slots[static_cast<std::size_t>(d)];
    CHECK(slot / block_size == ch.table[static_cast<std::size_t>(pos / block_size)]);
    CHECK(slot % block_size == pos % block_size);
  }
  // Slots are distinct (no two rows write the same K/V).
  CHECK(std::set<int>(L.slots.begin(), L.slots.end()).size() == L.slots.size());
  // Decode rows: their table and length.
  for (int d = 0; d < L.n_decode; ++d) {
    const auto& ch = s.chunks[static_cast<std::size_t>(chunk_of[static_cast<std::size_t>(L.order[static_cast<std::size_t>(d)])])];
    CHECK(L.seq_lens[static_cast<std::size_t>(d)] == L.positions[static_cast<std::size_t>(d)] + 1);
    for (std::size_t j = 0; j < ch.table.size(); ++j)
      CHECK(L.tables[static_cast<std::size_t>(d) * L.max_blocks + j] == ch.table[j]);
  }
  CHECK(L.max_seq_len == (L.seq_lens.empty() ? 0 : *std::max_element(L.seq_lens.begin(), L.seq_lens.end())));
  // Prompt chunks: contiguous rows, consecutive positions, their own table.
  int covered = L.n_decode;
  for (const auto& pc : L.chunks) {
    CHECK(pc.row_begin == covered);
    covered += pc.count;
    const auto& ch = s.chunks[static_cast<std::size_t>(chunk_of[static_cast<std::size_t>(L.order[static_cast<std::size_t>(pc.row_begin)])])];
    CHECK(pc.count == ch.count);
    CHECK(pc.start == ch.start);
    for (int i = 0; i < pc.count; ++i) CHECK(L.positions[static_cast<std::size_t>(pc.row_begin + i)] == pc.start + i);
    for (std::size_t j = 0; j < ch.table.size(); ++j)
      CHECK(L.tables[static_cast<std::size_t>(pc.table) * L.max_blocks + j] == ch.table[j]);
  }
  CHECK(covered == L.n);
  // Logit rows: the same tokens at the same positions, in the step's order.
  REQUIRE(L.logit_rows.size() == s.logit_rows.size());
  for (std::size_t i = 0; i < s.logit_rows.size(); ++i) {
    CHECK(L.order[static_cast<std::size_t>(L.logit_rows[i])] == s.logit_rows[i]);
  }
}

}  // namespace

TEST_CASE("layout_step puts decode rows first and every row's K/V where its table says", "[layout]") {
  std::mt19937 rng(5);
  for (int seed = 0; seed < 300; ++seed)
    for (const int bs : {1, 3, 16}) check_layout(random_step(rng, bs), bs);
  // A chunk whose table lacks a block for its positions is refused with the position.
  const std::vector<int> table = {4};
  const stage03::StepRows ch{table, 7, 2};
  const std::vector<int> tokens = {1, 2}, positions = {7, 8}, logit_rows = {1};
  CHECK_THROWS_WITH(stage04::layout_step({tokens, positions, logit_rows, std::span(&ch, 1)}, 8),
                    Catch::Contains("position 8"));
}

TEST_CASE("the KV pool gets what the weights and activations leave of the allowed memory", "[memory-plan]") {
  const std::size_t GiB = std::size_t{1} << 30, MiB = std::size_t{1} << 20;
  auto p = stage04::plan_memory(10 * GiB, 0.9, 2 * GiB, GiB, MiB, 0, "GPU");
  CHECK(p.budget == static_cast<std::size_t>(0.9 * 10 * GiB));
  CHECK(p.num_blocks == static_cast<int>((p.budget - 3 * GiB) / MiB));
  CHECK(p.kv_pool == static_cast<std::size_t>(p.num_blocks) * MiB);
  CHECK(stage04::plan_memory(10 * GiB, 0.9, 2 * GiB, GiB, MiB, 100, "GPU").num_blocks == 100);
  CHECK(stage04::plan_memory(10 * GiB, 1.0, 8 * GiB, GiB, MiB, 0, "GPU").num_blocks == 1024);
  CHECK_THROWS_WITH(stage04::plan_memory(10 * GiB, 0.9, 8 * GiB, GiB, MiB, 0, "NVIDIA H100"),
                    Catch::Contains("does not fit on NVIDIA H100") && Catch::Contains("weights 8.00 GiB"));
  CHECK_THROWS_WITH(stage04::plan_memory(10 * GiB, 1.5, 0, 0, MiB, 0, "GPU"), Catch::Contains("--kv-memory-fraction"));
}

TEST_CASE("stage 04 on the CPU backend agrees with stage 03", "[vs-stage03]") {
  test::check_stage04_against_stage03("cpu", true, true);
}

TEST_CASE("--backend cuda without a usable GPU is refused with the reason; auto falls back", "[fallback]") {
  const std::string why = stage04::cuda_unavailable_reason();
  if (!why.empty()) {
    Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
    stage04::GpuEngineConfig c;
    c.backend = "cuda";
    CHECK_THROWS_WITH(stage04::make_gpu_engine(m.weights, {}, c), Catch::Contains(why));
    c.backend = "auto";
    const auto e = stage04::make_gpu_engine(m.weights, {}, c);
    CHECK(e.backend == "cpu");
    CHECK(e.note.find(why) != std::string::npos);
  }
}

TEST_CASE("shapes the CUDA kernels cannot run are named", "[fallback]") {
  ModelConfig c;
  c.dim = 256, c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 32, c.hidden_dim = 704;
  CHECK(stage04::cuda_unsupported_model(c).empty());
  c.head_dim = 24;
  CHECK_THAT(stage04::cuda_unsupported_model(c), Catch::Contains("head_dim 24"));
  c.head_dim = 64, c.hidden_dim = 700;
  CHECK_THAT(stage04::cuda_unsupported_model(c), Catch::Contains("hidden_dim 700"));
}

TEST_CASE("a decode step's time, operation by operation", "[profile]") {
  Model m = load_model(test::repo_path("datasets/models/tiny-target.gguf"));
  stage04::CpuStepExecutor exec(m.weights);
  const auto times = stage04::profile_decode_step(exec, m.config(), 3, 40, 4, 40);
  REQUIRE(times.size() == 12);
  double total = 0.0;
  for (const auto& t : times) {
    CHECK(t.seconds >= 0.0);
    total += t.seconds;
  }
  CHECK(total > 0.0);
  CHECK_THROWS_WITH(stage04::profile_decode_step(exec, m.config(), 3, 40, 4, 20), Catch::Contains("the pool has 20"));
}

TEST_CASE("exercise slot-mapping", "[ex:slot-mapping]") {
  const std::vector<int> table = {7, 2, 9};
  CHECK(stage04::kv_slot(table, 0, 4) == 28);
  CHECK(stage04::kv_slot(table, 5, 4) == 9);
  CHECK(stage04::kv_slot(table, 11, 4) == 39);
  std::mt19937 rng(9);
  for (int i = 0; i < 50; ++i) check_layout(random_step(rng, 5), 5);
}

TEST_CASE("exercise row-order", "[ex:row-order]") {
  std::mt19937 rng(10);
  for (int i = 0; i < 50; ++i) check_layout(random_step(rng, 4), 4);
}

TEST_CASE("exercise pool-sizing", "[ex:pool-sizing]") {
  const std::size_t MiB = std::size_t{1} << 20;
  CHECK(stage04::plan_memory(100 * MiB, 0.5, 20 * MiB, 10 * MiB, 2 * MiB, 0, "GPU").num_blocks == 10);
  CHECK(stage04::plan_memory(100 * MiB, 0.5, 20 * MiB, 10 * MiB, 2 * MiB, 4, "GPU").num_blocks == 4);
  CHECK_THROWS(stage04::plan_memory(100 * MiB, 0.3, 20 * MiB, 10 * MiB, 2 * MiB, 0, "GPU"));
}

TEST_CASE("a finite fp32 weight beyond fp16's range is refused by name, not packed as Inf", "[fallback]") {
  test::RandomModelSpec spec{"fp16-range", 16, 2, 2, 1, 24, 40, 8, 10000.0f, 1e-5f, true, 12};
  ModelWeights w = test::make_random_weights(spec);
  w.layers[1].w_down[7] = 65504.0f;  // fp16's largest: fine
  CHECK_NOTHROW(stage04::pack_weights(w));
  w.layers[1].w_down[7] = -70000.0f;
  CHECK_THROWS_WITH(stage04::pack_weights(w),
                    Catch::Matchers::Contains("tensor 'blk.1.ffn_down.weight' element 7 is -70000") &&
                        Catch::Matchers::Contains("fp16's range"));
}
