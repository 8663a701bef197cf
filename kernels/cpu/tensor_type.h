// tensor_type.h: the element types a weight tensor can have in a GGUF file, with the ggml
// numbering that GGUF stores, and the block geometry of the quantized ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace llm {

/// ggml type ids as stored in a GGUF tensor info. Only the ones we can read are named.
enum class TensorType : std::uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,  ///< blocks of 32: fp16 scale d, 16 bytes of 4-bit q; x = (q - 8) * d
  Q4_1 = 3,  ///< blocks of 32: fp16 scale d, fp16 min m, 16 bytes of 4-bit q; x = q * d + m
  Q8_0 = 8,  ///< blocks of 32: fp16 scale d, 32 int8 q; x = q * d
  BF16 = 30,
};

/// Elements per block (1 for the plain float types).
std::size_t block_elements(TensorType t);
/// Bytes per block.
std::size_t block_bytes(TensorType t);
/// "F32", "Q4_1", ...
std::string tensor_type_name(TensorType t);
/// The type for a raw ggml id, or nothing if this engine cannot read it.
std::optional<TensorType> tensor_type_from_id(std::uint32_t id);
/// A readable name for any ggml id, including ones we cannot read ("Q6_K (14)").
std::string ggml_type_name(std::uint32_t id);

}  // namespace llm
