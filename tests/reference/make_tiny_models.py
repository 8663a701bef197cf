#!/usr/bin/env python3
"""Write two tiny random-weight Llama GGUF files for the C++ tests.

Run from the repo root (after make_spm_tokenizer.py):
    python3 tests/reference/make_tiny_models.py
Outputs datasets/test/tiny_random.gguf and datasets/test/tiny_random_quant.gguf.
"""
from pathlib import Path

import gguf
import numpy as np
import sentencepiece as spm

import llama_gguf  # tests/reference/llama_gguf.py: shared GGUF key writing
from gguf import GGMLQuantizationType as T

SPM_MODEL = "datasets/tokenizers/spm_tiny.model"
USER_DEFINED = {"<|im_start|>", "<|im_end|>"}

# (name, config, per-tensor type chooser). Both share the 512-piece SPM vocab.
TINY = dict(vocab=512, dim=36, n_layers=2, n_heads=6, n_kv_heads=2, hidden=92,
            ctx=64, theta=10000.0, eps=1e-5, tied=True, seed=1)
TINY_QUANT = dict(vocab=512, dim=64, n_layers=2, n_heads=4, n_kv_heads=1, hidden=96,
                  ctx=64, theta=500000.0, eps=1e-6, tied=False, seed=2)

# Every matrix type the engine must support appears at least once; the token
# embedding is Q8_0 as in SmolLM2. Norm vectors are always F32.
QUANT_TYPES = {
    "token_embd": T.Q8_0, "output": T.F16,
    "blk.0.attn_q": T.Q4_0, "blk.0.attn_k": T.Q4_1, "blk.0.attn_v": T.Q8_0,
    "blk.0.attn_output": T.BF16, "blk.0.ffn_gate": T.F16, "blk.0.ffn_up": T.Q4_0,
    "blk.0.ffn_down": T.Q4_1,
    "blk.1.attn_q": T.Q8_0, "blk.1.attn_k": T.F16, "blk.1.attn_v": T.BF16,
    "blk.1.attn_output": T.Q4_1, "blk.1.ffn_gate": T.Q4_0, "blk.1.ffn_up": T.Q8_0,
    "blk.1.ffn_down": T.F32,
}


def spm_vocab():
    sp = spm.SentencePieceProcessor(model_file=SPM_MODEL)
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        if sp.is_unknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            t = gguf.TokenType.CONTROL
        elif sp.is_byte(i):
            t = gguf.TokenType.BYTE
        elif piece in USER_DEFINED:
            t = gguf.TokenType.USER_DEFINED
        else:
            t = gguf.TokenType.NORMAL
        tokens.append(piece)
        scores.append(sp.get_score(i))
        types.append(int(t))
    return tokens, scores, types


def random_weights(c):
    """Tensors in llama.cpp's numpy layout: matrices are [out, in]."""
    rng = np.random.default_rng(c["seed"])
    dim, hd = c["dim"], c["dim"] // c["n_heads"]
    kv_dim = hd * c["n_kv_heads"]

    # 1/sqrt(fan_in) keeps every layer's contribution the same order as the
    # residual stream, so a bug in any block visibly changes the logits.
    def mat(out, inp):
        return (rng.standard_normal((out, inp)) / np.sqrt(inp)).astype(np.float32)

    # Norm weights away from 1 so forgetting to multiply by them is detectable.
    def norm():
        return (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    w = {"token_embd": (0.5 * rng.standard_normal((c["vocab"], dim))).astype(np.float32)}
    for l in range(c["n_layers"]):
        p = f"blk.{l}."
        w[p + "attn_norm"] = norm()
        w[p + "attn_q"] = mat(dim, dim)
        w[p + "attn_k"] = mat(kv_dim, dim)
        w[p + "attn_v"] = mat(kv_dim, dim)
        w[p + "attn_output"] = mat(dim, dim)
        w[p + "ffn_norm"] = norm()
        w[p + "ffn_gate"] = mat(c["hidden"], dim)
        w[p + "ffn_up"] = mat(c["hidden"], dim)
        w[p + "ffn_down"] = mat(dim, c["hidden"])
    w["output_norm"] = norm()
    if not c["tied"]:
        w["output"] = (0.5 * rng.standard_normal((c["vocab"], dim))).astype(np.float32)
    return w


def write(path, c, types):
    tokens, scores, ttypes = spm_vocab()
    assert len(tokens) == c["vocab"]
    hd = c["dim"] // c["n_heads"]
    wr = llama_gguf.start(path, Path(path).stem, c, tokens, scores, ttypes)
    for name, arr in random_weights(c).items():
        qt = types.get(name, T.F32) if arr.ndim == 2 else T.F32
        data = gguf.quants.quantize(arr, qt)
        wr.add_tensor(name + ".weight", data, raw_dtype=qt)
    llama_gguf.finish(wr, path)

if __name__ == "__main__":
    Path("datasets/test").mkdir(parents=True, exist_ok=True)
    write("datasets/test/tiny_random.gguf", TINY, {})
    write("datasets/test/tiny_random_quant.gguf", TINY_QUANT, QUANT_TYPES)
