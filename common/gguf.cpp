#include "common/gguf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/error.h"
#include "kernels/cpu/dequantize.h"

namespace llm {

std::string gguf_type_name(GGUFType t) {
  static const char* const kNames[] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                       "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  const auto id = static_cast<std::uint32_t>(t);
  return id < 13 ? kNames[id] : "type " + std::to_string(id);
}

GGUFMagic classify_gguf_magic(const std::uint8_t* head, std::size_t size) {
  static constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
  if (size < 4) return GGUFMagic::kOther;
  int same = 0, same_ignoring_case = 0;
  for (int k = 0; k < 4; ++k) {
    same += head[k] == static_cast<std::uint8_t>(kMagic[k]);
    same_ignoring_case += (head[k] & ~0x20u) == static_cast<std::uint8_t>(kMagic[k]);
  }
  if (same == 4) return GGUFMagic::kExact;
  std::uint8_t sorted[4] = {head[0], head[1], head[2], head[3]};
  std::sort(sorted, sorted + 4);
  const bool reordered = std::memcmp(sorted, "FGGU", 4) == 0;  // "FUGG" is the magic byte-swapped
  return same == 3 || same_ignoring_case == 4 || reordered ? GGUFMagic::kDamaged : GGUFMagic::kOther;
}

std::string printable_magic(const std::uint8_t* head, std::size_t size) {
  std::string m;
  for (std::size_t k = 0; k < std::min<std::size_t>(size, 4); ++k)
    m += head[k] >= 32 && head[k] <= 126 ? static_cast<char>(head[k]) : '?';
  return m;
}

bool GGUFValue::is_integer() const {
  switch (type) {
    case GGUFType::UINT8:
    case GGUFType::INT8:
    case GGUFType::UINT16:
    case GGUFType::INT16:
    case GGUFType::UINT32:
    case GGUFType::INT32:
    case GGUFType::UINT64:
    case GGUFType::INT64:
      return true;
    default:
      return false;
  }
}

namespace {

// Limits that keep a malformed header from asking for absurd allocations or recursion.
constexpr std::uint64_t kMaxArrayDepth = 4;
constexpr std::uint32_t kMaxDims = 4;  // ggml's GGML_MAX_DIMS
// ggml's GGML_MAX_NAME is 64 bytes including the terminating NUL: a longer name cannot load there.
constexpr std::size_t kMaxTensorName = 63;
// Per dimension and per tensor: 2^40 elements is 4 TiB of fp32, far past any model, and keeps
// every size computed from a shape far from overflow.
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 40;
// The smallest encodings, which bound a count by the bytes left: a key-value pair is an empty key
// (8) + type (4) + a 1-byte value; a tensor info an empty name (8) + n_dims (4) + one dim (8) +
// type (4) + offset (8).
constexpr std::uint64_t kMinKvBytes = 13;
// A parsed value takes ~100 bytes however small its encoding: a 1 GB array of UINT8 would need
// 100 GB. The items of all arrays together are capped far above any vocabulary (Llama 3's
// tokens, scores, types and merges are under 10^6).
constexpr std::uint64_t kMaxMetadataValues = std::uint64_t{1} << 24;
constexpr std::uint64_t kMinTensorInfoBytes = 32;

std::uint32_t byte_swap(std::uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
}

std::string byte_range(std::uint64_t begin, std::uint64_t end) {
  return "bytes [" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

/// Sequential reader over the file image; every read checks the bytes are there.
class Cursor {
 public:
  Cursor(const std::uint8_t* data, std::size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}

  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return size_ - pos_; }

  void need(std::uint64_t n, const std::string& what) const {
    if (n > remaining()) {
      throw Error(name_ + ": file is truncated: " + what + " at offset " + std::to_string(pos_) + " needs " +
                  std::to_string(n) + " bytes but only " + std::to_string(remaining()) + " remain (file size " +
                  std::to_string(size_) + ")");
    }
  }

  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const auto len = read<std::uint64_t>(what + " (string length)");
    need(len, what + " (string of length " + std::to_string(len) + ")");
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<std::size_t>(len));
    pos_ += static_cast<std::size_t>(len);
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  const std::string& name_;
};

// The smallest encoded size of one value of type t: bounds an array's count before allocating.
std::uint64_t min_encoded_size(GGUFType t) {
  switch (t) {
    case GGUFType::UINT8:
    case GGUFType::INT8:
    case GGUFType::BOOL:
      return 1;
    case GGUFType::UINT16:
    case GGUFType::INT16:
      return 2;
    case GGUFType::UINT32:
    case GGUFType::INT32:
    case GGUFType::FLOAT32:
      return 4;
    case GGUFType::STRING:
    case GGUFType::UINT64:
    case GGUFType::INT64:
    case GGUFType::FLOAT64:
      return 8;
    case GGUFType::ARRAY:
      return 12;
  }
  return 1;
}

// `values_left` is what remains of kMaxMetadataValues; each array's count is taken from it.
GGUFValue read_value(Cursor& c, GGUFType type, const std::string& key, const std::string& file, std::uint64_t depth,
                     std::uint64_t& values_left) {
  GGUFValue v;
  v.type = type;
  const std::string what = "metadata '" + key + "'";
  auto set_signed = [&v](std::int64_t x) {
    v.i = x;
    v.u = static_cast<std::uint64_t>(x);
    v.f = static_cast<double>(x);
  };
  auto set_unsigned = [&v](std::uint64_t x) {
    v.u = x;
    v.i = static_cast<std::int64_t>(x);
    v.f = static_cast<double>(x);
  };
  switch (type) {
    case GGUFType::UINT8:
      set_unsigned(c.read<std::uint8_t>(what));
      break;
    case GGUFType::INT8:
      set_signed(c.read<std::int8_t>(what));
      break;
    case GGUFType::UINT16:
      set_unsigned(c.read<std::uint16_t>(what));
      break;
    case GGUFType::INT16:
      set_signed(c.read<std::int16_t>(what));
      break;
    case GGUFType::UINT32:
      set_unsigned(c.read<std::uint32_t>(what));
      break;
    case GGUFType::INT32:
      set_signed(c.read<std::int32_t>(what));
      break;
    case GGUFType::UINT64:
      set_unsigned(c.read<std::uint64_t>(what));
      break;
    case GGUFType::INT64:
      set_signed(c.read<std::int64_t>(what));
      break;
    case GGUFType::FLOAT32:
      v.f = c.read<float>(what);
      break;
    case GGUFType::FLOAT64:
      v.f = c.read<double>(what);
      break;
    case GGUFType::BOOL: {
      const auto b = c.read<std::uint8_t>(what);
      if (b > 1) throw Error(file + ": " + what + ": BOOL value is " + std::to_string(b) + ", not 0 or 1");
      v.b = b != 0;
      break;
    }
    case GGUFType::STRING:
      v.s = c.read_string(what);
      break;
    case GGUFType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        throw Error(file + ": " + what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      const auto elem = c.read<std::uint32_t>(what + " (array element type)");
      if (elem > static_cast<std::uint32_t>(GGUFType::FLOAT64)) {
        throw Error(file + ": " + what + ": unknown array element type " + std::to_string(elem));
      }
      v.elem_type = static_cast<GGUFType>(elem);
      const auto count = c.read<std::uint64_t>(what + " (array length)");
      // Each element takes at least min_encoded_size bytes: refuse counts the file cannot hold.
      if (count > c.remaining() / min_encoded_size(v.elem_type)) {
        throw Error(file + ": " + what + ": array length " + std::to_string(count) + " of " +
                    gguf_type_name(v.elem_type) + " does not fit in the " + std::to_string(c.remaining()) +
                    " bytes left in the file");
      }
      if (count > values_left) {
        throw Error(file + ": " + what + ": array length " + std::to_string(count) + " passes the limit of " +
                    std::to_string(kMaxMetadataValues) + " metadata array items in all (" +
                    std::to_string(values_left) + " left)");
      }
      values_left -= count;
      v.items.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t k = 0; k < count; ++k)
        v.items.push_back(read_value(c, v.elem_type, key, file, depth + 1, values_left));
      break;
    }
    default:
      throw Error(file + ": " + what + ": unknown value type " + std::to_string(static_cast<std::uint32_t>(type)));
  }
  return v;
}

}  // namespace

