// GGUF reader: every metadata type, both versions, and every kind of damage a file can have.
#include <catch2/catch.hpp>
#include <cstring>

#include "common/error.h"
#include "common/gguf.h"
#include "tests/helpers/gguf_writer.h"
#include "tests/helpers/random_model.h"

using namespace llm;
using Catch::Matchers::Contains;
using llm::test::GGUFWriter;

namespace {
template <typename T>
std::vector<std::uint8_t> le(T v) {
  std::vector<std::uint8_t> b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}
GGUFFile parse(const std::vector<std::uint8_t>& bytes, const std::string& name = "mem.gguf") {
  return GGUFFile(bytes.data(), bytes.size(), name);
}
GGUFWriter small_file() {
  GGUFWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 1);
  w.add_f32_tensor("a", 2, 32, std::vector<float>(64, 1.5f));
  w.add_f32_tensor("b", 1, 8, std::vector<float>(8, -2.0f));
  return w;
}
}  // namespace

TEST_CASE("reads the committed tiny model's header and tensors", "[gguf]") {
  GGUFFile f(test::repo_path("datasets/test/tiny_random.gguf"));
  CHECK(f.version() == 3);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_int("llama.embedding_length") == 36);
  CHECK(f.get_string_array("tokenizer.ggml.tokens").size() == 512);
  const auto* emb = f.find_tensor("token_embd.weight");
  REQUIRE(emb != nullptr);
  CHECK(emb->dims == std::vector<std::uint64_t>{36, 512});
  CHECK(emb->type == TensorType::F32);
  CHECK(f.find_tensor("no.such.tensor") == nullptr);
}

TEST_CASE("reads every metadata value type, in versions 2 and 3", "[gguf]") {
  GGUFWriter w;
  w.add_raw("u8", 0, {200});
  w.add_raw("i8", 1, le<std::int8_t>(-100));
  w.add_raw("u16", 2, le<std::uint16_t>(60000));
  w.add_raw("i16", 3, le<std::int16_t>(-30000));
  w.add_u32("u32", 4000000000u);
  w.add_i32("i32", -2000000000);
  w.add_f32("f32", 0.25f);
  w.add_bool("bool", true);
  w.add_string("str", "héllo");
  w.add_raw("u64", 10, le<std::uint64_t>(1ull << 40));
  w.add_raw("i64", 11, le<std::int64_t>(-(1ll << 40)));
  w.add_raw("f64", 12, le<double>(-1.5e300));
  w.add_f32_array("farr", {1.0f, 2.0f, 3.0f});
  w.add_string_array("sarr", {"a", "", "ccc"});
  // An array of arrays: [[1, 2], []] of INT32.
  std::vector<std::uint8_t> nested = le<std::uint32_t>(9);
  for (auto b : le<std::uint64_t>(2)) nested.push_back(b);
  for (auto part : {le<std::uint32_t>(5), le<std::uint64_t>(2), le<std::int32_t>(1), le<std::int32_t>(2),
                    le<std::uint32_t>(5), le<std::uint64_t>(0)}) {
    nested.insert(nested.end(), part.begin(), part.end());
  }
  w.add_raw("nested", 9, nested);

  for (std::uint32_t version : {2u, 3u}) {
    const auto bytes = w.bytes(version);
    GGUFFile f = parse(bytes);
    CHECK(f.version() == version);
    CHECK(f.get_int("u8") == 200);
    CHECK(f.get_int("i8") == -100);
    CHECK(f.get_int("u16") == 60000);
    CHECK(f.get_int("i16") == -30000);
    CHECK(f.get_int("u32") == 4000000000ll);
    CHECK(f.get_int("i32") == -2000000000ll);
    CHECK(f.get_float("f32", 0) == 0.25);
    CHECK(f.get_bool("bool", false));
    CHECK(f.get_string("str") == "héllo");
    CHECK(f.get_int("u64") == (1ll << 40));
    CHECK(f.get_int("i64") == -(1ll << 40));
    CHECK(f.get_float("f64", 0) == -1.5e300);
    CHECK(f.get_float_array("farr") == std::vector<float>{1.0f, 2.0f, 3.0f});
    CHECK(f.get_string_array("sarr") == std::vector<std::string>{"a", "", "ccc"});
    const auto& n = f.get("nested");
    REQUIRE(n.items.size() == 2);
    CHECK(n.items[0].items.size() == 2);
    CHECK(n.items[0].items[1].i == 2);
    CHECK(n.items[1].items.empty());
    CHECK_THROWS_WITH(f.get_string("u32"), Contains("'u32'") && Contains("expected STRING"));
    CHECK_THROWS_WITH(f.get_int("missing.key"), Contains("missing metadata key 'missing.key'"));
  }
}

