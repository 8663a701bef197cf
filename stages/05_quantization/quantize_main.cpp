// quantize: rewrite a GGUF model with its weights in another type.
//
//   quantize IN.gguf OUT.gguf --type q8_0|q4_0|q4_1|f16|bf16|f32 [--keep REGEX]...
//
// Every tensor is read as stored (F32, F16, BF16, Q8_0, Q4_0 or Q4_1), dequantized to fp32 and
// quantized to its output type with kernels/cpu/quantize.h (ggml's reference quantizers, so the
// bytes are those llama.cpp and gguf-py would write). Which type each tensor gets:
//   - a tensor whose name matches a --keep regex (std::regex_search: anywhere in the name, anchor
//     with ^ and $) is copied as stored, byte for byte;
//   - a 1-D tensor (the norms) is written as F32, as llama.cpp does: a few KiB, and exact from any type;
//   - a tensor whose row length is not a multiple of the type's block of 32 is copied as stored
//     (a note on stderr says which);
//   - a tensor already in the output type is copied (requantizing would only add error);
//   - every other tensor gets --type.
// The metadata (tokenizer included) is carried over in file order; general.file_type is set to
// llama.cpp's LLAMA_FTYPE for --type, and general.quantization_version to 2 (ggml's block layout
// version) when a tensor is block-quantized. FP8 has no GGUF type: stage 05 converts to FP8 at load.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "common/checked.h"
#include "common/error.h"
#include "common/gguf.h"
#include "common/gguf_writer.h"
#include "common/run_main.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize.h"

