// The quantizer (stages/05_quantization/quantize_main.cpp), run as the executable it is:
//   [quantize-tool]          tiny-target.gguf to every --type, read back with our reader: the metadata
//                            (in order) and tensor names/shapes/order carried over, general.file_type
//                            set, and every tensor's bytes equal to quantize(dequantize(stored)) done
//                            here with kernels/cpu directly; it also writes what
//                            tests/reference/check_quantized_gguf.py compares with gguf-py
//   [quantize-tool-generate] the quantized models load and generate; f16/f32 give the original's logits
//   [quantize-tool-rules]    --keep, 1-D tensors, rows not a multiple of 32, bad weights: one error, no file
//   [gguf-writer]            common/gguf_writer: every metadata type, alignment, pieces, no file left on error
//                            (run with the rules)
#include <unistd.h>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/gguf.h"
#include "common/gguf_writer.h"
#include "common/model_weights.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize.h"
#include "stages/01_kv_cache/kv_engine.h"
#include "tests/helpers/checks.h"
#include "tests/helpers/gguf_writer.h"
#include "tests/helpers/random_model.h"

using namespace llm;

namespace {

namespace fs = std::filesystem;

struct TypeCase {
  const char* flag;
  TensorType type;
  std::uint32_t ftype;  // llama.cpp's LLAMA_FTYPE_*, from llama.h
};
const TypeCase kTypes[] = {{"q8_0", TensorType::Q8_0, 7}, {"q4_0", TensorType::Q4_0, 2},  {"q4_1", TensorType::Q4_1, 3},
                           {"f16", TensorType::F16, 1},   {"bf16", TensorType::BF16, 32}, {"f32", TensorType::F32, 0}};

std::string check_dir() {
  fs::create_directories(LLM_QUANTIZE_CHECK_DIR);
  return LLM_QUANTIZE_CHECK_DIR;
}

struct RunResult {
  int code = -1;
  std::string output;  // stdout and stderr
  std::string err;     // stderr alone
};

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

RunResult run_quantize(const std::vector<std::string>& args) {
  static int calls = 0;
  // Named by process too: the test cases run as separate ctest tests, perhaps at the same time.
  const std::string base = check_dir() + "/run-" + std::to_string(getpid()) + "-" + std::to_string(++calls);
  std::string cmd = quoted(LLM_QUANTIZE_EXE);
  // Appended piece by piece: "literal" + std::string here trips GCC 12's -Wrestrict false positive.
  for (const auto& a : args) {
    cmd += ' ';
    cmd += quoted(a);
  }
  cmd += " >";
  cmd += quoted(base + ".out");
  cmd += " 2>";
  cmd += quoted(base + ".err");
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  r.err = slurp(base + ".err");
  r.output = slurp(base + ".out") + r.err;
  return r;
}

int error_lines(const std::string& err) {
  int n = 0;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) n += line.rfind("error:", 0) == 0;
  return n;
}

// Bad input: exit code 2, one "error:" line holding every text, and neither OUT nor OUT.tmp left.
void check_refused(const std::vector<std::string>& args, const std::string& out,
                   const std::vector<std::string>& texts) {
  const RunResult r = run_quantize(args);
  INFO(r.output);
  CHECK(r.code == 2);
  CHECK(error_lines(r.err) == 1);
  for (const auto& t : texts) CHECK(r.err.find(t) != std::string::npos);
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(out + ".tmp"));
}

bool same_value(const GGUFValue& a, const GGUFValue& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case GGUFType::FLOAT32:
    case GGUFType::FLOAT64:
      return std::memcmp(&a.f, &b.f, sizeof a.f) == 0;
    case GGUFType::BOOL:
      return a.b == b.b;
    case GGUFType::STRING:
      return a.s == b.s;
    case GGUFType::ARRAY:
      if (a.elem_type != b.elem_type || a.items.size() != b.items.size()) return false;
      for (std::size_t k = 0; k < a.items.size(); ++k)
        if (!same_value(a.items[k], b.items[k])) return false;
      return true;
    default:
      return a.u == b.u && a.i == b.i;
  }
}

std::vector<float> dequantized(const GGUFFile& f, const GGUFTensorInfo& t) {
  std::vector<float> x(t.n_elements);
  cpu::dequantize(t.type, f.tensor_data(t), x.data(), x.size());
  return x;
}

const std::string kTiny = "datasets/models/tiny-target.gguf";