TEST_CASE("tensor data is found at the aligned offsets", "[gguf]") {
  const auto bytes = small_file().bytes();
  GGUFFile f = parse(bytes);
  const auto* a = f.find_tensor("a");
  const auto* b = f.find_tensor("b");
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  float x;
  std::memcpy(&x, f.tensor_data(*a) + 4 * 63, 4);
  CHECK(x == 1.5f);
  std::memcpy(&x, f.tensor_data(*b), 4);
  CHECK(x == -2.0f);
}

TEST_CASE("bad headers give one clear error", "[gguf]") {
  auto bytes = small_file().bytes();
  SECTION("wrong magic") {
    std::memcpy(bytes.data(), "GGML", 4);
    CHECK_THROWS_WITH(parse(bytes, "m.gguf"), Contains("m.gguf") && Contains("not a GGUF file") && Contains("'GGML'"));
  }
  SECTION("version 1") {
    std::memcpy(bytes.data() + 4, le<std::uint32_t>(1).data(), 4);
    CHECK_THROWS_WITH(parse(bytes), Contains("unsupported GGUF version 1 (this reader reads 2 and 3"));
  }
  SECTION("unknown version") {
    std::memcpy(bytes.data() + 4, le<std::uint32_t>(7).data(), 4);
    CHECK_THROWS_WITH(parse(bytes), Contains("unsupported GGUF version 7 (this reader reads 2 and 3)"));
  }
  SECTION("big-endian file") {
    std::memcpy(bytes.data() + 4, le<std::uint32_t>(0x03000000u).data(), 4);
    CHECK_THROWS_WITH(parse(bytes), Contains("big-endian"));
  }
  SECTION("absurd tensor count") {
    std::memcpy(bytes.data() + 8, le<std::uint64_t>(1ull << 60).data(), 8);
    CHECK_THROWS_WITH(parse(bytes), Contains("tensor_count"));
  }
}

TEST_CASE("a file cut anywhere is an error, never a crash", "[gguf]") {
  const auto bytes = small_file().bytes();
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len));
    INFO("cut at " << len << " of " << bytes.size());
    CHECK_THROWS_AS(parse(cut), llm::Error);
  }
  CHECK_THROWS_WITH(parse(std::vector<std::uint8_t>(bytes.begin(), bytes.end() - 4), "cut.gguf"),
                    Contains("cut.gguf") && Contains("tensor 'b'") && Contains("runs past the end"));
}

TEST_CASE("tensor infos that do not fit are refused", "[gguf]") {
  SECTION("offset past the end") {
    GGUFWriter w;
    w.add_string("general.architecture", "llama");
    w.add_tensor("t", {32}, 0, std::vector<std::uint8_t>(128, 0));
    auto bytes = w.bytes();
    // header 24 bytes | key "general.architecture" (8+20) type (4) value (8+5) | name "t" (8+1) n_dims (4) dim (8) type
    // (4) | offset
    const std::size_t off_pos = 24 + (8 + 20 + 4 + 8 + 5) + (8 + 1) + 4 + 8 + 4;
    std::memcpy(bytes.data() + off_pos, le<std::uint64_t>(1 << 20).data(), 8);
    CHECK_THROWS_WITH(parse(bytes), Contains("tensor 't'") && Contains("runs past the end"));
  }
  SECTION("unsupported tensor type") {
    GGUFWriter w;
    w.add_tensor("blk.0.ffn_down.weight", {256}, 14, std::vector<std::uint8_t>(210, 0));
    CHECK_THROWS_WITH(parse(w.bytes()),
                      Contains("blk.0.ffn_down.weight") && Contains("Q6_K") && Contains("cannot read"));
  }
  SECTION("row not a multiple of the block") {
    GGUFWriter w;
    w.add_tensor("q", {48}, 8, std::vector<std::uint8_t>(68, 0));
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("row length 48") && Contains("Q8_0"));
  }
  SECTION("zero dimension") {
    GGUFWriter w;
    w.add_tensor("z", {0}, 0, {});
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("tensor 'z'") && Contains("dimension 0 is 0"));
  }
  SECTION("duplicate names and keys") {
    GGUFWriter w;
    w.add_f32_tensor("x", 1, 4, {1, 2, 3, 4});
    w.add_f32_tensor("x", 1, 4, {1, 2, 3, 4});
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("'x' appears twice"));
    GGUFWriter k;
    k.add_u32("same", 1);
    k.add_u32("same", 2);
    CHECK_THROWS_WITH(parse(k.bytes()), Contains("'same' appears twice"));
  }
  SECTION("bad alignment") {
    GGUFWriter w;
    w.add_u32("general.alignment", 24);
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("general.alignment is 24"));
  }
}