GGUFFile::GGUFFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)), name_(path) {
  parse(file_->data(), file_->size());
}

GGUFFile::GGUFFile(const std::uint8_t* data, std::size_t size, const std::string& name) : name_(name) {
  parse(data, size);
}

void GGUFFile::parse(const std::uint8_t* data, std::size_t size) {
  data_ = data;
  size_ = size;
  Cursor c(data, size, name_);
  c.need(4, "magic");
  switch (classify_gguf_magic(data, size)) {
    case GGUFMagic::kExact:
      break;
    case GGUFMagic::kDamaged:
      throw Error(name_ + ": damaged GGUF magic: the file starts with '" + printable_magic(data, size) +
                  "', expected 'GGUF' (a corrupted copy?)");
    case GGUFMagic::kOther:
      throw Error(name_ + ": not a GGUF file: magic is '" + printable_magic(data, size) + "', expected 'GGUF'");
  }
  c.read<std::uint32_t>("magic");
  version_ = c.read<std::uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    // Only a version whose bytes, swapped, read 2 or 3 is a big-endian file; 0 is just wrong.
    const std::uint32_t swapped = byte_swap(version_);
    if (swapped == 2 || swapped == 3) {
      throw Error(name_ + ": GGUF version field reads " + std::to_string(version_) + ", which is version " +
                  std::to_string(swapped) +
                  " byte-swapped: a big-endian GGUF file (this reader reads little-endian files only)");
    }
    throw Error(name_ + ": unsupported GGUF version " + std::to_string(version_) + " (this reader reads 2 and 3" +
                (version_ == 1 ? "; re-convert the model with a current llama.cpp)" : ")"));
  }
  const auto n_tensors = c.read<std::uint64_t>("tensor_count");
  const auto n_kv = c.read<std::uint64_t>("metadata_kv_count");
  if (n_kv > c.remaining() / kMinKvBytes) {
    throw Error(name_ + ": metadata_kv_count is " + std::to_string(n_kv) + ": more than the file can hold (at most " +
                std::to_string(c.remaining() / kMinKvBytes) + " pairs of " + std::to_string(kMinKvBytes) +
                " bytes or more in the " + std::to_string(c.remaining()) + " bytes left)");
  }
  if (n_tensors > c.remaining() / kMinTensorInfoBytes) {
    throw Error(name_ + ": tensor_count is " + std::to_string(n_tensors) + ": more than the file can hold (at most " +
                std::to_string(c.remaining() / kMinTensorInfoBytes) + " tensor infos of " +
                std::to_string(kMinTensorInfoBytes) + " bytes or more in the " + std::to_string(c.remaining()) +
                " bytes left)");
  }

  std::uint64_t values_left = kMaxMetadataValues;
  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key #" + std::to_string(k));
    const auto type = c.read<std::uint32_t>("type of metadata '" + key + "'");
    if (type > static_cast<std::uint32_t>(GGUFType::FLOAT64)) {
      throw Error(name_ + ": metadata '" + key + "' has unknown value type " + std::to_string(type));
    }
    GGUFValue v = read_value(c, static_cast<GGUFType>(type), key, name_, 0, values_left);
    if (kv_.count(key)) throw Error(name_ + ": metadata key '" + key + "' appears twice");
    key_order_.push_back(key);
    kv_.emplace(std::move(key), std::move(v));
  }

  if (has("general.alignment")) {
    const auto& a = get("general.alignment");
    if (!a.is_integer()) {
      throw Error(name_ + ": metadata key 'general.alignment' has type " + gguf_type_name(a.type) +
                  ", expected UINT32");
    }
    if (a.i <= 0 || a.u > (1u << 20) || (a.u & (a.u - 1)) != 0) {
      throw Error(name_ + ": general.alignment is " + std::to_string(a.i) + ": must be a power of two up to 1 MiB");
    }
    alignment_ = a.u;
  }

  tensors_.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t k = 0; k < n_tensors; ++k) {
    GGUFTensorInfo t;
    t.name = c.read_string("tensor info #" + std::to_string(k) + " name");
    if (t.name.size() > kMaxTensorName) {
      throw Error(name_ + ": tensor info #" + std::to_string(k) + ": name '" + t.name.substr(0, 32) + "...' is " +
                  std::to_string(t.name.size()) + " bytes long (ggml's limit is " + std::to_string(kMaxTensorName) +
                  ")");
    }
    const std::string what = "tensor '" + t.name + "'";
    const auto n_dims = c.read<std::uint32_t>(what + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      throw Error(name_ + ": " + what + ": n_dims is " + std::to_string(n_dims) + " (must be 1.." +
                  std::to_string(kMaxDims) + ")");
    t.n_elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = c.read<std::uint64_t>(what + " dims");
      if (dim == 0 || dim > kMaxElements || t.n_elements > kMaxElements / dim) {
        throw Error(name_ + ": " + what + ": dimension " + std::to_string(d) + " is " + std::to_string(dim) +
                    " (each dimension must be at least 1, and the tensor at most 2^40 elements)");
      }
      t.dims.push_back(dim);
      t.n_elements *= dim;
    }
    const auto type_id = c.read<std::uint32_t>(what + " type");
    const auto type = tensor_type_from_id(type_id);
    if (!type) {
      throw Error(name_ + ": " + what + " has tensor type " + ggml_type_name(type_id) +
                  ", which this engine cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
    }
    t.type = *type;
    if (t.dims[0] % block_elements(t.type) != 0) {
      throw Error(name_ + ": " + what + ": row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                  tensor_type_name(t.type) + " block size " + std::to_string(block_elements(t.type)));
    }
    t.n_bytes = cpu::row_bytes(t.type, t.n_elements);
    t.offset = c.read<std::uint64_t>(what + " offset");
    if (t.offset % alignment_ != 0) {
      throw Error(name_ + ": " + what + ": offset " + std::to_string(t.offset) +
                  " is not a multiple of the alignment " + std::to_string(alignment_));
    }
    if (tensor_index_.count(t.name)) throw Error(name_ + ": tensor name '" + t.name + "' appears twice");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // pos <= size and alignment <= 1 MiB: no overflow.
  data_start_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_start_ > size_) {
    throw Error(name_ + ": file is truncated: tensor data would start at offset " + std::to_string(data_start_) +
                " but the file has " + std::to_string(size_) + " bytes");
  }
  const std::uint64_t data_size = data_start_ <= size_ ? size_ - data_start_ : 0;
  for (const auto& t : tensors_) {
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      throw Error(name_ + ": tensor '" + t.name + "' (" + tensor_type_name(t.type) + ", " + std::to_string(t.n_bytes) +
                  " bytes at data offset " + std::to_string(t.offset) +
                  ") runs past the end of the file: the data section holds " + std::to_string(data_size) +
                  " bytes (file truncated?)");
    }
  }
  // Two tensors sharing bytes load as garbage without any other sign: sorted by offset, each
  // must end where the next starts or before. (ggml demands exactly back-to-back tensors in file
  // order; gaps and any order are harmless, so this reader allows them.)
  std::vector<const GGUFTensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const GGUFTensorInfo* a, const GGUFTensorInfo* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->n_bytes < b->n_bytes;
  });
  for (std::size_t k = 1; k < by_offset.size(); ++k) {
    const GGUFTensorInfo& a = *by_offset[k - 1];
    const GGUFTensorInfo& b = *by_offset[k];
    if (a.offset + a.n_bytes > b.offset) {  // both were checked to lie inside the data section
      throw Error(name_ + ": tensors '" + a.name + "' (data " + byte_range(a.offset, a.offset + a.n_bytes) + ") and '" +
                  b.name + "' (data " + byte_range(b.offset, b.offset + b.n_bytes) +
                  ") overlap: each tensor needs its own bytes in the data section");
    }
  }
}

