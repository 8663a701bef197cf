#include "quant_weights.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "common/checked.h"
#include "common/error.h"
#include "common/gguf.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/half.h"
#include "kernels/cpu/quantize.h"

namespace llm::stage05 {

const char* format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::f32:
      return "f32";
    case WeightFormat::f16:
      return "f16";
    case WeightFormat::q8_0:
      return "q8_0";
    case WeightFormat::q4_0:
      return "q4_0";
    case WeightFormat::q4_1:
      return "q4_1";
    case WeightFormat::fp8:
      return "fp8";
  }
  return "?";
}

bool is_block_format(WeightFormat f) {
  return f == WeightFormat::q8_0 || f == WeightFormat::q4_0 || f == WeightFormat::q4_1;
}

TensorType block_type(WeightFormat f) {
  switch (f) {
    case WeightFormat::q8_0:
      return TensorType::Q8_0;
    case WeightFormat::q4_0:
      return TensorType::Q4_0;
    case WeightFormat::q4_1:
      return TensorType::Q4_1;
    default:
      throw std::invalid_argument(std::string("block_type: ") + format_name(f) + " is not a block format");
  }
}

std::size_t StoredMatrix::storage_bytes() const {
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  switch (format) {
    case WeightFormat::f32:
      return 4 * n;
    case WeightFormat::f16:
      return 2 * n;
    case WeightFormat::fp8:
      return n + 4 * static_cast<std::size_t>(rows);
    default:
      return bytes.size();
  }
}

void StoredMatrix::dequantize_row(int r, float* out) const {
  const std::size_t c = static_cast<std::size_t>(cols), row = static_cast<std::size_t>(r);
  switch (format) {
    case WeightFormat::f32:
    case WeightFormat::f16:
      std::memcpy(out, &values[row * c], sizeof(float) * c);
      return;
    case WeightFormat::fp8: {
      const float s = row_scales[row];
      for (std::size_t j = 0; j < c; ++j) out[j] = cpu::fp8_to_fp32(bytes[row * c + j], cpu::Fp8Format::E4M3) * s;
      return;
    }
    default: {
      const TensorType t = block_type(format);
      cpu::dequantize(t, &bytes[row * cpu::row_bytes(t, c)], out, c);
    }
  }
}

std::size_t QuantWeights::bytes() const {
  std::size_t b = embed.storage_bytes() + classifier.storage_bytes();
  const auto dim = static_cast<std::size_t>(config.dim);
  b += 4 * dim * (1 + 2 * layers.size());  // norms
  for (const QuantLayer& L : layers)
    b += L.wqkv.storage_bytes() + L.wo.storage_bytes() + L.w13.storage_bytes() + L.w2.storage_bytes();
  return b;
}

double QuantWeights::bytes_per_step() const {
  double b = static_cast<double>(classifier_or_embed().storage_bytes());
  b += 4.0 * static_cast<double>(config.dim) * static_cast<double>(1 + 2 * layers.size());
  for (const QuantLayer& L : layers)
    b += static_cast<double>(L.wqkv.storage_bytes() + L.wo.storage_bytes() + L.w13.storage_bytes() +
                             L.w2.storage_bytes());
  return b;
}

bool valid_weights_mode(const std::string& mode) {
  for (const char* m : {"auto", "f32", "f16", "q8_0", "q4_0", "q4_1", "fp8"})
    if (mode == m) return true;
  return false;
}

namespace {

/// One tensor of a (possibly concatenated) matrix: its GGUF name and fp32 values [rows, cols].
struct Part {
  std::string name;
  const std::vector<float>* values;
  int rows;
};

std::string show(float x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(x));
  return buf;
}