TEST_CASE("metadata that lies about its size is refused", "[gguf]") {
  SECTION("array longer than the file") {
    GGUFWriter w;
    std::vector<std::uint8_t> p = le<std::uint32_t>(6);
    for (auto b : le<std::uint64_t>(1ull << 40)) p.push_back(b);
    w.add_raw("big", 9, p);
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("'big'") && Contains("array length"));
  }
  SECTION("string longer than the file") {
    GGUFWriter w;
    w.add_raw("s", 8, le<std::uint64_t>(1ull << 50));
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("truncated") && Contains("'s'"));
  }
  SECTION("unknown value type") {
    GGUFWriter w;
    w.add_raw("odd", 13, {0, 0, 0, 0});
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("'odd'") && Contains("unknown value type 13"));
  }
  SECTION("bool that is not 0 or 1") {
    GGUFWriter w;
    w.add_raw("flag", 7, {2});
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("'flag'") && Contains("BOOL"));
  }
}

TEST_CASE("a file on disk: missing, empty, directory", "[gguf]") {
  CHECK_THROWS_WITH(GGUFFile("/nonexistent/model.gguf"),
                    Contains("/nonexistent/model.gguf") && Contains("cannot open"));
  const std::string empty = test::temp_path("empty.gguf");
  test::write_file(empty, {});
  CHECK_THROWS_WITH(GGUFFile(empty), Contains(empty) && Contains("truncated"));
  CHECK_THROWS_WITH(GGUFFile("/tmp"), Contains("not a regular file"));
  std::remove(empty.c_str());
}

namespace {
// Three F32 tensors laid out back to back: a [0, 256), b [256, 384), c [384, 416).
GGUFWriter three_tensors() {
  GGUFWriter w;
  w.add_f32_tensor("a", 2, 32, std::vector<float>(64, 1.0f));
  w.add_f32_tensor("b", 1, 32, std::vector<float>(32, 2.0f));
  w.add_f32_tensor("c", 1, 8, std::vector<float>(8, 3.0f));
  return w;
}
}  // namespace

