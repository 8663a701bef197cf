#!/usr/bin/env python3
"""Golden dequantized rows from gguf-py (the llama.cpp project's reader and numpy dequantizers),
for tests/kernels/test_quantize.cpp [dequantize-gguf-py]: our reader's dequantization of a stored
GGUF must give exactly these floats, bit for bit.

    pip install gguf numpy    # from PyPI (tests/reference/requirements.txt pins the versions)
    python3 tests/reference/make_dequant_reference.py [SMOLLM2.gguf]

Writes datasets/test/dequant_reference.json:
  "tiny_random_quant": every tensor of datasets/test/tiny_random_quant.gguf (Q8_0, Q4_0, Q4_1,
      BF16, F16 and F32 tensors), its first and last row;
  "smollm2": a few tensors of SmolLM2-135M-Instruct.Q4_1.gguf (the Q8_0 embedding, Q4_1 matrices
      of the first and last layer, an F32 norm): their first row, and the embedding's last row.
      The file is not committed (scripts/fetch_models gets it, checksum checked); the test skips
      this part without it.
Each row: {"tensor", "type", "row", "cols", "bits": hex of the little-endian float32 values}.
"""
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "datasets" / "test" / "dequant_reference.json"
SMOLLM2 = ROOT / "datasets" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ROWS = {"token_embd.weight": [0, -1], "blk.0.attn_q.weight": [0], "blk.0.ffn_down.weight": [0],
                "blk.29.attn_v.weight": [0], "blk.29.ffn_gate.weight": [0], "output_norm.weight": [0]}


def rows_of(path, wanted=None):
    out = []
    for t in GGUFReader(path).tensors:
        if wanted is not None and t.name not in wanted:
            continue
        cols = int(t.shape[0])  # ggml's ne[0]: the row length
        values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1, cols)
        for r in sorted({r % values.shape[0] for r in (wanted[t.name] if wanted is not None else [0, -1])}):
            out.append({"tensor": t.name, "type": t.tensor_type.name, "row": int(r), "cols": cols,
                        "bits": values[r].astype("<f4").tobytes().hex()})
    if wanted is not None and len({o["tensor"] for o in out}) != len(wanted):
        sys.exit(f"{path}: missing some of {sorted(wanted)}")
    return out


def main():
    smollm2 = Path(sys.argv[1]) if len(sys.argv) > 1 else SMOLLM2
    out = {"generator": "tests/reference/make_dequant_reference.py (gguf-py dequantize)",
           "tiny_random_quant": rows_of(ROOT / "datasets" / "test" / "tiny_random_quant.gguf"),
           "smollm2": rows_of(smollm2, SMOLLM2_ROWS)}
    OUT.write_text(json.dumps(out, indent=0) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(out['tiny_random_quant'])} + {len(out['smollm2'])} rows")


if __name__ == "__main__":
    main()
