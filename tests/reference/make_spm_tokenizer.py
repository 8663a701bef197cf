#!/usr/bin/env python3
"""Train a tiny SentencePiece BPE vocabulary and export it for the C++ tests.

Outputs (run from the repo root: python3 tests/reference/make_spm_tokenizer.py):
  datasets/tokenizers/spm_tiny.model          sentencepiece ModelProto
  datasets/tokenizers/spm_tiny_tokenizer.bin  llama2.c tokenizer.bin format
  datasets/tokenizers/golden_spm_tiny.json    [{"text", "ids"}] from sp.encode
"""
import glob
import io
import json
import random
import struct
from pathlib import Path

import sentencepiece as spm

OUT = Path("datasets/tokenizers")
VOCAB_SIZE = 512


def build_corpus() -> list[str]:
    # Licence texts are present on every Debian machine, so the corpus is
    # reproducible without downloads. Only a fixed, sorted subset is used so
    # the result does not depend on what else happens to be installed.
    lines = []
    for name in ["Apache-2.0", "BSD", "GPL-3", "LGPL-2.1", "MPL-2.0"]:
        path = f"/usr/share/common-licenses/{name}"
        with open(path, encoding="utf-8") as f:
            lines += [l.rstrip("\n") for l in f if l.strip()]
    # Accented words, digits and chat markers should appear in the corpus so
    # some of them become real pieces; CJK / emoji are deliberately rare so they
    # end up as <0xXX> byte-fallback tokens.
    rng = random.Random(1234)
    words = ["café", "naïve", "résumé", "façade", "über", "jalapeño", "crème",
             "brûlée", "the", "model", "token", "hello", "world", "user",
             "assistant", "2024", "3.14", "answer"]
    for _ in range(300):
        lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))))
    for _ in range(20):
        lines.append(f"<|im_start|>user\n{rng.choice(words)}<|im_end|>")
    lines += ["你好", "世界", "🙂 smile", "数字 12345"]
    return lines


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(build_corpus()),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        user_defined_symbols=["<|im_start|>", "<|im_end|>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        character_coverage=1.0,
        seed_sentencepiece_size=100000,
        num_threads=1,
        shuffle_input_sentence=False,  # with input_sentence_size=0 no sampling happens anyway
        minloglevel=2,
    )
    (OUT / "spm_tiny.model").write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    assert sp.get_piece_size() == VOCAB_SIZE

    # llama2.c tokenizer.bin: same transformations as llama2.c's tokenizer.py.
    tokens, scores = [], []
    for i in range(VOCAB_SIZE):
        t = sp.id_to_piece(i)
        if i == sp.bos_id():
            t = "\n<s>\n"
        elif i == sp.eos_id():
            t = "\n</s>\n"
        t = t.replace("\u2581", " ")
        tokens.append(t.encode("utf-8"))
        scores.append(sp.get_score(i))
    with open(OUT / "spm_tiny_tokenizer.bin", "wb") as f:
        f.write(struct.pack("<i", max(len(t) for t in tokens)))
        for b, s in zip(tokens, scores):
            f.write(struct.pack("<fi", s, len(b)))
            f.write(b)

    texts = [
        "The licensor grants you a copy of the software.",
        " leading space",
        "trailing spaces   ",
        "multiple   spaces  between words",
        "café naïve résumé",
        "你好，世界",
        "🙂👍🏽",
        "12345",
        "line one\nline two",
        "<|im_start|>user\nhi<|im_end|>",
        "zyzzyva quokka",
        "MixedCASE and punctuation!?",
    ]
    golden = [{"text": t, "ids": sp.encode(t)} for t in texts]
    with open(OUT / "golden_spm_tiny.json", "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for g in golden:
        print(repr(g["text"]), [sp.id_to_piece(i) for i in g["ids"]])


if __name__ == "__main__":
    main()
