// libFuzzer entry point for both tokenizers (built twice: fuzz_tokenizer_bpe with
// LLM_FUZZ_BPE=1, fuzz_tokenizer_spm with LLM_FUZZ_BPE=0). The input's first bytes build an
// arbitrary vocabulary (fuzz_tokenizer_input.h), the rest is encoded and decoded. Either the
// vocabulary is refused with llm::Error, or: every id is in range, decode never fails, the
// limited encode_prompt keeps its contract, and on a vocabulary where it must hold (every byte
// has its token, only ordinary pieces, valid UTF-8 text) decoding gives the text back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "common/error.h"
#include "common/tokenizer_bpe.h"
#include "common/tokenizer_spm.h"
#include "tests/fuzz/fuzz_tokenizer_input.h"

#ifndef LLM_FUZZ_BPE
#error "build with -DLLM_FUZZ_BPE=1 (byte-level BPE) or 0 (SentencePiece)"
#endif

namespace {
constexpr bool kBpe = LLM_FUZZ_BPE != 0;

void require(bool ok) {
  if (!ok) std::abort();  // libFuzzer reports the input
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto in = llm::fuzz::parse_tokenizer_input(std::string_view(reinterpret_cast<const char*>(data), size), kBpe);
  std::unique_ptr<llm::Tokenizer> tok;
  try {
    if (kBpe)
      tok = std::make_unique<llm::BpeTokenizer>(in.vocab);
    else
      tok = std::make_unique<llm::SpmTokenizer>(in.vocab);
  } catch (const llm::Error&) {
    return 0;  // a refused vocabulary is a correct answer
  }
  const auto ids = tok->encode(in.text);
  for (int id : ids) require(id >= 0 && id < tok->vocab_size());
  const std::string text = tok->decode(ids);

  const auto full = tok->encode_prompt(in.text);
  const auto limited = tok->encode_prompt(in.text, in.limit);
  if (full.size() <= in.limit)
    require(limited == full);
  else
    require(limited.size() == in.limit + 1);

  // Round trip where it must hold: all 256 byte tokens, no special/control/unknown pieces that
  // decode to something else, valid UTF-8 (decode replaces invalid bytes).
  const bool valid_utf8 = llm::sanitize_utf8(in.text) == in.text;
  const bool plain_vocab = (data[0] & llm::fuzz::kByteTokens) && in.only_plain_tokens;
  // SentencePiece: no U+2581 of its own in the text (it stands for a space), no '<' (merges could
  // then build a <0xNN> or <unk> piece, which decode to something else), no BOS id (the token after
  // BOS loses its dummy-prefix space), and a "▁" token (without one, a space falls back to the
  // bytes of U+2581 and decodes as that, as in llama.cpp).
  const bool spm_plain =
      kBpe || (in.text.find("\xE2\x96\x81") == std::string::npos && in.text.find('<') == std::string::npos &&
               in.vocab.bos_id < 0 && tok->find("\xE2\x96\x81") >= 0);
  if (plain_vocab && valid_utf8 && spm_plain) require(text == in.text);
  return 0;
}