// Runs the tool on the committed model into <check dir>/<prefix>.<type>.gguf; REQUIREs success.
std::string quantize_tiny(const TypeCase& tc, const std::string& prefix) {
  const std::string out = check_dir() + "/" + prefix + "." + tc.flag + ".gguf";
  const RunResult r = run_quantize({test::repo_path(kTiny), out, "--type", tc.flag});
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("size:") != std::string::npos);
  CHECK_FALSE(fs::exists(out + ".tmp"));
  return out;
}

std::vector<int> greedy(const ModelWeights& w, const std::vector<int>& prompt, int n, std::vector<float>* logits) {
  stage01::KvCacheEngine engine(w, {});
  engine.set_keep_logits(true);
  Request req;
  req.id = "r";
  req.prompt = prompt;
  req.max_new_tokens = n;
  const auto got = engine.run({req}, nullptr);
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].error.empty());
  if (logits) *logits = got[0].logits;
  return got[0].tokens;
}

}  // namespace

TEST_CASE("the quantizer carries a model over to every type, as kernels/cpu quantizes it", "[quantize-tool]") {
  const GGUFFile orig(test::repo_path(kTiny));
  for (const auto& tc : kTypes) {
    INFO("--type " << tc.flag);
    const std::string path = quantize_tiny(tc, "tiny-target");
    const GGUFFile q(path);
    CHECK(q.version() == 3);
    CHECK(q.alignment() == orig.alignment());

    // Metadata: the original's keys in their order, general.file_type and (for the block types)
    // general.quantization_version put after the general.* keys; every carried value unchanged.
    const bool blocks = block_elements(tc.type) > 1;
    std::vector<std::string> want_keys;
    for (const auto& k : orig.metadata_keys()) {
      want_keys.push_back(k);
      if (k == "general.name") {  // the last general.* key of tiny-target.gguf
        want_keys.push_back("general.file_type");
        if (blocks) want_keys.push_back("general.quantization_version");
      }
    }
    CHECK(q.metadata_keys() == want_keys);
    for (const auto& k : orig.metadata_keys()) {
      INFO("key " << k);
      CHECK(same_value(q.get(k), orig.get(k)));
    }
    CHECK(q.get("general.file_type").type == GGUFType::UINT32);
    CHECK(q.get_int("general.file_type") == tc.ftype);
    if (blocks) CHECK(q.get_int("general.quantization_version") == 2);

    // Tensors: same names, shapes and order; 2-D ones in the chosen type, 1-D ones F32; bytes
    // equal to our quantizer's on the stored values, values equal to dequantize(quantize(x)).
    REQUIRE(q.tensors().size() == orig.tensors().size());
    std::vector<float> dump;
    for (std::size_t k = 0; k < orig.tensors().size(); ++k) {
      const auto& a = orig.tensors()[k];
      const auto& b = q.tensors()[k];
      INFO("tensor " << a.name);
      REQUIRE(b.name == a.name);
      REQUIRE(b.dims == a.dims);
      const TensorType want_type = a.dims.size() == 1 ? TensorType::F32 : tc.type;
      REQUIRE(b.type == want_type);
      const std::vector<float> x = dequantized(orig, a);
      std::vector<std::uint8_t> want_bytes(cpu::row_bytes(want_type, x.size()));
      cpu::quantize(want_type, x.data(), want_bytes.data(), x.size());
      REQUIRE(b.n_bytes == want_bytes.size());
      CHECK(std::memcmp(q.tensor_data(b), want_bytes.data(), want_bytes.size()) == 0);
      std::vector<float> want(x.size());
      cpu::dequantize(want_type, want_bytes.data(), want.data(), want.size());
      const std::vector<float> got = dequantized(q, b);
      CHECK(cpu::first_non_finite(got.data(), got.size()) == got.size());
      CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
      if (a.type == b.type) CHECK(std::memcmp(q.tensor_data(b), orig.tensor_data(a), a.n_bytes) == 0);
      dump.insert(dump.end(), got.begin(), got.end());
    }
    // For check_quantized_gguf.py: every tensor's values as our reader gives them, in file order.
    std::ofstream f(path + ".values.f32", std::ios::binary);
    f.write(reinterpret_cast<const char*>(dump.data()), static_cast<std::streamsize>(dump.size() * sizeof(float)));
    REQUIRE(f.good());
  }
}

