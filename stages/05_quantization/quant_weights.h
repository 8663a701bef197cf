// quant_weights.h: a model's matrices as stage 05 keeps them resident: each in one storage
// format (fp32, fp16, GGUF's Q8_0 / Q4_0 / Q4_1 blocks, or FP8 E4M3 with one scale per row),
// with stage 04's concatenations (wqkv = [wq; wk; wv], w13 = [w_gate; w_up], packed_weights.h).
//
//   --weights auto   as the GGUF stores them: a quantized file stays quantized (its blocks are
//                    copied, not re-quantized); F16 stays fp16; F32 and BF16 run as fp32
//   --weights q8_0 | q4_0 | q4_1 | fp8 | f16 | f32   every matrix converted at load
//                    (kernels/cpu/quantize.h), the norms always fp32
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/model_weights.h"
#include "kernels/cpu/tensor_type.h"

namespace llm {
class GGUFFile;
}

namespace llm::stage05 {

/// A matrix's storage.
enum class WeightFormat { f32, f16, q8_0, q4_0, q4_1, fp8 };

/// "f32", "f16", "q8_0", "q4_0", "q4_1", "fp8".
const char* format_name(WeightFormat f);
/// The block formats' GGUF type (Q8_0, Q4_0, Q4_1); throws for the others.
TensorType block_type(WeightFormat f);
bool is_block_format(WeightFormat f);

/// One matrix, row-major [rows, cols], in one format.
struct StoredMatrix {
  WeightFormat format = WeightFormat::f32;
  int rows = 0, cols = 0;
  std::vector<float> values;        ///< f32, f16 (fp16-exact floats, as stage 04's CpuOps): [rows, cols]
  std::vector<std::uint8_t> bytes;  ///< q8_0 / q4_*: GGUF blocks, row after row; fp8: E4M3 codes [rows, cols]
  std::vector<float> row_scales;    ///< fp8: [rows], value = fp8_to_fp32(code) * scale

  /// Bytes of the format (fp16: 2 per weight, as on the GPU, though the CPU holds floats).
  std::size_t storage_bytes() const;
  /// out[cols] = row r as fp32.
  void dequantize_row(int r, float* out) const;
};

/// One layer's matrices (shapes as in packed_weights.h).
struct QuantLayer {
  StoredMatrix wqkv, wo, w13, w2;
};

/// All matrices of a model; the norms stay in the ModelWeights they were loaded with.
struct QuantWeights {
  ModelConfig config;
  StoredMatrix embed;       ///< [vocab, dim]
  StoredMatrix classifier;  ///< [vocab, dim]; rows == 0 when tied to embed
  std::vector<QuantLayer> layers;
  std::string storage;  ///< what the metrics print: "q4_1 (blocks as stored) + q8_0 embed", ...

  const StoredMatrix& classifier_or_embed() const { return classifier.rows == 0 ? embed : classifier; }
  /// Bytes held in the matrices' formats, the norms (fp32) included.
  std::size_t bytes() const;
  /// Bytes a decode step reads: every layer matrix, the classifier, the norms.
  double bytes_per_step() const;
};

/// The --weights values: "auto", "f32", "f16", "q8_0", "q4_0", "q4_1", "fp8".
bool valid_weights_mode(const std::string& mode);

/// Builds the matrices from the loaded fp32 weights `w` and, for mode "auto", the GGUF file
/// they came from (`file`; null for a llama2.c model or weights made in memory: auto is then
/// f32). Throws llm::Error naming the tensor, its shape and the mode when a block format gets
/// rows not a multiple of 32, or a file's tensor is not what `w` was loaded from.
QuantWeights make_quant_weights(const ModelWeights& w, const GGUFFile* file, const std::string& mode);

}  // namespace llm::stage05
