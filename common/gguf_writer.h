// gguf_writer.h: writes GGUF v3 files (the layout is described in gguf.h), streaming the tensor
// data so that a model never has to be in memory whole.
//
// The header (metadata in the order given, tensor infos with their offsets) is written first, then
// each tensor's bytes in the order of the infos, each padded with zeros to the alignment
// (`general.alignment` when the metadata has it, else 32). The file appears at its path only when
// finish() succeeds: until then the bytes go to "<path>.tmp", which is removed on any failure and
// when the writer is destroyed unfinished, so an interrupted write never leaves a partial model
// under the name a loader would open.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "common/gguf.h"
#include "kernels/cpu/tensor_type.h"

namespace llm {

/// One tensor to write: ggml dims (dims[0] is the contiguous row length, as in GGUFTensorInfo)
/// and its stored type; its data is row_bytes(type, n_elements) bytes.
struct GGUFTensorSpec {
  std::string name;
  std::vector<std::uint64_t> dims;
  TensorType type = TensorType::F32;
};

/// Metadata in file order: (key, value) pairs.
using GGUFMetadata = std::vector<std::pair<std::string, GGUFValue>>;

/// The encoded bytes of one metadata value, without its type tag (for an ARRAY: element type,
/// count and items). Throws llm::Error when an array item's type differs from the array's.
std::vector<std::uint8_t> encode_gguf_value(const std::string& key, const GGUFValue& v);

/// The alignment a file with this metadata uses: `general.alignment` (an integer, a power of two
/// up to 1 MiB, as the reader demands) or 32.
std::uint64_t gguf_alignment(const GGUFMetadata& metadata);

class GGUFWriter {
 public:
  /// Checks the description (unique keys and names, names of at most 63 bytes, 1..4 dims, each
  /// row a whole number of blocks, sizes without overflow), creates "<path>.tmp" and writes the
  /// header. Throws llm::Error naming the path, the tensor or key, and the value.
  GGUFWriter(std::string path, const GGUFMetadata& metadata, std::vector<GGUFTensorSpec> tensors);
  ~GGUFWriter();
  GGUFWriter(const GGUFWriter&) = delete;
  GGUFWriter& operator=(const GGUFWriter&) = delete;

  /// Appends `size` bytes of the current tensor's data (tensors in the order given; a tensor may
  /// come in several pieces, a piece never spans two tensors). Padding follows a completed tensor.
  void write(const void* data, std::size_t size);
  /// Checks every tensor is complete, flushes, closes and renames "<path>.tmp" to `path`.
  void finish();

  /// The file's total size in bytes (known from the header on).
  std::uint64_t file_size() const { return file_size_; }
  std::uint64_t alignment() const { return alignment_; }
  /// "<path>.tmp"
  const std::string& temp_path() const { return temp_path_; }

 private:
  void put(const void* data, std::size_t size);
  void pad_to_alignment();
  void abandon();

  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  std::vector<GGUFTensorSpec> tensors_;
  std::vector<std::uint64_t> tensor_bytes_;
  std::uint64_t alignment_ = 32;
  std::uint64_t file_size_ = 0;
  std::uint64_t written_ = 0;       // bytes written to the file so far
  std::size_t current_ = 0;         // the tensor whose data comes next
  std::uint64_t current_left_ = 0;  // its bytes still to come
  bool finished_ = false;
};

}  // namespace llm
