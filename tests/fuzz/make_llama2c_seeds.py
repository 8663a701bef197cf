#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_llama2c: tiny llama2.c checkpoints, each paired with a tokenizer.bin.

    python3 tests/fuzz/make_llama2c_seeds.py      (from the repo root; needs numpy)

A seed is what fuzz_llama2c reads: u32 n (little-endian) | n bytes of model.bin | tokenizer.bin.
The first seed uses the committed datasets/tokenizers/spm_tiny_tokenizer.bin (512 tokens); the
second an unshared classifier (negative vocab_size) with GQA and a small made-up vocabulary.
"""
import struct
from pathlib import Path

import numpy as np

out = Path("tests/fuzz/seeds_llama2c")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)


def checkpoint(dim, hidden, layers, heads, kv_heads, vocab, seq_len, tied):
    """The legacy (version 0) llama2.c export: 7 int32 then fp32 weights in run.c's order."""
    head = dim // heads
    kv_dim = kv_heads * head
    shapes = [(vocab, dim), (layers, dim), (layers, dim, dim), (layers, kv_dim, dim), (layers, kv_dim, dim),
              (layers, dim, dim), (layers, dim), (layers, hidden, dim), (layers, dim, hidden), (layers, hidden, dim),
              (dim,), (seq_len, head // 2), (seq_len, head // 2)]
    if not tied:
        shapes.append((vocab, dim))
    body = b"".join((0.3 * rng.standard_normal(s)).astype("<f4").tobytes() for s in shapes)
    return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if tied else -vocab, seq_len) + body


def tokenizer(pieces):
    """tokenizer.bin: int32 max_token_length, then per token float score, int32 length, bytes."""
    data = [p.encode() for p in pieces]
    return struct.pack("<i", max(len(d) for d in data)) + b"".join(
        struct.pack("<fi", -float(i), len(d)) + d for i, d in enumerate(data))


def seed(name, model, tok):
    (out / name).write_bytes(struct.pack("<I", len(model)) + model + tok)


spm = Path("datasets/tokenizers/spm_tiny_tokenizer.bin").read_bytes()
seed("tied_spm_tiny.seed", checkpoint(8, 16, 1, 2, 1, 512, 4, True), spm)
pieces = ["<unk>", "<s>", "</s>", "<0x0A>", "<0x41>", "\u2581", "a", "b", "\u2581a", "ab", "c", "\u2581ab"]
seed("untied_gqa.seed", checkpoint(12, 20, 2, 3, 1, len(pieces), 6, False), tokenizer(pieces))
for f in sorted(out.iterdir()):
    print(f, f.stat().st_size, "bytes")
