// Writes the crafted inputs of the bad-input suite (tests/bad_inputs/CMakeLists.txt lists the
// cases and what each must say). Usage: make_bad_inputs <output dir>
//
// Damaged GGUF files are made by a small editor: parse a good file into its parts (metadata,
// tensor infos, data), change one thing, write it back with the padding recomputed.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/model_weights.h"
#include "tests/helpers/gguf_writer.h"
#include "tests/helpers/random_model.h"

using namespace llm::test;
using Bytes = std::vector<std::uint8_t>;

namespace {

// ---- a GGUF file as parts
struct Gguf {
  std::uint32_t version = 3;
  struct Kv {
    std::string key;
    std::uint32_t type;
    Bytes value;  // encoded as in the file
  };
  struct Tensor {
    std::string name;
    Bytes shape_and_type;  // u32 n_dims | u64 dims[] | u32 type
    std::uint64_t offset;
  };
  std::vector<Kv> kvs;
  std::vector<Tensor> tensors;
  Bytes data;

  Kv& kv(const std::string& key) {
    for (auto& k : kvs)
      if (k.key == key) return k;
    throw std::runtime_error("no key " + key);
  }
};

class Reader {
 public:
  explicit Reader(const Bytes& b) : b_(b) {}
  template <typename T>
  T get() {
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  std::string str() {
    const auto n = get<std::uint64_t>();
    return std::string(reinterpret_cast<const char*>(take(n)), n);
  }
  const std::uint8_t* take(std::size_t n) {
    if (at_ + n > b_.size()) throw std::runtime_error("short GGUF");
    at_ += n;
    return b_.data() + at_ - n;
  }
  std::size_t at() const { return at_; }

 private:
  const Bytes& b_;
  std::size_t at_ = 0;
};

std::size_t scalar_size(std::uint32_t type) {
  switch (type) {
    case 0:
    case 1:
    case 7:
      return 1;
    case 2:
    case 3:
      return 2;
    case 4:
    case 5:
    case 6:
      return 4;
    case 10:
    case 11:
    case 12:
      return 8;
    default:
      return 0;
  }
}

void skip_value(Reader& r, std::uint32_t type) {
  if (type == 8) {
    r.str();
  } else if (type == 9) {
    const auto elem = r.get<std::uint32_t>();
    const auto n = r.get<std::uint64_t>();
    for (std::uint64_t i = 0; i < n; ++i) skip_value(r, elem);
  } else {
    r.take(scalar_size(type));
  }
}

Gguf parse(const Bytes& b) {
  Reader r(b);
  Gguf g;
  r.get<std::uint32_t>();  // magic
  g.version = r.get<std::uint32_t>();
  const auto n_tensors = r.get<std::uint64_t>(), n_kv = r.get<std::uint64_t>();
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    Gguf::Kv kv;
    kv.key = r.str();
    kv.type = r.get<std::uint32_t>();
    const std::size_t from = r.at();
    skip_value(r, kv.type);
    kv.value.assign(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(r.at()));
    g.kvs.push_back(std::move(kv));
  }
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    Gguf::Tensor t;
    t.name = r.str();
    const std::size_t from = r.at();
    const auto dims = r.get<std::uint32_t>();
    r.take(8 * dims + 4);
    t.shape_and_type.assign(b.begin() + static_cast<std::ptrdiff_t>(from),
                            b.begin() + static_cast<std::ptrdiff_t>(r.at()));
    t.offset = r.get<std::uint64_t>();
    g.tensors.push_back(std::move(t));
  }
  const std::size_t data_at = (r.at() + 31) / 32 * 32;
  g.data.assign(b.begin() + static_cast<std::ptrdiff_t>(data_at), b.end());
  return g;
}

