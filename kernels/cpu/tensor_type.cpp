#include "kernels/cpu/tensor_type.h"

namespace llm {

std::size_t block_elements(TensorType t) {
  switch (t) {
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q8_0:
      return 32;
    default:
      return 1;
  }
}

std::size_t block_bytes(TensorType t) {
  switch (t) {
    case TensorType::F32:
      return 4;
    case TensorType::F16:
    case TensorType::BF16:
      return 2;
    case TensorType::Q4_0:
      return 2 + 16;
    case TensorType::Q4_1:
      return 2 + 2 + 16;
    case TensorType::Q8_0:
      return 2 + 32;
  }
  return 0;
}

std::string tensor_type_name(TensorType t) {
  return ggml_type_name(static_cast<std::uint32_t>(t));
}

std::optional<TensorType> tensor_type_from_id(std::uint32_t id) {
  switch (id) {
    case 0:
      return TensorType::F32;
    case 1:
      return TensorType::F16;
    case 2:
      return TensorType::Q4_0;
    case 3:
      return TensorType::Q4_1;
    case 8:
      return TensorType::Q8_0;
    case 30:
      return TensorType::BF16;
    default:
      return std::nullopt;
  }
}

std::string ggml_type_name(std::uint32_t id) {
  // The full ggml list, so an error can say which type a file used even when we cannot read it.
  static const char* const kNames[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",  "Q4_2(removed)", "Q4_3(removed)", "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",  "Q4_K",          "Q5_K",          "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL",        "IQ3_S",         "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",   "F64",           "IQ1_M",         "BF16"};
  if (id < sizeof(kNames) / sizeof(kNames[0])) return kNames[id];
  return "unknown type " + std::to_string(id);
}

}  // namespace llm
