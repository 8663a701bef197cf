#include "common/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/checked.h"
#include "common/error.h"
#include "kernels/cpu/dequantize.h"

namespace llm {

namespace {

constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME (64) less the NUL, as the reader
constexpr std::size_t kMaxDims = 4;
constexpr std::uint32_t kGGUFVersion = 3;

template <typename T>
void put_le(std::vector<std::uint8_t>& out, T v) {
  const std::size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));  // every supported host is little-endian, as GGUF
}

void put_string(std::vector<std::uint8_t>& out, const std::string& s) {
  put_le<std::uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void encode_into(std::vector<std::uint8_t>& out, const std::string& key, const GGUFValue& v) {
  switch (v.type) {
    case GGUFType::UINT8:
      return put_le(out, static_cast<std::uint8_t>(v.u));
    case GGUFType::INT8:
      return put_le(out, static_cast<std::int8_t>(v.i));
    case GGUFType::UINT16:
      return put_le(out, static_cast<std::uint16_t>(v.u));
    case GGUFType::INT16:
      return put_le(out, static_cast<std::int16_t>(v.i));
    case GGUFType::UINT32:
      return put_le(out, static_cast<std::uint32_t>(v.u));
    case GGUFType::INT32:
      return put_le(out, static_cast<std::int32_t>(v.i));
    case GGUFType::UINT64:
      return put_le(out, v.u);
    case GGUFType::INT64:
      return put_le(out, v.i);
    // The reader keeps a FLOAT32 in a double: converting back is exact.
    case GGUFType::FLOAT32:
      return put_le(out, static_cast<float>(v.f));
    case GGUFType::FLOAT64:
      return put_le(out, v.f);
    case GGUFType::BOOL:
      return put_le<std::uint8_t>(out, v.b ? 1 : 0);
    case GGUFType::STRING:
      return put_string(out, v.s);
    case GGUFType::ARRAY:
      put_le(out, static_cast<std::uint32_t>(v.elem_type));
      put_le<std::uint64_t>(out, v.items.size());
      for (std::size_t k = 0; k < v.items.size(); ++k) {
        if (v.items[k].type != v.elem_type) {
          throw Error("metadata '" + key + "': array of " + gguf_type_name(v.elem_type) + " has item " +
                      std::to_string(k) + " of type " + gguf_type_name(v.items[k].type));
        }
        encode_into(out, key, v.items[k]);
      }
      return;
  }
  throw Error("metadata '" + key + "': unknown value type " + std::to_string(static_cast<std::uint32_t>(v.type)));
}

std::string system_error() {
  return std::strerror(errno);
}

}  // namespace

std::vector<std::uint8_t> encode_gguf_value(const std::string& key, const GGUFValue& v) {
  std::vector<std::uint8_t> out;
  encode_into(out, key, v);
  return out;
}

std::uint64_t gguf_alignment(const GGUFMetadata& metadata) {
  for (const auto& [key, v] : metadata) {
    if (key != "general.alignment") continue;
    if (!v.is_integer() || v.i <= 0 || v.u > (1u << 20) || (v.u & (v.u - 1)) != 0) {
      throw Error("metadata 'general.alignment' is " + (v.is_integer() ? std::to_string(v.i) : gguf_type_name(v.type)) +
                  ": must be a power of two up to 1 MiB");
    }
    return v.u;
  }
  return kDefaultAlignment;
}