TEST_CASE("tensors whose data overlap are refused, naming both and their ranges", "[gguf]") {
  SECTION("two at the same offset") {
    GGUFWriter w = three_tensors();
    w.set_offset("c", 256);  // c [256, 288) inside b [256, 384)
    CHECK_THROWS_WITH(parse(w.bytes(), "same.gguf"), Contains("same.gguf") && Contains("'c' (data bytes [256, 288))") &&
                                                         Contains("'b' (data bytes [256, 384))") &&
                                                         Contains("overlap"));
  }
  SECTION("all at offset 0") {
    GGUFWriter w = three_tensors();
    w.set_offset("b", 0);
    w.set_offset("c", 0);
    CHECK_THROWS_WITH(parse(w.bytes(), "zero.gguf"), Contains("zero.gguf") && Contains("'c' (data bytes [0, 32))") &&
                                                         Contains("'b' (data bytes [0, 128))") && Contains("overlap"));
  }
  SECTION("partial overlap: one starts before the other ends") {
    GGUFWriter w = three_tensors();
    w.set_offset("b", 224);  // b [224, 352) starts inside a [0, 256)
    CHECK_THROWS_WITH(parse(w.bytes(), "part.gguf"), Contains("part.gguf") && Contains("'a' (data bytes [0, 256))") &&
                                                         Contains("'b' (data bytes [224, 352))") &&
                                                         Contains("overlap"));
  }
  SECTION("any order and gaps are fine, and the data is read where the infos say") {
    GGUFWriter w = three_tensors();
    w.set_offset("a", 160);  // a [160, 416), b [0, 128), gap, c [128, 160)
    w.set_offset("b", 0);
    w.set_offset("c", 128);
    const auto bytes = w.bytes();
    GGUFFile f = parse(bytes);
    float x;
    std::memcpy(&x, f.tensor_data(*f.find_tensor("b")), 4);
    CHECK(x == 1.0f);  // b's info points at the first bytes of the section, where a's data was written
  }
  SECTION("a tensor that ends past the data section") {
    GGUFWriter w = three_tensors();
    w.set_offset("c", 416);  // the section holds 416 bytes
    CHECK_THROWS_WITH(parse(w.bytes(), "out.gguf"), Contains("out.gguf") && Contains("tensor 'c'") &&
                                                        Contains("32 bytes at data offset 416") &&
                                                        Contains("the data section holds 416 bytes"));
  }
}

TEST_CASE("the magic: damaged vs another format", "[gguf]") {
  auto bytes = small_file().bytes();
  for (const char* magic : {"GGUG", "FUGG", "gguf", "XGUF"}) {
    INFO(magic);
    std::memcpy(bytes.data(), magic, 4);
    CHECK_THROWS_WITH(parse(bytes, "m.gguf"),
                      Contains("m.gguf: damaged GGUF magic") && Contains("starts with '" + std::string(magic) + "'"));
  }
  bytes[0] = 0x7f;
  std::memcpy(bytes.data() + 1, "ELF", 3);
  CHECK_THROWS_WITH(parse(bytes, "m.gguf"), Contains("not a GGUF file: magic is '?ELF'"));
  CHECK(classify_gguf_magic(bytes.data(), 3) == GGUFMagic::kOther);  // too short to say
}

TEST_CASE("GGUF versions: 0, 1 and 4 are unsupported; only a byte-swapped 2 or 3 is big-endian", "[gguf]") {
  auto bytes = small_file().bytes();
  auto with_version = [&](std::uint32_t v) {
    std::memcpy(bytes.data() + 4, le<std::uint32_t>(v).data(), 4);
    return bytes;
  };
  for (std::uint32_t v : {0u, 1u, 4u, 0x00030000u, 0x01000000u}) {
    INFO("version " << v);
    try {
      parse(with_version(v), "v.gguf");
      FAIL("accepted");
    } catch (const llm::Error& e) {
      const std::string msg = e.what();
      CHECK_THAT(msg,
                 Contains("v.gguf: unsupported GGUF version " + std::to_string(v) + " (this reader reads 2 and 3"));
      CHECK_THAT(msg, !Contains("big-endian"));
    }
  }
  CHECK_THROWS_WITH(parse(with_version(0x02000000u)), Contains("version field reads 33554432") &&
                                                          Contains("version 2 byte-swapped") && Contains("big-endian"));
}

