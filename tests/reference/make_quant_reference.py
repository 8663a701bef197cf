#!/usr/bin/env python3
"""Reference values for kernels/cpu/fp8.* and kernels/cpu/quantize.* from independent
implementations: ml_dtypes (float8_e4m3fn, float8_e5m2; Google's, used by JAX) and gguf-py
(gguf.quants: the llama.cpp project's numpy quantizers). Writes datasets/test/quant_reference.json,
which tests/kernels/test_quantize.cpp reads.

    pip install ml_dtypes gguf numpy    # from PyPI
    python3 tests/reference/make_quant_reference.py

fp8: every code's value, and encodings of floats chosen to probe rounding: every code's value,
the midpoints between neighbouring codes (ties) and one float32 ulp either side of them,
subnormals, and log-uniform random values, all within the finite range (ml_dtypes turns an
overflow into NaN for E4M3, where we saturate; the test checks saturation on its own).
blocks: seeded rows (normal, heavy-tailed, constant, zero, one spike, negative extremes)
quantized by gguf-py to Q8_0, Q4_0, Q4_1 (bytes as hex), and BF16.
"""
import json
from pathlib import Path

import ml_dtypes
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

OUT = Path(__file__).resolve().parents[2] / "datasets" / "test" / "quant_reference.json"


def fp8_section(dtype, finite_max):
    codes = np.arange(256, dtype=np.uint8)
    values = codes.view(dtype).astype(np.float32)
    decode = [None if np.isnan(v) else (float(v) if np.isfinite(v) else ("inf" if v > 0 else "-inf"))
              for v in values]
    pos = np.sort(np.unique(values[np.isfinite(values) & (values >= 0)]))
    mids = (pos[:-1].astype(np.float64) + pos[1:]) / 2
    probes = [pos, mids.astype(np.float32)]
    m32 = mids.astype(np.float32)
    probes += [np.nextafter(m32, np.float32(np.inf)), np.nextafter(m32, np.float32(0))]
    rng = np.random.default_rng(5)
    probes.append((np.exp(rng.uniform(np.log(float(pos[1]) / 4), np.log(finite_max), 2000))).astype(np.float32))
    x = np.concatenate(probes).astype(np.float32)
    x = x[np.abs(x) <= finite_max]
    x = np.concatenate([x, -x])
    enc = x.astype(dtype).view(np.uint8)
    return {"decode": decode,
            "encode": [[int(b), int(c)] for b, c in zip(x.view(np.uint32), enc)]}


def block_rows():
    rng = np.random.default_rng(11)
    rows = [rng.standard_normal(256), rng.standard_t(2, 256) * 3, np.full(64, 0.37), np.zeros(64),
            np.where(np.arange(64) == 17, 50.0, rng.standard_normal(64) * 0.01),
            -np.abs(rng.standard_normal(64)), rng.uniform(-1e-3, 1e-3, 96), rng.standard_normal(128) * 1e4]
    return [r.astype(np.float32) for r in rows]


def main():
    out = {"fp8": {"E4M3": fp8_section(ml_dtypes.float8_e4m3fn, 448.0),
                   "E5M2": fp8_section(ml_dtypes.float8_e5m2, 57344.0)},
           "blocks": []}
    for r in block_rows():
        entry = {"x": [int(b) for b in r.view(np.uint32)]}
        for name, t in (("Q8_0", T.Q8_0), ("Q4_0", T.Q4_0), ("Q4_1", T.Q4_1), ("BF16", T.BF16)):
            entry[name] = quantize(r.reshape(1, -1), t).tobytes().hex()
        out["blocks"].append(entry)
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): "
          f"{sum(len(v['encode']) for v in out['fp8'].values())} fp8 encodings, {len(out['blocks'])} rows")


if __name__ == "__main__":
    main()