const GGUFValue& GGUFFile::get(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) throw Error(name_ + ": missing metadata key '" + key + "'");
  return it->second;
}

std::int64_t GGUFFile::get_int(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_integer()) throw wrong_type(key, v, "an integer (UINT32 or another integer type)");
  if (v.type == GGUFType::UINT64 && v.u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw Error(name_ + ": metadata key '" + key + "' is " + std::to_string(v.u) + ", beyond the int64 range");
  }
  return v.i;
}

Error GGUFFile::wrong_type(const std::string& key, const GGUFValue& v, const std::string& expected) const {
  std::string type = gguf_type_name(v.type);
  if (v.type == GGUFType::ARRAY) type += " of " + gguf_type_name(v.elem_type);
  return Error(name_ + ": metadata key '" + key + "' has type " + type + ", expected " + expected);
}

std::int64_t GGUFFile::get_int(const std::string& key, std::int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GGUFFile::get_float(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const auto& v = get(key);
  if (v.type != GGUFType::FLOAT32 && v.type != GGUFType::FLOAT64 && !v.is_integer())
    throw wrong_type(key, v, "FLOAT32 (or another number type)");
  return v.f;
}

std::string GGUFFile::get_string(const std::string& key) const {
  const auto& v = get(key);
  if (v.type != GGUFType::STRING) throw wrong_type(key, v, "STRING");
  return v.s;
}

std::string GGUFFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

bool GGUFFile::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = get(key);
  if (v.type != GGUFType::BOOL) throw wrong_type(key, v, "BOOL");
  return v.b;
}

