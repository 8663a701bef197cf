#!/usr/bin/env python3
"""The quantizer's output read by gguf-py (the llama.cpp project's Python GGUF package, PyPI `gguf`),
an implementation independent of ours:

    check_quantized_gguf.py ORIGINAL.gguf CHECK_DIR

CHECK_DIR holds, for each --type T, what tests/stages/test_quantize_tool.cpp ([quantize-tool]) wrote:
tiny-target.T.gguf (the quantize tool's output) and tiny-target.T.gguf.values.f32 (every tensor's
values as our reader dequantizes them, in file order, little-endian fp32). For each file this checks:
  - gguf-py parses it; every metadata field of ORIGINAL is there with the same type and value, in
    the same order; general.file_type is llama.cpp's LLAMA_FTYPE for T;
  - tensor names, shapes and order are ORIGINAL's; 2-D tensors have type T, 1-D ones F32;
  - gguf-py's dequantization of every tensor equals ours bit for bit;
  - gguf-py's own quantizer (gguf.quants.quantize) on ORIGINAL's values gives the file's bytes.
It prints each type's relative RMS error against the original weights. Exit 77 (ctest: skipped)
when gguf or numpy cannot be imported.
"""
import sys
from pathlib import Path

# With --venv DIR (as ctest runs it), a missing gguf/numpy is installed into that venv from PyPI
# (the versions of tests/reference/requirements.txt) and the check re-runs there.
if len(sys.argv) == 5 and sys.argv[3] == "--venv":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "helpers"))
    from pypi_venv import ensure_packages
    ensure_packages(sys.argv[4], ["numpy", "gguf"], ["gguf==0.19.0", "numpy"])
    del sys.argv[3:]

try:
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf import GGUFReader
    from gguf.quants import dequantize, quantize
    from gguf.gguf_reader import ReaderField
except ImportError as e:  # not installed: the check cannot run here
    print(f"skipped: {e} (pip install gguf numpy)")
    sys.exit(77)
if not hasattr(ReaderField, "contents"):
    print("skipped: this gguf is older than ReaderField.contents() (pip install gguf==0.19.0: tests/reference/requirements.txt)")
    sys.exit(77)

# --type -> (tensor type of the 2-D tensors, llama.cpp's LLAMA_FTYPE)
TYPES = {
    "q8_0": (T.Q8_0, 7),
    "q4_0": (T.Q4_0, 2),
    "q4_1": (T.Q4_1, 3),
    "f16": (T.F16, 1),
    "bf16": (T.BF16, 32),
    "f32": (T.F32, 0),
}


def fields(reader):
    """(name, types, contents) of every metadata field, in file order, without the header's."""
    return [(name, f.types, f.contents()) for name, f in reader.fields.items() if not name.startswith("GGUF.")]


def values(tensor):
    return np.ascontiguousarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).ravel()


def raw_bytes(tensor):
    return np.ascontiguousarray(tensor.data).view(np.uint8).tobytes()


def check(original, path, dump, qtype, ftype):
    failures = []
    r = GGUFReader(path)
    got_fields = {name: (types, contents) for name, types, contents in fields(r)}
    want_order = [name for name, _, _ in fields(original)]
    got_order = [name for name, _, _ in fields(r) if name in want_order]
    if got_order != want_order:
        failures.append(f"metadata order differs: {got_order} vs {want_order}")
    for name, types, contents in fields(original):
        if name not in got_fields:
            failures.append(f"metadata {name} missing")
        elif got_fields[name] != (types, contents):
            failures.append(f"metadata {name}: {got_fields[name][1]!r:.80} vs {contents!r:.80}")
    if "general.file_type" not in got_fields or got_fields["general.file_type"][1] != ftype:
        failures.append(f"general.file_type is {got_fields.get('general.file_type')}, expected {ftype}")

    ours = np.fromfile(dump, dtype="<f4")
    at = 0
    err2 = ref2 = 0.0
    if len(r.tensors) != len(original.tensors):
        failures.append(f"{len(r.tensors)} tensors, expected {len(original.tensors)}")
    for a, b in zip(original.tensors, r.tensors):
        if (b.name, list(b.shape)) != (a.name, list(a.shape)):
            failures.append(f"tensor {b.name} {list(b.shape)}, expected {a.name} {list(a.shape)}")
            continue
        want_type = T.F32 if len(a.shape) == 1 else qtype
        if b.tensor_type != want_type:
            failures.append(f"tensor {b.name} is {b.tensor_type.name}, expected {want_type.name}")
            continue
        theirs = values(b)
        n = theirs.size
        mine = ours[at:at + n]
        at += n
        if mine.size != n or not np.array_equal(mine.view(np.uint32), theirs.view(np.uint32)):
            bad = np.flatnonzero(mine.view(np.uint32) != theirs[:mine.size].view(np.uint32))[:5]
            failures.append(f"tensor {b.name}: gguf-py's values differ from ours at {bad.tolist()}: "
                            f"{theirs[bad].tolist()} vs {mine[bad].tolist()}")
        x = values(a)
        if raw_bytes(b) != np.ascontiguousarray(quantize(x.reshape(a.data.shape), want_type)).view(np.uint8).tobytes():
            failures.append(f"tensor {b.name}: bytes differ from gguf.quants.quantize(original, {want_type.name})")
        err2 += float(np.sum((theirs.astype(np.float64) - x) ** 2))
        ref2 += float(np.sum(x.astype(np.float64) ** 2))
    if at != ours.size:
        failures.append(f"{dump}: {ours.size} values, the tensors hold {at}")
    return failures, (err2 / ref2) ** 0.5 if ref2 else 0.0


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    original = GGUFReader(sys.argv[1])
    folder = Path(sys.argv[2])
    all_failures = []
    for flag, (qtype, ftype) in TYPES.items():
        path = folder / f"tiny-target.{flag}.gguf"
        failures, rel_rms = check(original, str(path), str(path) + ".values.f32", qtype, ftype)
        print(f"{flag:5s} {path.stat().st_size:9d} bytes  relative RMS error {rel_rms:.2e}  "
              f"{'ok' if not failures else 'FAILED'}")
        all_failures += [f"{path.name}: {f}" for f in failures]
    for f in all_failures[:20]:
        print("  " + f)
    return 1 if all_failures else 0


if __name__ == "__main__":
    sys.exit(main())
