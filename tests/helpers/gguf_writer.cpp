#include "tests/helpers/gguf_writer.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace llm::test {

namespace {
template <typename T>
void put(std::vector<std::uint8_t>& out, T v) {
  const std::size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}
void put_string(std::vector<std::uint8_t>& out, const std::string& s) {
  put<std::uint64_t>(out, s.size());
  const std::size_t at = out.size();
  out.resize(at + s.size());
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size());
}
}  // namespace

void GGUFWriter::add_raw(const std::string& key, std::uint32_t type, const std::vector<std::uint8_t>& payload) {
  put_string(kv_, key);
  put<std::uint32_t>(kv_, type);
  kv_.insert(kv_.end(), payload.begin(), payload.end());
  ++n_kv_;
}

void GGUFWriter::add_u32(const std::string& key, std::uint32_t v) {
  std::vector<std::uint8_t> p;
  put(p, v);
  add_raw(key, 4, p);
}
void GGUFWriter::add_i32(const std::string& key, std::int32_t v) {
  std::vector<std::uint8_t> p;
  put(p, v);
  add_raw(key, 5, p);
}
void GGUFWriter::add_f32(const std::string& key, float v) {
  std::vector<std::uint8_t> p;
  put(p, v);
  add_raw(key, 6, p);
}
void GGUFWriter::add_bool(const std::string& key, bool v) {
  add_raw(key, 7, {static_cast<std::uint8_t>(v ? 1 : 0)});
}
void GGUFWriter::add_string(const std::string& key, const std::string& v) {
  std::vector<std::uint8_t> p;
  put_string(p, v);
  add_raw(key, 8, p);
}
void GGUFWriter::add_string_array(const std::string& key, const std::vector<std::string>& v) {
  std::vector<std::uint8_t> p;
  put<std::uint32_t>(p, 8);
  put<std::uint64_t>(p, v.size());
  for (const auto& s : v) put_string(p, s);
  add_raw(key, 9, p);
}
void GGUFWriter::add_f32_array(const std::string& key, const std::vector<float>& v) {
  std::vector<std::uint8_t> p;
  put<std::uint32_t>(p, 6);
  put<std::uint64_t>(p, v.size());
  for (float x : v) put(p, x);
  add_raw(key, 9, p);
}
void GGUFWriter::add_i32_array(const std::string& key, const std::vector<std::int32_t>& v) {
  std::vector<std::uint8_t> p;
  put<std::uint32_t>(p, 5);
  put<std::uint64_t>(p, v.size());
  for (auto x : v) put(p, x);
  add_raw(key, 9, p);
}

void GGUFWriter::add_tensor(const std::string& name, const std::vector<std::uint64_t>& dims, std::uint32_t type_id,
                            const std::vector<std::uint8_t>& data) {
  tensors_.push_back({name, dims, type_id, data});
}

void GGUFWriter::add_f32_tensor(const std::string& name, std::size_t rows, std::size_t cols,
                                const std::vector<float>& data) {
  if (data.size() != rows * cols) throw std::logic_error("add_f32_tensor: size mismatch for " + name);
  std::vector<std::uint8_t> bytes(data.size() * 4);
  std::memcpy(bytes.data(), data.data(), bytes.size());
  add_tensor(name, rows == 1 ? std::vector<std::uint64_t>{cols} : std::vector<std::uint64_t>{cols, rows}, 0, bytes);
}

GGUFWriter::Tensor& GGUFWriter::find(const std::string& name) {
  for (auto& t : tensors_)
    if (t.name == name) return t;
  throw std::logic_error("GGUFWriter: no tensor " + name);
}

void GGUFWriter::replace_tensor(const std::string& name, std::uint32_t type_id, const std::vector<std::uint8_t>& data) {
  Tensor& t = find(name);
  t.type = type_id;
  t.data = data;
}

void GGUFWriter::set_offset(const std::string& name, std::uint64_t offset) {
  Tensor& t = find(name);
  t.has_offset = true;
  t.offset = offset;
}

std::vector<std::uint8_t> GGUFWriter::bytes(std::uint32_t version) const {
  constexpr std::uint64_t kAlign = 32;
  std::vector<std::uint8_t> out;
  put<std::uint32_t>(out, 0x46554747u);  // "GGUF" little-endian
  put<std::uint32_t>(out, version);
  put<std::uint64_t>(out, tensors_.size());
  put<std::uint64_t>(out, n_kv_);
  out.insert(out.end(), kv_.begin(), kv_.end());
  std::uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.dims.size()));
    for (auto d : t.dims) put<std::uint64_t>(out, d);
    put<std::uint32_t>(out, t.type);
    put<std::uint64_t>(out, t.has_offset ? t.offset : offset);
    offset += (t.data.size() + kAlign - 1) / kAlign * kAlign;
  }
  out.resize((out.size() + kAlign - 1) / kAlign * kAlign, 0);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize((out.size() + kAlign - 1) / kAlign * kAlign, 0);
  }
  return out;
}

void GGUFWriter::write(const std::string& path, std::uint32_t version) const {
  write_file(path, bytes(version));
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace llm::test