TEST_CASE("the quantized models load and generate", "[quantize-tool-generate]") {
  const Model orig = load_model(test::repo_path(kTiny));
  const std::vector<int> prompt = orig.tokenizer->encode_prompt("And God said");
  std::vector<float> want_logits;
  const std::vector<int> want = greedy(orig.weights, prompt, 12, &want_logits);
  const auto vocab = static_cast<std::size_t>(orig.config().vocab_size);
  for (const auto& tc : kTypes) {
    INFO("--type " << tc.flag);
    const Model m = load_model(quantize_tiny(tc, "generate"));
    CHECK(m.tokenizer->encode_prompt("And God said") == prompt);
    std::vector<float> logits;
    const std::vector<int> got = greedy(m.weights, prompt, 12, &logits);
    CHECK(got.size() == want.size());
    if (tc.type == TensorType::F32 || tc.type == TensorType::F16) {
      // The stored F16 values widen to F32 exactly (or are copied): the same weights, the same tokens
      // and logits (within the fp32 rule of docs/ARCHITECTURE.md: the matmuls' summation order
      // depends on the weights' addresses).
      CHECK(m.weights.token_embd == orig.weights.token_embd);
      CHECK(m.weights.layers.back().w_down == orig.weights.layers.back().w_down);
      CHECK(got == want);
      test::check_rows(logits, want_logits, vocab, 1e-4);
    } else {
      // The same first token: the tiny model's top logit leads by far more than 8-/4-bit error.
      REQUIRE_FALSE(got.empty());
      CHECK(got[0] == want[0]);
      CHECK(logits.size() == got.size() * vocab);
    }
  }
}

TEST_CASE("the quantizer's rules: --keep, 1-D tensors, odd rows, and bad weights refused", "[quantize-tool-rules]") {
  const std::string dir = check_dir();
  SECTION("--keep keeps a tensor as stored") {
    const std::string out = dir + "/keep.gguf";
    const RunResult r = run_quantize(
        {test::repo_path(kTiny), out, "--type", "q4_0", "--keep", "^token_embd\\.", "--keep", "no_such_tensor"});
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(r.err.find("--keep no_such_tensor matches no tensor") != std::string::npos);
    const GGUFFile orig(test::repo_path(kTiny)), q(out);
    for (std::size_t k = 0; k < orig.tensors().size(); ++k) {
      const auto& a = orig.tensors()[k];
      const auto& b = q.tensors()[k];
      INFO(a.name);
      if (a.name == "token_embd.weight") {
        CHECK(b.type == a.type);
        CHECK(std::memcmp(q.tensor_data(b), orig.tensor_data(a), a.n_bytes) == 0);
      } else {
        CHECK(b.type == (a.dims.size() == 1 ? TensorType::F32 : TensorType::Q4_0));
      }
    }
  }

  // A small GGUF (not a model: the quantizer needs none) with an odd row, a 1-D F16 tensor and a
  // quantizable one.
  const std::vector<float> odd = test::randn(48 * 3, 1);
  const std::vector<float> even = test::randn(64 * 2, 2);
  std::vector<std::uint8_t> norm_f16(2 * 64);
  const std::vector<float> norm = test::randn(64, 3);
  cpu::quantize(TensorType::F16, norm.data(), norm_f16.data(), 64);
  auto make = [&](const std::string& path, float poison) {
    test::GGUFWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u32("general.alignment", 64);
    w.add_f32_tensor("odd.weight", 3, 48, odd);
    w.add_tensor("norm.weight", {64}, 1, norm_f16);
    std::vector<float> e = even;
    e[70] = poison;
    w.add_f32_tensor("even.weight", 2, 64, e);
    w.write(path);
  };

  SECTION("rows not a multiple of 32 stay as stored; 1-D tensors become F32; the alignment is kept") {
    const std::string in = dir + "/shapes.gguf", out = dir + "/shapes.q8_0.gguf";
    make(in, even[70]);
    const RunResult r = run_quantize({in, out, "--type", "q8_0"});
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(r.err.find("tensor 'odd.weight': row length 48 is not a multiple of the Q8_0 block size 32: kept as F32") !=
          std::string::npos);
    const GGUFFile q(out);
    CHECK(q.alignment() == 64);
    REQUIRE(q.tensors().size() == 3);
    CHECK(q.tensors()[0].type == TensorType::F32);
    CHECK(std::memcmp(q.tensor_data(q.tensors()[0]), odd.data(), odd.size() * 4) == 0);
    CHECK(q.tensors()[1].type == TensorType::F32);
    std::vector<float> norm_back(64);
    cpu::dequantize(TensorType::F16, norm_f16.data(), norm_back.data(), 64);
    CHECK(dequantized(q, q.tensors()[1]) == norm_back);
    CHECK(q.tensors()[2].type == TensorType::Q8_0);
    for (const auto& t : q.tensors()) CHECK(t.offset % 64 == 0);
  }

  SECTION("a non-finite weight is refused, naming the tensor and the element; no file is left") {
    const std::string in = dir + "/nan.gguf", out = dir + "/nan.q8_0.gguf";
    make(in, std::nanf(""));
    check_refused({in, out, "--type", "q8_0"}, out,
                  {"nan.gguf", "even.weight", "element 70 (row 1, column 6)", "finite"});
  }

  SECTION("a weight beyond the fp16 range is refused for f16 and for a block type whose fp16 scale overflows") {
    const std::string in = dir + "/big.gguf";
    make(in, 1e7f);
    for (const char* type : {"f16", "q8_0", "q4_1"}) {
      INFO(type);
      const std::string out = dir + "/big." + type + ".gguf";
      check_refused({in, out, "--type", type}, out, {"big.gguf", "even.weight", "element 70", "does not fit"});
    }
    // bf16 has fp32's range: the same file converts.
    const RunResult r = run_quantize({in, dir + "/big.bf16.gguf", "--type", "bf16"});
    CHECK(r.code == 0);
  }

  SECTION("the paths: the input as output (also by another name, or as OUT.tmp), an unwritable output") {
    const std::string in = dir + "/paths.gguf";
    make(in, 0.5f);
    check_refused({in, in, "--type", "q8_0"}, dir + "/none", {"paths.gguf", "is the input file"});
    check_refused({in, dir + "/../" + fs::path(dir).filename().string() + "/paths.gguf", "--type", "q8_0"},
                  dir + "/none", {"is the input file"});
    const std::string tmp_in = dir + "/paths.out.gguf.tmp";
    fs::copy_file(in, tmp_in, fs::copy_options::overwrite_existing);
    const RunResult r = run_quantize({tmp_in, dir + "/paths.out.gguf", "--type", "q8_0"});
    CHECK(r.code == 2);
    CHECK(error_lines(r.err) == 1);
    CHECK(r.err.find("paths.out.gguf.tmp is the input file") != std::string::npos);
    CHECK(fs::file_size(tmp_in) == fs::file_size(in));  // the input is untouched
    check_refused({in, dir + "/no/such/dir/out.gguf", "--type", "q8_0"}, dir + "/no/such/dir/out.gguf",
                  {"no/such/dir/out.gguf", "cannot create"});
  }
}