/// The parts' rows stacked and converted to `f` (from the fp32 values).
StoredMatrix convert(const std::vector<Part>& parts, int cols, WeightFormat f, const std::string& mode) {
  StoredMatrix m;
  m.format = f;
  m.cols = cols;
  for (const Part& p : parts) m.rows = checked_add(m.rows, p.rows, "rows of " + p.name);
  const auto c = static_cast<std::size_t>(cols);
  const std::size_t n = checked_mul(static_cast<std::size_t>(m.rows), c, "elements of " + parts.front().name);
  if (is_block_format(f) && c % 32 != 0)
    throw Error("--weights " + mode + ": tensor '" + parts.front().name + "' has rows of " + std::to_string(cols) +
                " elements, not a multiple of " + format_name(f) + "'s block of 32");
  switch (f) {
    case WeightFormat::f32:
    case WeightFormat::f16:
      m.values.reserve(n);
      for (const Part& p : parts) m.values.insert(m.values.end(), p.values->begin(), p.values->end());
      if (f == WeightFormat::f16)
        for (std::size_t i = 0; i < n; ++i) {
          const float x = m.values[i];
          m.values[i] = cpu::half_to_float(cpu::float_to_half(x));
          if (!std::isfinite(m.values[i]))
            throw Error("--weights f16: a weight of " + parts.front().name + " (or the tensors stacked with it) is " +
                        show(x) + ", beyond fp16's range (+-65504)");
        }
      break;
    case WeightFormat::fp8:
      m.bytes.resize(n);
      m.row_scales.reserve(static_cast<std::size_t>(m.rows));
      for (const Part& p : parts)
        for (int r = 0; r < p.rows; ++r) {
          const std::size_t row = m.row_scales.size();
          m.row_scales.push_back(cpu::quantize_fp8_row(&(*p.values)[static_cast<std::size_t>(r) * c], &m.bytes[row * c],
                                                       c, cpu::Fp8Format::E4M3));
        }
      break;
    default: {
      const TensorType t = block_type(f);
      const std::size_t rb = cpu::row_bytes(t, c);
      m.bytes.resize(rb * static_cast<std::size_t>(m.rows));
      std::size_t row = 0;
      std::vector<float> back(c);
      for (const Part& p : parts)
        for (int r = 0; r < p.rows; ++r, ++row) {
          cpu::quantize(t, &(*p.values)[static_cast<std::size_t>(r) * c], &m.bytes[row * rb], c);
          // A block scale is fp16: a block whose largest weight is beyond 65504 x 127 overflows.
          cpu::dequantize(t, &m.bytes[row * rb], back.data(), c);
          if (cpu::first_non_finite(back.data(), c) < c)
            throw Error("--weights " + mode + ": tensor '" + p.name + "' row " + std::to_string(r) + " does not fit " +
                        format_name(f) + " (a block's fp16 scale overflows)");
        }
    }
  }
  return m;
}

/// The format a GGUF tensor type runs as under --weights auto.
WeightFormat as_stored(TensorType t) {
  switch (t) {
    case TensorType::F16:
      return WeightFormat::f16;
    case TensorType::Q8_0:
      return WeightFormat::q8_0;
    case TensorType::Q4_0:
      return WeightFormat::q4_0;
    case TensorType::Q4_1:
      return WeightFormat::q4_1;
    default:
      return WeightFormat::f32;  // F32; BF16 values are exact in fp32
  }
}

