// cli.h: the flags every stage's executable takes (same names everywhere), parsed with cxxopts
// and checked. A bad flag value throws llm::Error naming the flag and the value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace llm {

/// The largest value each integer flag takes (the smallest is in --help). They bound what a
/// flag can make the engine allocate or loop over before any arithmetic meets it; the context
/// and the memory of the machine bound them further once the model is loaded.
struct CliLimits {
  static constexpr int max_new_tokens = 1 << 20;  ///< --max-new-tokens (then lowered to the context)
  static constexpr int top_k = 1 << 24;           ///< --top-k (a vocabulary is smaller)
  static constexpr int batch = 4096;              ///< --batch
  static constexpr int block_size = 4096;         ///< --block-size, tokens
  static constexpr int kv_blocks = 1 << 24;       ///< --kv-blocks (bytes are checked against memory too)
  static constexpr int token_budget = 1 << 20;    ///< --token-budget, tokens per step
  static constexpr int max_queue = 1 << 20;       ///< --max-queue, requests
  static constexpr int spec_k = 32;               ///< --spec-k: proposals per step (past ~8 almost none survive)
  static constexpr int draft_layers = 4096;       ///< --draft-layers (then checked against the model's layers)
};

/// Parsed command line of a stage executable.
struct CliOptions {
  std::string model;      ///< --model: GGUF or llama2.c .bin
  std::string tokenizer;  ///< --tokenizer: tokenizer.bin for llama2.c checkpoints
  std::string prompt;     ///< --prompt
  bool prompt_given = false;
  int max_new_tokens = 64;    ///< --max-new-tokens
  float temperature = 0.0f;   ///< --temperature (0 = greedy)
  int top_k = 0;              ///< --top-k (0 = off)
  float top_p = 1.0f;         ///< --top-p (1 = off)
  std::uint64_t seed = 42;    ///< --seed
  std::string workload;       ///< --workload: JSONL file of requests
  int batch = 1;              ///< --batch
  bool json = false;          ///< --json: print metrics as JSON
  bool chat = false;          ///< --chat: wrap the prompt in the model's chat template
  std::string system_prompt;  ///< --system: system message for --chat (default: the template's)
  bool quiet = false;         ///< --quiet: no streaming text, metrics only
  // Paged KV cache and scheduler (stage 03 on; other stages do not accept these flags).
  int block_size = 8;            ///< --block-size: tokens per KV block
  int kv_blocks = 0;             ///< --kv-blocks: blocks in the pool; 0 = sized from --batch and the context
  int token_budget = 256;        ///< --token-budget: tokens per step (decode + prompt chunks)
  int max_queue = 256;           ///< --max-queue: waiting requests before new ones are rejected
  bool no_prefix_cache = false;  ///< --no-prefix-cache
  // Stages with a GPU backend (StageInfo::device_backend) also take:
  std::string backend = "auto";     ///< --backend: auto (CUDA when a GPU is present), cuda or cpu
  double kv_memory_fraction = 0.9;  ///< --kv-memory-fraction: share of free device memory to use
  bool cuda_graphs = true;          ///< off with --no-cuda-graphs
  // Stages with quantized weights (StageInfo::quantization, stage 05 on) also take:
  std::string weights = "auto";  ///< --weights: auto (as stored), f32, f16, q8_0, q4_0, q4_1, fp8
  std::string kv_cache = "f16";  ///< --kv-cache: f32, f16, int8 or fp8
  std::string matmul = "auto";  ///< --matmul: auto (the fastest here), fused (weight-only) or int8 (int8 activations)
  // Stages with speculative decoding (StageInfo::speculative, stage 06) also take:
  std::string speculate = "none";  ///< --speculate: none, draft, ngram or layerskip
  std::string draft_model;         ///< --draft-model: GGUF with the target's vocabulary (for draft)
  int spec_k = 4;                  ///< --spec-k: proposals per sequence and step (0 = none)
  bool spec_k_auto = false;        ///< --spec-k auto: chosen per step in 0..8 (stage 06's AdaptiveK)
  int draft_layers = 0;            ///< --draft-layers: layers of the layerskip draft; 0 = half the target's
};

/// Parses argv. Returns nothing when --help was printed (the caller exits 0). Throws llm::Error
/// naming the flag and the value for an unknown flag, a missing value, a value that is not a
/// number ("--batch two: not an integer"), NaN/Inf, a value outside its range (CliLimits), an
/// empty --model, or a --model/--tokenizer/--workload that is a directory. paged_kv adds the flags of the
/// paged KV cache and its scheduler (--block-size, --kv-blocks, --token-budget, --max-queue,
/// --no-prefix-cache). quantization adds --weights, --kv-cache and --matmul. speculative adds
/// --speculate, --draft-model, --spec-k and --draft-layers.
std::optional<CliOptions> parse_cli(int argc, char** argv, const std::string& program, const std::string& description,
                                    int default_batch = 1, bool paged_kv = false, bool device_backend = false,
                                    bool quantization = false, bool speculative = false);

}  // namespace llm