Bytes serialize(const Gguf& g, const char magic[4] = "GGUF") {
  Bytes out;
  auto put = [&](const void* p, std::size_t n) {
    out.insert(out.end(), static_cast<const std::uint8_t*>(p), static_cast<const std::uint8_t*>(p) + n);
  };
  auto put_u32 = [&](std::uint32_t v) { put(&v, 4); };
  auto put_u64 = [&](std::uint64_t v) { put(&v, 8); };
  auto put_str = [&](const std::string& s) {
    put_u64(s.size());
    put(s.data(), s.size());
  };
  put(magic, 4);
  put_u32(g.version);
  put_u64(g.tensors.size());
  put_u64(g.kvs.size());
  for (const auto& kv : g.kvs) {
    put_str(kv.key);
    put_u32(kv.type);
    put(kv.value.data(), kv.value.size());
  }
  for (const auto& t : g.tensors) {
    put_str(t.name);
    put(t.shape_and_type.data(), t.shape_and_type.size());
    put_u64(t.offset);
  }
  out.resize((out.size() + 31) / 32 * 32, 0);
  put(g.data.data(), g.data.size());
  return out;
}

template <typename T>
Bytes encode(T v) {
  Bytes b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}

Bytes encode_string(const std::string& s) {
  Bytes b = encode<std::uint64_t>(s.size());
  b.insert(b.end(), s.begin(), s.end());
  return b;
}