/// --weights auto: the parts as the file stores them. Block formats keep the file's bytes
/// (rows stacked); parts stored in different types run as fp32 (`mixed` is set).
StoredMatrix from_file(const GGUFFile& f, const std::vector<Part>& parts, int cols, bool* mixed) {
  std::vector<const GGUFTensorInfo*> infos;
  for (const Part& p : parts) {
    const GGUFTensorInfo* t = f.find_tensor(p.name);
    if (t == nullptr) throw Error(f.path() + ": missing tensor '" + p.name + "'");
    if (t->n_elements != static_cast<std::uint64_t>(p.rows) * static_cast<std::uint64_t>(cols))
      throw Error(f.path() + ": tensor '" + p.name + "' has " + std::to_string(t->n_elements) + " elements, not the " +
                  std::to_string(static_cast<std::uint64_t>(p.rows) * static_cast<std::uint64_t>(cols)) +
                  " it was loaded with (did the file change?)");
    infos.push_back(t);
  }
  const WeightFormat fmt = as_stored(infos.front()->type);
  for (const GGUFTensorInfo* t : infos)
    if (as_stored(t->type) != fmt) {
      *mixed = true;
      return convert(parts, cols, WeightFormat::f32, "auto");
    }
  if (!is_block_format(fmt)) return convert(parts, cols, fmt, "auto");
  if (cols % 32 != 0)  // blocks may then straddle rows: the file is readable, but the kernels take whole blocks per row
    throw Error(f.path() + ": tensor '" + parts.front().name + "' has rows of " + std::to_string(cols) +
                " elements in " + format_name(fmt) + ", not a whole number of 32-element blocks (try --weights f16)");
  StoredMatrix m;
  m.format = fmt;
  m.cols = cols;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::size_t n =
        cpu::row_bytes(infos[i]->type, static_cast<std::size_t>(cols)) * static_cast<std::size_t>(parts[i].rows);
    if (infos[i]->n_bytes != n)
      throw Error(f.path() + ": tensor '" + parts[i].name + "' has " + std::to_string(infos[i]->n_bytes) +
                  " bytes, not the " + std::to_string(n) + " of its shape in " + tensor_type_name(infos[i]->type));
    const std::uint8_t* d = f.tensor_data(*infos[i]);
    m.bytes.insert(m.bytes.end(), d, d + n);
    m.rows += parts[i].rows;
  }
  return m;
}

}  // namespace

QuantWeights make_quant_weights(const ModelWeights& w, const GGUFFile* file, const std::string& mode) {
  if (!valid_weights_mode(mode))
    throw Error("--weights " + printable(mode) + ": must be auto, f32, f16, q8_0, q4_0, q4_1 or fp8");
  const ModelConfig& c = w.config;
  QuantWeights q;
  q.config = c;
  WeightFormat fixed = WeightFormat::f32;
  for (WeightFormat f : {WeightFormat::f32, WeightFormat::f16, WeightFormat::q8_0, WeightFormat::q4_0,
                         WeightFormat::q4_1, WeightFormat::fp8})
    if (mode == format_name(f)) fixed = f;
  const bool from_gguf = mode == "auto" && file != nullptr;
  bool mixed = false;
  auto make = [&](const std::vector<Part>& parts, int cols) {
    return from_gguf ? from_file(*file, parts, cols, &mixed) : convert(parts, cols, fixed, mode);
  };
  q.embed = make({{"token_embd.weight", &w.token_embd, c.vocab_size}}, c.dim);
  if (!w.output.empty()) q.classifier = make({{"output.weight", &w.output, c.vocab_size}}, c.dim);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<std::size_t>(l)];
    const std::string b = "blk." + std::to_string(l) + ".";
    QuantLayer ql;
    ql.wqkv = make({{b + "attn_q.weight", &L.wq, c.q_dim()},
                    {b + "attn_k.weight", &L.wk, c.kv_dim()},
                    {b + "attn_v.weight", &L.wv, c.kv_dim()}},
                   c.dim);
    ql.wo = make({{b + "attn_output.weight", &L.wo, c.dim}}, c.q_dim());
    ql.w13 =
        make({{b + "ffn_gate.weight", &L.w_gate, c.hidden_dim}, {b + "ffn_up.weight", &L.w_up, c.hidden_dim}}, c.dim);
    ql.w2 = make({{b + "ffn_down.weight", &L.w_down, c.dim}}, c.hidden_dim);
    q.layers.push_back(std::move(ql));
  }
  // The storage in words: the layers' formats, and the embedding's when it differs.
  std::string layers;
  for (const QuantLayer& L : q.layers)
    for (const StoredMatrix* m : {&L.wqkv, &L.wo, &L.w13, &L.w2}) {
      const std::string f = format_name(m->format);
      if (("/" + layers + "/").find("/" + f + "/") == std::string::npos) layers += (layers.empty() ? "" : "/") + f;
    }
  if (layers.empty()) layers = format_name(q.embed.format);
  q.storage = layers;
  if (from_gguf) q.storage += " (as stored)";
  if (format_name(q.embed.format) != layers) q.storage += std::string(" + ") + format_name(q.embed.format) + " embed";
  if (mixed) q.storage += " + f32 where a matrix's tensors differ in type";
  return q;
}

}  // namespace llm::stage05
