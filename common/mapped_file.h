// mapped_file.h: a read-only memory map of a whole file (POSIX mmap), owned RAII-style.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace llm {

/// A file mapped read-only into memory. Throws llm::Error naming the path if it cannot be
/// opened or mapped. An empty file maps to size() == 0 and data() == nullptr.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace llm