GGUFWriter::GGUFWriter(std::string path, const GGUFMetadata& metadata, std::vector<GGUFTensorSpec> tensors)
    : path_(std::move(path)), temp_path_(path_ + ".tmp"), tensors_(std::move(tensors)) {
  alignment_ = gguf_alignment(metadata);

  std::vector<std::uint8_t> header;
  put_le<std::uint32_t>(header, 0x46554747u);  // "GGUF"
  put_le<std::uint32_t>(header, kGGUFVersion);
  put_le<std::uint64_t>(header, tensors_.size());
  put_le<std::uint64_t>(header, metadata.size());
  std::set<std::string> keys;
  for (const auto& [key, v] : metadata) {
    if (!keys.insert(key).second) throw Error(path_ + ": metadata key '" + printable(key) + "' given twice");
    put_string(header, key);
    put_le(header, static_cast<std::uint32_t>(v.type));
    encode_into(header, key, v);
  }

  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const auto& t : tensors_) {
    const std::string what = path_ + ": tensor '" + printable(t.name) + "'";
    if (t.name.size() > kMaxTensorName) {
      throw Error(what + ": name is " + std::to_string(t.name.size()) + " bytes long (ggml's limit is " +
                  std::to_string(kMaxTensorName) + ")");
    }
    if (!names.insert(t.name).second) throw Error(what + ": name given twice");
    if (t.dims.empty() || t.dims.size() > kMaxDims) {
      throw Error(what + ": " + std::to_string(t.dims.size()) + " dimensions (must be 1..4)");
    }
    std::uint64_t n = 1;
    for (const auto d : t.dims) {
      if (d == 0) throw Error(what + ": a dimension is 0");
      n = checked_mul<std::uint64_t>(n, d, what + " element count");
    }
    if (t.dims[0] % block_elements(t.type) != 0) {
      throw Error(what + ": row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                  tensor_type_name(t.type) + " block size " + std::to_string(block_elements(t.type)));
    }
    const std::uint64_t bytes = checked_mul<std::uint64_t>(n / block_elements(t.type), block_bytes(t.type), what);
    put_string(header, t.name);
    put_le<std::uint32_t>(header, static_cast<std::uint32_t>(t.dims.size()));
    for (const auto d : t.dims) put_le<std::uint64_t>(header, d);
    put_le<std::uint32_t>(header, static_cast<std::uint32_t>(t.type));
    put_le<std::uint64_t>(header, offset);
    tensor_bytes_.push_back(bytes);
    const std::uint64_t padded =
        checked_add<std::uint64_t>(bytes, alignment_ - 1, what + " size") / alignment_ * alignment_;
    offset = checked_add<std::uint64_t>(offset, padded, path_ + ": data section size");
  }
  const std::uint64_t data_start = (header.size() + alignment_ - 1) / alignment_ * alignment_;
  file_size_ = checked_add<std::uint64_t>(data_start, offset, path_ + ": file size");

  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) throw Error(path_ + ": cannot create the output file (as " + temp_path_ + "): " + system_error());
  put(header.data(), header.size());
  pad_to_alignment();
  current_left_ = tensors_.empty() ? 0 : tensor_bytes_[0];
}

GGUFWriter::~GGUFWriter() {
  if (!finished_) abandon();
}

void GGUFWriter::abandon() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  std::error_code ignored;
  std::filesystem::remove(temp_path_, ignored);
}

void GGUFWriter::put(const void* data, std::size_t size) {
  if (size != 0 && std::fwrite(data, 1, size, file_) != size) {
    const std::string why = system_error();
    abandon();
    throw Error(path_ + ": cannot write the output file (as " + temp_path_ + ") at byte " + std::to_string(written_) +
                ": " + why);
  }
  written_ += size;
}

void GGUFWriter::pad_to_alignment() {
  static const std::uint8_t kZeros[64] = {};
  std::uint64_t pad = (alignment_ - written_ % alignment_) % alignment_;
  while (pad > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(pad, sizeof kZeros));
    put(kZeros, n);
    pad -= n;
  }
}

void GGUFWriter::write(const void* data, std::size_t size) {
  if (!file_) throw Error(path_ + ": write after the output file was closed");
  if (current_ >= tensors_.size() || size > current_left_) {
    throw Error(path_ + ": " + std::to_string(size) + " bytes given for tensor " +
                (current_ < tensors_.size()
                     ? "'" + tensors_[current_].name + "', which has " + std::to_string(current_left_) + " bytes left"
                     : "data past the last tensor"));
  }
  put(data, size);
  current_left_ -= size;
  // A zero-byte tensor cannot exist (dims are >= 1), so a completed one is always followed by padding.
  while (current_ < tensors_.size() && current_left_ == 0) {
    pad_to_alignment();
    ++current_;
    current_left_ = current_ < tensors_.size() ? tensor_bytes_[current_] : 0;
  }
}

void GGUFWriter::finish() {
  if (!file_) throw Error(path_ + ": finish after the output file was closed");
  if (current_ < tensors_.size()) {
    throw Error(path_ + ": tensor '" + tensors_[current_].name + "' lacks " + std::to_string(current_left_) +
                " bytes of data");
  }
  if (written_ != file_size_) {
    throw Error(path_ + ": wrote " + std::to_string(written_) + " bytes, the header promised " +
                std::to_string(file_size_));
  }
  const bool flushed = std::fflush(file_) == 0;
  const std::string why = flushed ? "" : system_error();
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) {
    abandon();
    throw Error(path_ + ": cannot write the output file (as " + temp_path_ + "): " + (flushed ? system_error() : why));
  }
  std::error_code ec;
  std::filesystem::rename(temp_path_, path_, ec);
  if (ec) {
    abandon();
    throw Error(path_ + ": cannot move the finished file " + temp_path_ + " into place: " + ec.message());
  }
  finished_ = true;
}

}  // namespace llm