std::vector<std::string> GGUFFile::get_string_array(const std::string& key) const {
  const auto& v = get(key);
  if (v.type != GGUFType::ARRAY || v.elem_type != GGUFType::STRING) throw wrong_type(key, v, "ARRAY of STRING");
  std::vector<std::string> out;
  out.reserve(v.items.size());
  for (const auto& item : v.items) out.push_back(item.s);
  return out;
}

std::vector<float> GGUFFile::get_float_array(const std::string& key) const {
  const auto& v = get(key);
  const bool numeric =
      v.elem_type != GGUFType::STRING && v.elem_type != GGUFType::ARRAY && v.elem_type != GGUFType::BOOL;
  if (v.type != GGUFType::ARRAY || !numeric) throw wrong_type(key, v, "ARRAY of FLOAT32 (or another number type)");
  std::vector<float> out;
  out.reserve(v.items.size());
  for (std::size_t k = 0; k < v.items.size(); ++k) {
    const double x = v.items[k].f;
    // A FLOAT64 beyond float's range would silently become Inf.
    if (std::abs(x) > static_cast<double>(std::numeric_limits<float>::max()) && !std::isinf(x)) {
      throw Error(name_ + ": metadata key '" + key + "' item " + std::to_string(k) + " is " + std::to_string(x) +
                  ", beyond the float32 range");
    }
    out.push_back(static_cast<float>(x));
  }
  return out;
}

