// step_message.h: how rank 0 tells the other ranks what to do. Rank 0 runs stage 03's scheduler;
// each of its requests to the executor becomes one message of ints, sent with MPI_Bcast
// (mpi_comm.h's broadcast_ints), which every other rank turns back into the same call:
//   [kStop]
//   [kLoad, chars of each string, 0 after each]               the model and its options
//   [kBeginRun, num_blocks, block_size]                       a run starts: size the KV shard
//   [kStep, n, rows, chunks, tokens[n], positions[n], logit_rows[rows],
//    per chunk: start, count, table_len, table[table_len]]    one step's StepBatch
#pragma once

#include <string>
#include <vector>

#include "stages/03_continuous_batching/step_executor.h"

namespace llm::stage07 {

enum MessageKind : int { kStop = 0, kLoad = 1, kBeginRun = 2, kStep = 3 };

/// A StepBatch as ints.
std::vector<int> encode_step(const stage03::StepBatch& step);

/// A decoded kStep message: owns the ints a StepBatch points into.
struct DecodedStep {
  std::vector<int> tokens, positions, logit_rows;
  std::vector<std::vector<int>> tables;
  std::vector<stage03::StepRows> chunks;
  stage03::StepBatch batch() const;
};
/// Throws llm::Error when `msg` is not a well-formed kStep message (a short or overlong one).
DecodedStep decode_step(const std::vector<int>& msg);

/// [kLoad, ...] for some strings (the model path, the tokenizer path, the shard's formats), and back.
std::vector<int> encode_load(const std::vector<std::string>& strings);
std::vector<std::string> decode_load(const std::vector<int>& msg);

}  // namespace llm::stage07
