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
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

MODELS = {"target": T.F16, "draft": T.F32}


def export(name, mat_type):
    z = np.load(f"build/tiny_export/{name}.npz", allow_pickle=True)
    c = json.loads(str(z["config"]))
    path = f"datasets/models/tiny-{name}.gguf"
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_name(f"tiny-{name}")
    wr.add_context_length(c["ctx"])
    wr.add_embedding_length(c["dim"])
    wr.add_block_count(c["n_layers"])
    wr.add_feed_forward_length(c["hidden"])
    wr.add_head_count(c["n_heads"])
    wr.add_head_count_kv(c["n_kv_heads"])
    wr.add_rope_freq_base(c["theta"])
    wr.add_layer_norm_rms_eps(c["eps"])
    wr.add_rope_dimension_count(c["dim"] // c["n_heads"])
    wr.add_vocab_size(int(z["vocab_size"]))
    wr.add_tokenizer_model("llama")
    wr.add_token_list([str(t) for t in z["tokens"]])
    wr.add_token_scores([float(s) for s in z["scores"]])
    wr.add_token_types([int(t) for t in z["types"]])
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    wr.add_unk_token_id(0)
    wr.add_add_bos_token(True)
    wr.add_add_eos_token(False)
    wr.add_add_space_prefix(True)
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
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    print(path, Path(path).stat().st_size, "bytes")


if __name__ == "__main__":
    for name, qt in MODELS.items():
        export(name, qt)