std::vector<std::int32_t> GGUFFile::get_int_array(const std::string& key) const {
  const auto& v = get(key);
  GGUFValue elem;
  elem.type = v.elem_type;
  if (v.type != GGUFType::ARRAY || !elem.is_integer()) throw wrong_type(key, v, "ARRAY of INT32");
  std::vector<std::int32_t> out;
  out.reserve(v.items.size());
  for (std::size_t k = 0; k < v.items.size(); ++k) {
    const GGUFValue& item = v.items[k];
    const bool fits =
        item.type == GGUFType::UINT64
            ? item.u <= static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())
            : item.i >= std::numeric_limits<std::int32_t>::min() && item.i <= std::numeric_limits<std::int32_t>::max();
    if (!fits) {
      throw Error(name_ + ": metadata key '" + key + "' item " + std::to_string(k) + " is " +
                  (item.type == GGUFType::UINT64 ? std::to_string(item.u) : std::to_string(item.i)) +
                  ", outside the int32 range");
    }
    out.push_back(static_cast<std::int32_t>(item.i));
  }
  return out;
}

const GGUFTensorInfo* GGUFFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const std::uint8_t* GGUFFile::tensor_data(const GGUFTensorInfo& t) const {
  return data_ + data_start_ + t.offset;
}

}  // namespace llm
