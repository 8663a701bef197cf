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
