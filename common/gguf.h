// gguf.h: a reader for GGUF files (versions 2 and 3), the llama.cpp ecosystem's model format.
//
// Layout of a GGUF file (all little-endian):
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x (string key | u32 value_type | value)          metadata
//   tensor_count x (string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset)
//   padding to `general.alignment` (default 32)
//   tensor data; each tensor at data_start + offset
// A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
// Every length, count, offset and size is checked against the file before it is used (as strictly
// as ggml's own reader: counts, name lengths, n_dims <= 4, dims > 0 without overflow, known types,
// aligned offsets, every tensor's bytes inside the data section and no two tensors overlapping,
// no duplicate keys or names), and any problem throws llm::Error naming the file, the field and
// the value.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/mapped_file.h"
#include "kernels/cpu/tensor_type.h"

namespace llm {

/// The value types GGUF metadata can hold (the numbers are the on-disk ids).
enum class GGUFType : std::uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

/// "UINT32", "ARRAY", ...
std::string gguf_type_name(GGUFType t);

/// How a file's first four bytes compare with GGUF's magic "GGUF".
enum class GGUFMagic {
  kExact,    ///< "GGUF"
  kDamaged,  ///< close to it: three of four bytes right, "gguf", or its bytes reordered ("FUGG")
  kOther,    ///< anything else (or fewer than four bytes)
};
/// Classifies the first min(size, 4) bytes of `head`.
GGUFMagic classify_gguf_magic(const std::uint8_t* head, std::size_t size);
/// The first min(size, 4) bytes of `head` for a message, '?' for unprintable ones.
std::string printable_magic(const std::uint8_t* head, std::size_t size);

/// One metadata value. Scalars use one of u/i/f/b/s (integers are kept in both u and i when
/// they fit); an ARRAY keeps its element type and its items.
struct GGUFValue {
  GGUFType type = GGUFType::UINT8;
  std::uint64_t u = 0;
  std::int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  GGUFType elem_type = GGUFType::UINT8;  ///< ARRAY only
  std::vector<GGUFValue> items;          ///< ARRAY only

  bool is_integer() const;
};

/// One tensor's description from the tensor-info table.
struct GGUFTensorInfo {
  std::string name;
  std::vector<std::uint64_t> dims;  ///< ggml order: dims[0] is the contiguous (innermost) one
  TensorType type = TensorType::F32;
  std::uint64_t offset = 0;  ///< from the start of the data section
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0;
};

/// A parsed, memory-mapped GGUF file. Construction validates the whole header.
class GGUFFile {
 public:
  /// Opens and validates `path`. Throws llm::Error on any problem.
  explicit GGUFFile(const std::string& path);
  /// Parses an in-memory image (used by the fuzzer); `name` is used in error messages.
  GGUFFile(const std::uint8_t* data, std::size_t size, const std::string& name);

  const std::string& path() const { return name_; }
  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GGUFValue>& metadata() const { return kv_; }
  /// The metadata keys in file order (a writer that carries them over keeps the order).
  const std::vector<std::string>& metadata_keys() const { return key_order_; }
  const std::vector<GGUFTensorInfo>& tensors() const { return tensors_; }

  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  /// The value of `key`, or an llm::Error naming the file and the missing key.
  const GGUFValue& get(const std::string& key) const;
  // Each getter refuses a key of the wrong type as such ("key 'llama.context_length' has type
  // STRING, expected an integer"), never as a wrong value.

  /// An integer-typed key as int64 (any integer width); error if absent, not an integer, or a
  /// UINT64 above the int64 range.
  std::int64_t get_int(const std::string& key) const;
  std::int64_t get_int(const std::string& key, std::int64_t fallback) const;
  /// A FLOAT32/FLOAT64 (or integer) key as double.
  double get_float(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  /// An ARRAY of STRING.
  std::vector<std::string> get_string_array(const std::string& key) const;
  /// An ARRAY of numbers, converted to float / int32 (error naming the item if one does not fit).
  std::vector<float> get_float_array(const std::string& key) const;
  std::vector<std::int32_t> get_int_array(const std::string& key) const;

  /// The tensor named `name`, or nullptr.
  const GGUFTensorInfo* find_tensor(const std::string& name) const;
  /// Pointer to the first byte of a tensor's data (bounds were checked at load).
  const std::uint8_t* tensor_data(const GGUFTensorInfo& t) const;

 private:
  void parse(const std::uint8_t* data, std::size_t size);
  /// "<file>: metadata key '<key>' has type <type of v>, expected <expected>".
  Error wrong_type(const std::string& key, const GGUFValue& v, const std::string& expected) const;

  std::unique_ptr<MappedFile> file_;  // null when parsing an in-memory image
  std::string name_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_start_ = 0;
  std::map<std::string, GGUFValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GGUFTensorInfo> tensors_;
  std::map<std::string, std::size_t> tensor_index_;
};

}  // namespace llm
