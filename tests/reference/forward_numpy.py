#!/usr/bin/env python3
"""Independent float64 numpy Llama forward pass over a GGUF file.

Regenerate the golden logits of the tiny test models (repo root):
    python3 tests/reference/forward_numpy.py
Inspect any GGUF (prints the top-5 logits per position):
    python3 tests/reference/forward_numpy.py MODEL.gguf --tokens 1,504,2 [--positions last]
Record the real model's last-position logits for the optional C++ check (top 256 only):
    python3 tests/reference/forward_numpy.py datasets/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --tokens 1,4093,198,504,3575,282,4649,314 --positions last --golden-out datasets/test/golden_smollm2_last.json
"""
import argparse
import json
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

GOLDEN_MODELS = ["datasets/test/tiny_random.gguf", "datasets/test/tiny_random_quant.gguf"]


class Model:
    def __init__(self, path):
        self.r = GGUFReader(path)
        self.tensors = {t.name: t for t in self.r.tensors}
        arch = self.meta("general.architecture")
        g = lambda k: self.meta(f"{arch}.{k}")
        self.dim = g("embedding_length")
        self.n_layers = g("block_count")
        self.n_heads = g("attention.head_count")
        self.n_kv_heads = g("attention.head_count_kv")
        self.eps = float(g("attention.layer_norm_rms_epsilon"))
        self.theta = float(g("rope.freq_base"))
        self.head_dim = self.dim // self.n_heads
        n_rot = self.meta(f"{arch}.rope.dimension_count", self.head_dim)
        assert n_rot == self.head_dim, "partial RoPE is not part of the reference math"

    def meta(self, key, default=None):
        f = self.r.fields.get(key)
        return default if f is None else f.contents()

    def w(self, name):
        # Dequantize on demand so a 30-layer model never holds all float64 weights.
        t = self.tensors[name]
        return dequantize(t.data, t.tensor_type).astype(np.float64)


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, theta):
    """Interleaved (GGUF/llama.cpp 'normal') RoPE: x is [T, heads, head_dim]."""
    T, _, hd = x.shape
    inv_freq = theta ** (-np.arange(0, hd, 2) / hd)          # [hd/2]
    ang = np.arange(T)[:, None] * inv_freq[None, :]           # [T, hd/2]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(m, tokens, positions="all"):
    """Teacher-forced logits [T, vocab] (or [1, vocab] for positions='last')."""
    T, hd = len(tokens), m.head_dim
    x = m.w("token_embd.weight")[tokens]
    group = m.n_heads // m.n_kv_heads
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(m.n_layers):
        p = f"blk.{l}."
        h = rmsnorm(x, m.w(p + "attn_norm.weight"), m.eps)
        q = rope((h @ m.w(p + "attn_q.weight").T).reshape(T, m.n_heads, hd), m.theta)
        k = rope((h @ m.w(p + "attn_k.weight").T).reshape(T, m.n_kv_heads, hd), m.theta)
        v = (h @ m.w(p + "attn_v.weight").T).reshape(T, m.n_kv_heads, hd)
        att = np.empty((T, m.n_heads, hd))
        for head in range(m.n_heads):
            kv = head // group
            s = q[:, head] @ k[:, kv].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            att[:, head] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kv]
        x = x + att.reshape(T, -1) @ m.w(p + "attn_output.weight").T
        h = rmsnorm(x, m.w(p + "ffn_norm.weight"), m.eps)
        ff = silu(h @ m.w(p + "ffn_gate.weight").T) * (h @ m.w(p + "ffn_up.weight").T)
        x = x + ff @ m.w(p + "ffn_down.weight").T
    if positions == "last":
        x = x[-1:]
    out_name = "output.weight" if "output.weight" in m.tensors else "token_embd.weight"
    return rmsnorm(x, m.w("output_norm.weight"), m.eps) @ m.w(out_name).T


def write_golden(path, seed):
    m = Model(path)
    vocab = m.tensors["token_embd.weight"].shape[1]  # ggml order: [dim, vocab]
    rng = np.random.default_rng(seed)
    seqs = []
    for n in (1, 7, 20):
        tokens = [int(t) for t in rng.integers(0, vocab, size=n)]
        logits = forward(m, tokens)
        seqs.append({"tokens": tokens, "logits": [[float(v) for v in row] for row in logits]})
    out = Path("datasets/test") / f"golden_{Path(path).stem}.json"
    doc = {"model": Path(path).name, "generator": "tests/reference/forward_numpy.py", "sequences": seqs}
    # json.dump prints floats with repr(), i.e. shortest round-tripping float64.
    out.write_text(json.dumps(doc) + "\n")
    print(out, out.stat().st_size, "bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="GGUF path; omit to regenerate the golden files")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--positions", choices=["all", "last"], default="all")
    ap.add_argument("--golden-out", help="write the last position's top-256 logits (and the row's max |logit|) as JSON")
    a = ap.parse_args()
    if a.model is None:
        for seed, path in enumerate(GOLDEN_MODELS):
            write_golden(path, seed=100 + seed)
        return
    tokens = [int(t) for t in a.tokens.split(",")]
    m = Model(a.model)
    logits = forward(m, tokens, a.positions)
    if a.golden_out:
        row = logits[-1]
        top = np.argsort(-row, kind="stable")[:256]
        doc = {"model": Path(a.model).name, "generator": "tests/reference/forward_numpy.py", "tokens": tokens,
               "position": len(tokens) - 1, "max_abs_logit": float(np.abs(row).max()),
               "top": [[int(t), float(row[t])] for t in top]}
        Path(a.golden_out).write_text(json.dumps(doc) + "\n")
        print(a.golden_out, Path(a.golden_out).stat().st_size, "bytes")
    first = len(tokens) - len(logits)
    for i, row in enumerate(logits):
        top = np.argsort(-row, kind="stable")[:5]
        print(f"pos {first + i} (token {tokens[first + i]}):",
              " ".join(f"{t}:{row[t]:.6f}" for t in top))


if __name__ == "__main__":
    main()
