#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_gguf (small valid GGUF files the fuzzer mutates).

    python3 tests/fuzz/make_seeds.py      (from the repo root; needs the `gguf` and `numpy` packages)
"""
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize

out = Path("tests/fuzz/seeds")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# 1. A complete tiny Llama with a SentencePiece vocabulary and one quantized matrix.
dim, hidden, vocab = 32, 32, 12
w = GGUFWriter(str(out / "llama_tiny.gguf"), "llama")
w.add_block_count(1)
w.add_context_length(8)
w.add_embedding_length(dim)
w.add_feed_forward_length(hidden)
w.add_head_count(2)
w.add_head_count_kv(1)
w.add_layer_norm_rms_eps(1e-5)
w.add_tokenizer_model("llama")
pieces = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "ab", "<0x41>", "<|im_start|>", "c", "\u2581ab"]
w.add_token_list(pieces)
w.add_token_scores([-float(i) for i in range(vocab)])
w.add_token_types([2, 3, 3, 1, 1, 1, 1, 1, 6, 4, 1, 1])
f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
w.add_tensor("token_embd.weight", f32(vocab, dim))
w.add_tensor("output_norm.weight", f32(dim))
p = "blk.0."
w.add_tensor(p + "attn_norm.weight", f32(dim))
w.add_tensor(p + "attn_q.weight", quantize(f32(dim, dim), GGMLQuantizationType.Q8_0), raw_dtype=GGMLQuantizationType.Q8_0)
w.add_tensor(p + "attn_k.weight", f32(dim // 2, dim).astype(np.float16))
w.add_tensor(p + "attn_v.weight", quantize(f32(dim // 2, dim), GGMLQuantizationType.Q4_0), raw_dtype=GGMLQuantizationType.Q4_0)
w.add_tensor(p + "attn_output.weight", quantize(f32(dim, dim), GGMLQuantizationType.Q4_1), raw_dtype=GGMLQuantizationType.Q4_1)
w.add_tensor(p + "ffn_norm.weight", f32(dim))
w.add_tensor(p + "ffn_gate.weight", f32(hidden, dim))
w.add_tensor(p + "ffn_up.weight", f32(hidden, dim))
w.add_tensor(p + "ffn_down.weight", f32(dim, hidden))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# 2. A byte-level BPE tokenizer only (no tensors), with merges and special tokens.
t = GGUFWriter(str(out / "bpe_tokenizer.gguf"), "llama")
t.add_tokenizer_model("gpt2")
t.add_tokenizer_pre("smollm")
toks = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "H", "e", "l", "o", "\u0120", "w", "r", "d", "1", "2", "He", "ll", "llo", "Hello", "\u0120w"]
t.add_token_list(toks)
t.add_token_types([3, 3, 3] + [1] * (len(toks) - 3))
t.add_token_merges(["H e", "l l", "ll o", "He llo", "\u0120 w"])
t.add_bos_token_id(1)
t.add_eos_token_id(2)
t.write_header_to_file()
t.write_kv_data_to_file()
t.write_tensors_to_file()
t.close()
for f in sorted(out.iterdir()):
    print(f, f.stat().st_size, "bytes")