/// A GGUF of `weights` whose tokenizer metadata comes from another GGUF file.
Bytes with_tokenizer(const llm::ModelWeights& weights, const Gguf& tokenizer) {
  Gguf g = parse(gguf_for(weights).bytes());
  std::erase_if(g.kvs, [](const Gguf::Kv& kv) { return kv.key.rfind("tokenizer.", 0) == 0; });
  for (const auto& kv : tokenizer.kvs)
    if (kv.key.rfind("tokenizer.", 0) == 0) g.kvs.push_back(kv);
  return serialize(g);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_bad_inputs <dir>\n");
    return 2;
  }
  const std::string dir = argv[1] + std::string("/");
  const Bytes tiny = read_file(repo_path("datasets/test/tiny_random.gguf"));

  // ---- GGUF layout: tensors whose byte ranges overlap.
  {
    Gguf g = parse(tiny);
    g.tensors.at(1).offset = g.tensors.at(0).offset;
    write_file(dir + "overlap.gguf", serialize(g));
    for (auto& t : g.tensors) t.offset = 0;
    write_file(dir + "zero_offsets.gguf", serialize(g));
  }
  // ---- header: a damaged magic, version 0, a key of the wrong type.
  {
    const Gguf g = parse(tiny);
    write_file(dir + "magic_gguX.gguf", serialize(g, "GGUX"));
    Gguf v0 = g;
    v0.version = 0;
    write_file(dir + "version0.gguf", serialize(v0));
    Gguf wrong = g;
    auto& kv = wrong.kv("llama.context_length");
    kv.type = 8;  // a string where an integer belongs
    kv.value = encode_string("64");
    write_file(dir + "wrong_type_key.gguf", serialize(wrong));
  }
  // ---- tokenizer metadata: a BYTE token that is not <0xNN>, a bos id above 2^32.
  {
    Gguf g = parse(tiny);
    // The BYTE token <0x41> renamed <0xZZ>: same length, so only the text changes.
    auto& tokens = g.kv("tokenizer.ggml.tokens");
    const std::string from = "<0x41>";
    const auto at = std::search(tokens.value.begin(), tokens.value.end(), from.begin(), from.end());
    if (at == tokens.value.end()) throw std::runtime_error("tiny_random.gguf has no <0x41> token");
    std::copy_n("<0xZZ>", 6, at);
    write_file(dir + "byte_token.gguf", serialize(g));
    Gguf b = parse(tiny);
    auto& bos = b.kv("tokenizer.ggml.bos_token_id");
    bos.type = 10;  // u64
    bos.value = encode<std::uint64_t>((std::uint64_t{1} << 32) + 1);
    write_file(dir + "bos_2p32.gguf", serialize(b));
  }
  // ---- byte-level BPE merges: one without a space. SmolLM2's tokenizer (its GGUF holds no
  // weights) on a random model of its vocabulary size, kept tiny otherwise.
  {
    Gguf tok = parse(read_file(repo_path("datasets/tokenizers/smollm2_tokenizer.gguf")));
    auto& tokens = tok.kv("tokenizer.ggml.tokens");
    std::uint64_t vocab;
    std::memcpy(&vocab, tokens.value.data() + 4, 8);
    RandomModelSpec bpe{"bpe", 8, 1, 1, 1, 8, static_cast<int>(vocab), 16, 10000.0f, 1e-5f, true, 3};
    // Undamaged: the 1 MB prompt cases tokenize with byte-level BPE on it.
    write_file(dir + "bpe_model.gguf", with_tokenizer(make_random_weights(bpe), tok));
    Gguf g = parse(read_file(dir + "bpe_model.gguf"));
    auto& merges = g.kv("tokenizer.ggml.merges");  // u32 elem type | u64 n | strings
    std::uint64_t len;
    std::memcpy(&len, merges.value.data() + 12, 8);
    char* first = reinterpret_cast<char*>(merges.value.data() + 20);
    for (std::uint64_t i = 0; i < len; ++i)
      if (first[i] == ' ') first[i] = 'x';
    write_file(dir + "merge_no_space.gguf", serialize(g));
  }
  // ---- weights: a NaN in a tensor.
  RandomModelSpec spec{"bad", 32, 2, 4, 2, 48, 64, 64, 10000.0f, 1e-5f, true, 5};
  {
    auto w = make_random_weights(spec);
    w.layers[0].wq[5] = std::numeric_limits<float>::quiet_NaN();
    write_gguf_model(w, dir + "nan_weights.gguf");
  }
  // ---- quantized weights: a block whose fp16 scale is NaN (Q8_0 token_embd, block 3) or +Inf
  // (Q4_1 blk.0.attn_k, block 0) in the committed quantized test model. Each block starts with its
  // scale d (Q8_0: 34 bytes a block; Q4_1: 20 bytes, d then the minimum).
  {
    const Bytes quant = read_file(repo_path("datasets/test/tiny_random_quant.gguf"));
    auto set_scale = [&](const std::string& name, std::size_t byte_in_tensor, std::uint16_t half,
                         const std::string& out) {
      Gguf g = parse(quant);
      for (const auto& t : g.tensors)
        if (t.name == name) {
          std::memcpy(g.data.data() + t.offset + byte_in_tensor, &half, 2);
          write_file(dir + out, serialize(g));
          return;
        }
      throw std::runtime_error("tiny_random_quant.gguf has no tensor " + name);
    };
    set_scale("token_embd.weight", 3 * 34, 0x7E00, "nan_scale.gguf");
    set_scale("blk.0.attn_k.weight", 0, 0x7C00, "inf_scale.gguf");
  }
  // ---- llama2.c: a header whose vocab_size is INT_MIN (negating it overflows).
  {
    const auto w = make_random_weights(spec);
    write_llama2c_model(w, dir + "vocab_intmin.bin");
    Bytes b = read_file(dir + "vocab_intmin.bin");
    const std::int32_t v = INT_MIN;
    std::memcpy(b.data() + 5 * 4, &v, 4);
    write_file(dir + "vocab_intmin.bin", b);
    write_llama2c_tokenizer(spec.vocab, dir + "tokenizer.bin");
  }
  // ---- finite weights whose forward pass overflows, for one token only. Queries and keys read
  // only dimension 0 of the normed input, whose norm weight is 1e19; every token's embedding is
  // 0 there except the trigger's, which is the unit vector e_0. So the trigger's self-score is
  // about head_dim x (6e19)^2 = +Inf and its row turns NaN; a prompt without it stays finite.
  // The shapes and the vocabulary are tiny_random.gguf's.
  {
    const Gguf tiny_tok = parse(tiny);
    const RandomModelSpec shape{"overflow", 36, 2, 6, 2, 92, 512, 64, 10000.0f, 1e-5f, true, 7};
    auto w = make_random_weights(shape);
    const llm::Model probe = llm::load_model(repo_path("datasets/test/tiny_random.gguf"));
    auto ids_of = [&](const std::string& text) { return probe.tokenizer->encode_prompt(text); };
    const int trigger = ids_of("poison").back();
    for (const char* clean : {"Hello", "The licensor grants"}) {
      const auto ids = ids_of(clean);
      if (std::find(ids.begin(), ids.end(), trigger) != ids.end() || trigger == 0) {
        std::fprintf(stderr, "make_bad_inputs: the trigger token %d is in '%s'\n", trigger, clean);
        return 1;
      }
    }
    const auto dim = static_cast<std::size_t>(shape.dim);
    for (std::size_t t = 0; t < static_cast<std::size_t>(shape.vocab); ++t) w.token_embd[t * dim] = 0.0f;
    float* x = &w.token_embd[static_cast<std::size_t>(trigger) * dim];
    std::fill(x, x + dim, 0.0f);
    x[0] = 1.0f;
    auto& L = w.layers[0];
    L.attn_norm[0] = 1e19f;
    for (auto* m : {&L.wq, &L.wk}) {
      const std::size_t rows = m->size() / dim;
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < dim; ++c) (*m)[r * dim + c] = c == 0 ? 1.0f : 0.0f;
    }
    write_file(dir + "overflow.gguf", with_tokenizer(w, tiny_tok));
  }

  // ---- workloads
  const std::string ok = R"({"id": "fine", "prompt": "The licensor grants", "max_new_tokens": 2})";
  write_text(dir + "arrival_1e9.jsonl", ok + "\n" +
                                            R"({"id": "late", "prompt": "a", "max_new_tokens": 2, "arrival_s": 1e9})"
                                            "\n");
  write_text(dir + "arrival_1e999.jsonl", R"({"prompt": "a", "max_new_tokens": 2, "arrival_s": 1e999})"
                                          "\n");
  write_text(dir + "duplicate_ids.jsonl", ok + "\n" +
                                              R"({"id": "other", "prompt": "b", "max_new_tokens": 1})"
                                              "\n" +
                                              ok + "\n");
  write_text(dir + "max_new_2p64.jsonl", R"({"prompt": "a", "max_new_tokens": 18446744073709551615})"
                                         "\n");
  write_text(dir + "max_new_2p63.jsonl", R"({"prompt": "a", "max_new_tokens": 9223372036854775808})"
                                         "\n");
  write_text(dir + "max_new_float.jsonl", R"({"prompt": "a", "max_new_tokens": 2.5})"
                                          "\n");
  write_text(dir + "id_number.jsonl", R"({"id": 7, "prompt": "a", "max_new_tokens": 2})"
                                      "\n");
  write_text(dir + "empty.jsonl", "");
  write_text(dir + "bad_utf8.jsonl", "{\"prompt\": \"\xC3\x28\", \"max_new_tokens\": 2}\n");
  write_text(dir + "long_line.jsonl", std::string(5u << 20, ' ') + "x\n");
  const std::string mb(1u << 20, 'a');
  write_text(dir + "prompt_1mb.jsonl", R"({"id": "huge", "prompt": ")" + mb +
                                           R"(", "max_new_tokens": 2})"
                                           "\n");
  write_text(dir + "one_huge.jsonl", ok + "\n" + R"({"id": "huge", "prompt": ")" + mb +
                                         R"(", "max_new_tokens": 2})"
                                         "\n" +
                                         R"({"id": "fine-too", "prompt": "Hello", "max_new_tokens": 2})"
                                         "\n");
  // One request that needs more KV blocks than the pool has (with --kv-blocks 4 --block-size 4).
  write_text(dir + "one_too_big.jsonl", ok + "\n" +
                                            R"({"id": "big", "prompt": "Hello", "max_new_tokens": 40})"
                                            "\n" +
                                            R"({"id": "fine-too", "prompt": "Hello", "max_new_tokens": 2})"
                                            "\n");
  // With overflow.gguf: the request whose prompt holds the trigger fails, the others are served.
  write_text(dir + "one_overflows.jsonl",
             R"({"id": "clean", "prompt": "Hello", "max_new_tokens": 3})"
             "\n" +
                 std::string(R"({"id": "poison", "prompt": "poison", "max_new_tokens": 3})") + "\n" +
                 R"({"id": "clean-too", "prompt": "The licensor grants", "max_new_tokens": 3})"
                 "\n");
  return 0;
}