namespace {
GGUFValue scalar(GGUFType type, std::uint64_t u, std::int64_t i, double f = 0.0) {
  GGUFValue v;
  v.type = type;
  v.u = u;
  v.i = i;
  v.f = f;
  return v;
}
GGUFValue array(GGUFType elem, std::vector<GGUFValue> items) {
  GGUFValue v;
  v.type = GGUFType::ARRAY;
  v.elem_type = elem;
  v.items = std::move(items);
  return v;
}
}  // namespace

TEST_CASE("GGUFWriter: every metadata type, any alignment, data in pieces, read back by our reader",
          "[quantize-tool-rules][gguf-writer]") {
  GGUFMetadata md;
  md.emplace_back("general.alignment", scalar(GGUFType::UINT32, 128, 128));
  md.emplace_back("u8", scalar(GGUFType::UINT8, 200, 200));
  md.emplace_back("i8", scalar(GGUFType::INT8, static_cast<std::uint64_t>(-5), -5));
  md.emplace_back("u16", scalar(GGUFType::UINT16, 65535, 65535));
  md.emplace_back("i16", scalar(GGUFType::INT16, static_cast<std::uint64_t>(-32768), -32768));
  md.emplace_back("i32", scalar(GGUFType::INT32, static_cast<std::uint64_t>(-7), -7));
  md.emplace_back("u64", scalar(GGUFType::UINT64, (std::uint64_t{1} << 63) + 5,
                                static_cast<std::int64_t>((std::uint64_t{1} << 63) + 5)));
  md.emplace_back(
      "i64", scalar(GGUFType::INT64, static_cast<std::uint64_t>(-(std::int64_t{1} << 40)), -(std::int64_t{1} << 40)));
  md.emplace_back("f32", scalar(GGUFType::FLOAT32, 0, 0, static_cast<double>(0.1f)));
  md.emplace_back("f64", scalar(GGUFType::FLOAT64, 0, 0, 1e300));
  GGUFValue b = scalar(GGUFType::BOOL, 0, 0);
  b.b = true;
  md.emplace_back("bool", b);
  GGUFValue s = scalar(GGUFType::STRING, 0, 0);
  s.s = std::string("nul\0and \xC3\xA9", 10);
  md.emplace_back("string", s);
  md.emplace_back("strings", array(GGUFType::STRING, {s, s}));
  md.emplace_back("nested", array(GGUFType::ARRAY, {array(GGUFType::INT32, {scalar(GGUFType::INT32, 1, 1)}),
                                                    array(GGUFType::INT32, {})}));
  md.emplace_back("empty", array(GGUFType::FLOAT32, {}));

  const std::vector<float> a = test::randn(5, 4), c = test::randn(64 * 3, 5), d = test::randn(32 * 4, 6);
  std::vector<std::uint8_t> cq(cpu::row_bytes(TensorType::Q8_0, c.size())),
      dq(cpu::row_bytes(TensorType::Q4_1, d.size()));
  cpu::quantize(TensorType::Q8_0, c.data(), cq.data(), c.size());
  cpu::quantize(TensorType::Q4_1, d.data(), dq.data(), d.size());
  const std::vector<GGUFTensorSpec> specs = {
      {"a", {5}, TensorType::F32}, {"c", {64, 3}, TensorType::Q8_0}, {"d", {32, 2, 1, 2}, TensorType::Q4_1}};
  const std::string path = check_dir() + "/writer.gguf";
  fs::remove(path);  // from an earlier run
  {
    GGUFWriter w(path, md, specs);
    CHECK(fs::exists(w.temp_path()));
    CHECK_FALSE(fs::exists(path));
    w.write(a.data(), a.size() * 4);
    w.write(cq.data(), 34);  // one block, then the rest
    w.write(cq.data() + 34, cq.size() - 34);
    CHECK_THROWS_AS(w.write(dq.data(), dq.size() + 1), Error);  // more than tensor d holds
    w.write(dq.data(), dq.size());
    w.finish();
    CHECK(fs::file_size(path) == w.file_size());
  }
  CHECK_FALSE(fs::exists(path + ".tmp"));
  const GGUFFile f(path);
  CHECK(f.alignment() == 128);
  REQUIRE(f.metadata_keys().size() == md.size());
  for (std::size_t k = 0; k < md.size(); ++k) {
    INFO(md[k].first);
    CHECK(f.metadata_keys()[k] == md[k].first);
    CHECK(same_value(f.get(md[k].first), md[k].second));
  }
  REQUIRE(f.tensors().size() == 3);
  const std::vector<const void*> data = {a.data(), cq.data(), dq.data()};
  for (std::size_t k = 0; k < 3; ++k) {
    const auto& t = f.tensors()[k];
    CHECK(t.name == specs[k].name);
    CHECK(t.dims == specs[k].dims);
    CHECK(t.type == specs[k].type);
    CHECK(t.offset % 128 == 0);
    CHECK(std::memcmp(f.tensor_data(t), data[k], t.n_bytes) == 0);
  }

  // Unfinished, or a bad description: no file under either name.
  const std::string none = check_dir() + "/writer-unfinished.gguf";
  {
    GGUFWriter w(none, md, specs);
    w.write(a.data(), a.size() * 4);
    CHECK_THROWS_AS(w.finish(), Error);  // c and d lack their data
  }
  CHECK_FALSE(fs::exists(none));
  CHECK_FALSE(fs::exists(none + ".tmp"));
  GGUFMetadata twice = {md[1], md[1]};
  CHECK_THROWS_WITH(GGUFWriter(none, twice, specs), Catch::Contains("'u8' given twice"));
  CHECK_THROWS_WITH(GGUFWriter(none, md, {{std::string(64, 'x'), {32}, TensorType::F32}}),
                    Catch::Contains("64 bytes long"));
  CHECK_THROWS_WITH(GGUFWriter(none, md, {{"odd", {48}, TensorType::Q8_0}}), Catch::Contains("row length 48"));
  CHECK_FALSE(fs::exists(none + ".tmp"));
}
