#!/usr/bin/env python3
"""Write the trained tiny models (build/tiny_export/*.npz from scripts/train_tiny.py) as GGUF.

Run from the repo root with a Python that has `gguf` (the pyenv python3; see tests/reference):
    python3 scripts/export_tiny.py
Writes datasets/models/tiny-target.gguf (fp16 matrices, fp32 norms) and
datasets/models/tiny-draft.gguf (fp32). Keys as tests/reference/make_tiny_models.py writes
them: general.architecture llama, llama.*, tokenizer.ggml.* (model "llama", tokens, scores,
token_type, bos 1 / eos 2 / unk 0, add_bos_token true). The classifier is tied: no output.weight.
"""
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reference"))
import llama_gguf  # noqa: E402  (shared GGUF key writing)

MODELS = {"target": T.F16, "draft": T.F32}


def export(name, mat_type):
    z = np.load(f"build/tiny_export/{name}.npz", allow_pickle=True)
    c = json.loads(str(z["config"]))
    path = f"datasets/models/tiny-{name}.gguf"
    assert int(z["vocab_size"]) == len(z["tokens"])
    wr = llama_gguf.start(path, f"tiny-{name}", c, z["tokens"], z["scores"], z["types"])
    skip = {"config", "vocab_size", "tokens", "scores", "types"}
    for key in z.files:
        if key in skip:
            continue
        arr = z[key].astype(np.float32)
        qt = mat_type if arr.ndim == 2 else T.F32
        if qt == T.F16:
            half = arr.astype(np.float16)
            assert np.array_equal(half.astype(np.float32), arr), f"{key}: not already fp16-rounded"
            wr.add_tensor(key, half, raw_dtype=T.F16)
        else:
            wr.add_tensor(key, arr, raw_dtype=T.F32)
    llama_gguf.finish(wr, path)

if __name__ == "__main__":
    for name, qt in MODELS.items():
        export(name, qt)
