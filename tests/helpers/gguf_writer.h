// gguf_writer.h (tests only): a small GGUF v3 writer, so tests can make model files of any
// shape, and damage them on purpose. The engine itself only reads GGUF.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/tensor_type.h"

namespace llm::test {

class GGUFWriter {
 public:
  void add_u32(const std::string& key, std::uint32_t v);
  void add_i32(const std::string& key, std::int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  void add_i32_array(const std::string& key, const std::vector<std::int32_t>& v);
  /// Any value: `type` is the GGUF type id and `payload` its encoded bytes (for odd types).
  void add_raw(const std::string& key, std::uint32_t type, const std::vector<std::uint8_t>& payload);

  /// A tensor with ggml dims (dims[0] innermost) and already-encoded data of type `type_id`.
  void add_tensor(const std::string& name, const std::vector<std::uint64_t>& dims, std::uint32_t type_id,
                  const std::vector<std::uint8_t>& data);
  /// An fp32 tensor [rows, cols] (rows == 1 gives a 1-D tensor).
  void add_f32_tensor(const std::string& name, std::size_t rows, std::size_t cols, const std::vector<float>& data);
  /// Gives tensor `name` (already added) another type and encoded data; its dims stay.
  void replace_tensor(const std::string& name, std::uint32_t type_id, const std::vector<std::uint8_t>& data);
  /// Writes `offset` in tensor `name`'s info instead of where its data really is (the data
  /// section keeps its layout): for files whose tensors overlap or point outside the section.
  void set_offset(const std::string& name, std::uint64_t offset);

  /// The whole file image.
  std::vector<std::uint8_t> bytes(std::uint32_t version = 3) const;
  void write(const std::string& path, std::uint32_t version = 3) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type;
    std::vector<std::uint8_t> data;
    bool has_offset = false;
    std::uint64_t offset = 0;  ///< written instead of the real one when has_offset
  };
  Tensor& find(const std::string& name);
  std::vector<std::uint8_t> kv_;
  std::uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

/// Writes raw bytes to a file.
void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes);
/// Reads a whole file.
std::vector<std::uint8_t> read_file(const std::string& path);

}  // namespace llm::test