TEST_CASE("a metadata key of the wrong type is reported as a wrong type", "[gguf]") {
  GGUFWriter w;
  w.add_string("llama.context_length", "2048");
  w.add_u32("str.expected", 7);
  w.add_i32_array("ints", {1, 2});
  w.add_raw("big", 10, le<std::uint64_t>(~0ull));
  std::vector<std::uint8_t> u64s = le<std::uint32_t>(10);
  for (auto part : {le<std::uint64_t>(2), le<std::uint64_t>(5), le<std::uint64_t>((1ull << 32) + 1)})
    u64s.insert(u64s.end(), part.begin(), part.end());
  w.add_raw("ids", 9, u64s);
  w.add_string_array("names", {"x"});
  const auto bytes = w.bytes();
  GGUFFile f = parse(bytes, "t.gguf");
  CHECK_THROWS_WITH(f.get_int("llama.context_length"),
                    Contains("t.gguf: metadata key 'llama.context_length' has type STRING, expected an integer"));
  CHECK_THROWS_WITH(f.get_int("llama.context_length", 5), Contains("has type STRING"));
  CHECK_THROWS_WITH(f.get_string("str.expected"), Contains("key 'str.expected' has type UINT32, expected STRING"));
  CHECK_THROWS_WITH(f.get_string("ints"), Contains("key 'ints' has type ARRAY of INT32, expected STRING"));
  CHECK_THROWS_WITH(f.get_bool("str.expected", false), Contains("has type UINT32, expected BOOL"));
  CHECK_THROWS_WITH(f.get_float("llama.context_length", 0), Contains("has type STRING, expected FLOAT32"));
  CHECK_THROWS_WITH(f.get_string_array("ints"), Contains("has type ARRAY of INT32, expected ARRAY of STRING"));
  CHECK_THROWS_WITH(f.get_int_array("names"), Contains("has type ARRAY of STRING, expected ARRAY of INT32"));
  CHECK_THROWS_WITH(f.get_float_array("names"), Contains("key 'names' has type ARRAY of STRING"));
  // Values of the right type but beyond what the caller can hold say so, with the value.
  CHECK_THROWS_WITH(f.get_int("big"), Contains("key 'big' is 18446744073709551615, beyond the int64 range"));
  CHECK_THROWS_WITH(f.get_int_array("ids"), Contains("key 'ids' item 1 is 4294967297, outside the int32 range"));
}

TEST_CASE("header limits are ggml's, and every message says the limit", "[gguf]") {
  SECTION("a tensor name longer than ggml's 63 bytes") {
    GGUFWriter w;
    w.add_f32_tensor(std::string(63, 'n'), 1, 4, {1, 2, 3, 4});
    CHECK_NOTHROW(parse(w.bytes()));
    GGUFWriter l;
    l.add_f32_tensor(std::string(64, 'n'), 1, 4, {1, 2, 3, 4});
    CHECK_THROWS_WITH(parse(l.bytes(), "n.gguf"),
                      Contains("n.gguf: tensor info #0") && Contains("is 64 bytes long (ggml's limit is 63)"));
  }
  SECTION("n_dims above 4") {
    GGUFWriter w;
    w.add_tensor("five", {1, 1, 1, 1, 1}, 0, std::vector<std::uint8_t>(4, 0));
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("tensor 'five': n_dims is 5 (must be 1..4)"));
  }
  SECTION("dimensions whose product passes 2^40 elements") {
    GGUFWriter w;
    w.add_tensor("huge", {1ull << 20, 1ull << 21}, 0, {});
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("tensor 'huge': dimension 1 is 2097152") && Contains("2^40"));
  }
  SECTION("counts the file cannot hold") {
    auto bytes = small_file().bytes();
    std::memcpy(bytes.data() + 16, le<std::uint64_t>(1ull << 62).data(), 8);
    CHECK_THROWS_WITH(parse(bytes, "kv.gguf"),
                      Contains("kv.gguf: metadata_kv_count is 4611686018427387904") && Contains("at most"));
  }
  SECTION("general.alignment of the wrong type") {
    GGUFWriter w;
    w.add_string("general.alignment", "32");
    CHECK_THROWS_WITH(parse(w.bytes()), Contains("key 'general.alignment' has type STRING, expected UINT32"));
    GGUFWriter n;
    n.add_i32("general.alignment", -32);
    CHECK_THROWS_WITH(parse(n.bytes()), Contains("general.alignment is -32: must be a power of two"));
  }
}

TEST_CASE("metadata arrays are capped in all, before anything is allocated", "[gguf]") {
  // 2^24 + 1 one-byte items: the bytes are there, but parsed they would take ~100 bytes each.
  GGUFWriter w;
  std::vector<std::uint8_t> p = le<std::uint32_t>(0);
  for (auto b : le<std::uint64_t>((1ull << 24) + 1)) p.push_back(b);
  p.resize(p.size() + (1u << 24) + 1, 7);
  w.add_raw("huge", 9, p);
  CHECK_THROWS_WITH(parse(w.bytes(), "arr.gguf"), Contains("arr.gguf: metadata 'huge': array length 16777217") &&
                                                      Contains("limit of 16777216 metadata array items"));
}