namespace {

using llm::Error;
using llm::TensorType;

constexpr const char* kUsage =
    "usage: quantize IN.gguf OUT.gguf --type q8_0|q4_0|q4_1|f16|bf16|f32 [--keep REGEX]...\n"
    "  --type T      the weights' type in OUT (1-D tensors stay F32; rows not a multiple of 32 stay as stored)\n"
    "  --keep REGEX  tensors whose name matches stay as stored (repeatable; e.g. --keep '^token_embd')\n";

struct OutputType {
  const char* flag;
  TensorType type;
  std::uint32_t llama_ftype;  // llama.cpp's enum llama_ftype (LLAMA_FTYPE_ALL_F32, _MOSTLY_F16, ...)
};
constexpr OutputType kOutputTypes[] = {
    {"f32", TensorType::F32, 0},   {"f16", TensorType::F16, 1},   {"q4_0", TensorType::Q4_0, 2},
    {"q4_1", TensorType::Q4_1, 3}, {"q8_0", TensorType::Q8_0, 7}, {"bf16", TensorType::BF16, 32},
};
// ggml's GGML_QNT_VERSION: the version of the Q4/Q8 block layouts, which llama.cpp writes beside them.
constexpr std::uint32_t kQuantizationVersion = 2;
// Elements dequantized and quantized at a time: bounds memory for any tensor size.
constexpr std::uint64_t kChunkElements = std::uint64_t{1} << 22;

struct Options {
  std::string in, out;
  OutputType type{};
  std::vector<std::pair<std::string, std::regex>> keep;
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

OutputType parse_type(const std::string& value) {
  const std::string v = lower(value);
  for (const auto& t : kOutputTypes)
    if (v == t.flag) return t;
  if (v.rfind("fp8", 0) == 0 || v.rfind("f8", 0) == 0 || v.rfind("e4m3", 0) == 0 || v.rfind("e5m2", 0) == 0) {
    throw Error("--type " + llm::printable(value) +
                ": GGUF has no FP8 tensor type, so no file is written in FP8; stage 05 converts the weights "
                "to FP8 at load (--weights fp8): give it this file, or one quantized to f16/bf16");
  }
  throw Error("--type " + llm::printable(value) + ": unknown type (one of q8_0, q4_0, q4_1, f16, bf16, f32)");
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  bool have_type = false;
  for (int k = 1; k < argc; ++k) {
    std::string arg = argv[k];
    std::string value;
    bool has_value = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
      has_value = true;
    }
    auto take_value = [&]() {
      if (has_value) return value;
      if (k + 1 >= argc) throw Error(arg + ": needs a value");
      return std::string(argv[++k]);
    };
    if (arg == "--type") {
      if (have_type) throw Error("--type given twice");
      o.type = parse_type(take_value());
      have_type = true;
    } else if (arg == "--keep") {
      const std::string pattern = take_value();
      if (pattern.empty()) throw Error("--keep: empty regex (it would keep every tensor)");
      try {
        o.keep.emplace_back(pattern, std::regex(pattern, std::regex::ECMAScript));
      } catch (const std::regex_error& e) {
        throw Error("--keep " + llm::printable(pattern) + ": not a valid regex (" + e.what() + ")");
      }
    } else if (arg.size() > 1 && arg[0] == '-') {
      throw Error(llm::printable(arg) + ": unknown flag (see --help)");
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    throw Error("expected two paths, IN.gguf and OUT.gguf, got " + std::to_string(positional.size()) +
                (positional.size() > 2 ? " ('" + llm::printable(positional[2]) + "' is one too many)" : ""));
  }
  if (!have_type) throw Error("--type is required (q8_0, q4_0, q4_1, f16, bf16 or f32)");
  o.in = positional[0];
  o.out = positional[1];
  if (o.in.empty() || o.out.empty()) throw Error("a path is empty");
  return o;
}

// The same file under two names (a symlink, a hard link, "./x") counts as the same.
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (std::filesystem::equivalent(a, b, ec)) return true;
  const auto ca = std::filesystem::weakly_canonical(a, ec);
  if (ec) return false;
  const auto cb = std::filesystem::weakly_canonical(b, ec);
  return !ec && ca == cb;
}

void check_paths(const Options& o) {
  if (same_file(o.in, o.out))
    throw Error(llm::printable(o.out) + ": the output path is the input file " + llm::printable(o.in));
  // OUT is written as OUT.tmp first: that name must not be the input either (it is mapped while we write).
  if (same_file(o.in, o.out + ".tmp")) {
    throw Error(llm::printable(o.out) + ": its temporary file " + llm::printable(o.out) + ".tmp is the input file");
  }
  std::error_code ec;
  if (std::filesystem::is_directory(o.out, ec))
    throw Error(llm::printable(o.out) + ": the output path is a directory (give a file name)");
}

struct Plan {
  TensorType out;
  bool copy;  // bytes as stored
};

Plan plan_tensor(const llm::GGUFTensorInfo& t, const Options& o, const std::string& file) {
  for (const auto& [pattern, re] : o.keep)
    if (std::regex_search(t.name, re)) return {t.type, true};
  TensorType out = t.dims.size() == 1 ? TensorType::F32 : o.type.type;
  if (t.dims[0] % llm::block_elements(out) != 0) {
    std::fprintf(stderr,
                 "note: %s: tensor '%s': row length %llu is not a multiple of the %s block size %zu: kept as %s\n",
                 file.c_str(), llm::printable(t.name).c_str(), static_cast<unsigned long long>(t.dims[0]),
                 llm::tensor_type_name(out).c_str(), llm::block_elements(out), llm::tensor_type_name(t.type).c_str());
    out = t.type;
  }
  return {out, out == t.type};
}

// "(row r, column c)" of flat element i of a tensor with rows of `row` elements.
std::string element_name(std::uint64_t i, std::uint64_t row) {
  return "element " + std::to_string(i) + " (row " + std::to_string(i / row) + ", column " + std::to_string(i % row) +
         ")";
}

// Converts one tensor in chunks of whole blocks of both types and writes it.
void convert_tensor(const llm::GGUFFile& in, const llm::GGUFTensorInfo& t, TensorType out, llm::GGUFWriter& writer) {
  const std::string what = in.path() + ": tensor '" + llm::printable(t.name) + "'";
  const std::uint64_t row = t.dims[0];
  const std::uint64_t rows_per_chunk = std::max<std::uint64_t>(1, kChunkElements / row);
  const std::uint64_t n_rows = t.n_elements / row;
  const std::uint8_t* src = in.tensor_data(t);
  std::vector<float> x, back;
  std::vector<std::uint8_t> q;
  for (std::uint64_t r0 = 0; r0 < n_rows; r0 += rows_per_chunk) {
    const std::uint64_t n = std::min(rows_per_chunk, n_rows - r0) * row;  // <= max(kChunkElements, row)
    const std::uint64_t first = r0 * row;
    x.resize(n);
    llm::cpu::dequantize(t.type, src + llm::cpu::row_bytes(t.type, first), x.data(), n);
    if (const std::size_t bad = llm::cpu::first_non_finite(x.data(), n); bad != n) {
      std::string scales;
      if (auto s = llm::cpu::block_scales(t.type, src, (first + bad) / llm::block_elements(t.type))) {
        scales = " (its block's scale d is " + std::to_string(s->d) +
                 (s->has_min ? ", min m " + std::to_string(s->m) : std::string()) + ")";
      }
      throw Error(what + " (" + llm::tensor_type_name(t.type) + "): " + element_name(first + bad, row) + " is " +
                  std::to_string(x[bad]) + scales + ": weights must be finite");
    }
    q.resize(llm::cpu::row_bytes(out, n));
    llm::cpu::quantize(out, x.data(), q.data(), n);
    // A finite weight can still overflow the output's range: fp16 (F16, and the fp16 scales of
    // Q8_0/Q4_0/Q4_1) ends at 65504. Such a tensor would load as Inf.
    back.resize(n);
    llm::cpu::dequantize(out, q.data(), back.data(), n);
    if (const std::size_t bad = llm::cpu::first_non_finite(back.data(), n); bad != n) {
      // A block type's whole block goes bad with its scale: name the block's largest weight.
      const std::size_t be = llm::block_elements(out);
      std::size_t worst = bad;
      for (std::size_t i = bad / be * be; i < std::min(n, bad / be * be + be); ++i)
        if (std::fabs(x[i]) > std::fabs(x[worst])) worst = i;
      throw Error(what + ": " + element_name(first + worst, row) + " = " + std::to_string(x[worst]) +
                  " does not fit in " + llm::tensor_type_name(out) +
                  (be > 1 ? " (its block's fp16 scale overflows; fp16 ends at 65504)" : " (fp16 ends at 65504)") +
                  ": keep the tensor with --keep or use --type f32 or bf16");
    }
    writer.write(q.data(), q.size());
  }
}

// Sets `key` in place when present; otherwise puts it after the last "general." key.
void set_metadata(llm::GGUFMetadata& md, const std::string& key, llm::GGUFValue v) {
  std::size_t after_general = 0;
  for (std::size_t k = 0; k < md.size(); ++k) {
    if (md[k].first == key) {
      md[k].second = std::move(v);
      return;
    }
    if (md[k].first.rfind("general.", 0) == 0) after_general = k + 1;
  }
  md.insert(md.begin() + static_cast<std::ptrdiff_t>(after_general), {key, std::move(v)});
}

llm::GGUFValue uint32_value(std::uint32_t x) {
  llm::GGUFValue v;
  v.type = llm::GGUFType::UINT32;
  v.u = x;
  v.i = x;
  v.f = x;
  return v;
}

bool block_quantized(TensorType t) {
  return llm::block_elements(t) > 1;
}

std::string mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

int run(int argc, char** argv) {
  for (int k = 1; k < argc; ++k) {
    if (std::string(argv[k]) == "--help" || std::string(argv[k]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  const Options o = parse_args(argc, argv);
  check_paths(o);
  const llm::GGUFFile in(o.in);

  std::vector<llm::GGUFTensorSpec> specs;
  std::vector<Plan> plans;
  bool any_block_quantized = false;
  for (const auto& t : in.tensors()) {
    plans.push_back(plan_tensor(t, o, in.path()));
    specs.push_back({t.name, t.dims, plans.back().out});
    any_block_quantized = any_block_quantized || block_quantized(plans.back().out);
  }
  for (const auto& [pattern, re] : o.keep) {
    bool used = false;
    for (const auto& t : in.tensors()) used = used || std::regex_search(t.name, re);
    if (!used)
      std::fprintf(stderr, "note: --keep %s matches no tensor of %s\n", llm::printable(pattern).c_str(), o.in.c_str());
  }

  llm::GGUFMetadata md;
  for (const auto& key : in.metadata_keys()) md.emplace_back(key, in.metadata().at(key));
  set_metadata(md, "general.file_type", uint32_value(o.type.llama_ftype));
  if (any_block_quantized) set_metadata(md, "general.quantization_version", uint32_value(kQuantizationVersion));

  llm::GGUFWriter writer(o.out, md, specs);
  std::map<std::string, int> counts;  // "F16 -> Q8_0" -> tensors
  for (std::size_t k = 0; k < in.tensors().size(); ++k) {
    const auto& t = in.tensors()[k];
    if (plans[k].copy) {
      writer.write(in.tensor_data(t), t.n_bytes);
    } else {
      convert_tensor(in, t, plans[k].out, writer);
    }
    ++counts[llm::tensor_type_name(t.type) +
             (plans[k].copy ? " (copied)" : " -> " + llm::tensor_type_name(plans[k].out))];
  }
  writer.finish();

  std::error_code ec;
  const auto in_size = std::filesystem::file_size(o.in, ec);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("quantize: %s -> %s (--type %s, general.file_type %u)\n", o.in.c_str(), o.out.c_str(), o.type.flag,
              o.type.llama_ftype);
  for (const auto& [change, n] : counts) std::printf("  %-22s %d tensor%s\n", change.c_str(), n, n == 1 ? "" : "s");
  std::printf("  size: %s -> %s (%.0f%% of the input)\n", mib(in_size).c_str(), mib(writer.file_size()).c_str(),
              in_size ? 100.0 * static_cast<double>(writer.file_size()) / static_cast<double>(in_size) : 0.0);
  std::printf("  time: %.2f s\n", seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return llm::run_main([&] { return run(argc, argv); });
}
