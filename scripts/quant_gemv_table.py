#!/usr/bin/env python3
"""The quantized GEMV's timings against issue 14's GPU goals, from kernel_harness's JSON rows
(`kernel_harness bench quant_gemv --json FILE`; scripts/gpu_check --quick runs both).

Goals (issue 14, at the Llama-3-8B shapes, batch 1, in the same run): W8A16 >= 1.8x, W4A16 >= 3x and
FP8 >= 1.8x the fp16 GEMV (stage 04's decode matmul), and each GEMV >= 80% of the copy bandwidth. For
each format the best version at each shape is judged.

  python3 scripts/quant_gemv_table.py gpu-logs/quant_gemv.jsonl [--out gpu-logs/quant_gemv.md] [--checks-failed WHICH]

Only the batch-1 rows (shape "n=1 ...") are judged. "All goals met" needs, at every Llama-3-8B shape
(REQUIRED_SHAPES), the baseline and a row of every format: a shape or format with no row (a variant
that failed or was skipped, a run cut short) is listed as missing and the goals are not met. Rows of
one (shape, version) seen twice (two runs appended to one file) are refused.

Exit 0 when the table was written (goals met or not: the table says which); 1 with no rows or with
rows repeated.
"""
import argparse
import json
import sys

BASELINE = "fp16 gemv 02 (baseline)"
# format prefix of the version name -> (what the issue calls it, speed-up asked over fp16)
GOALS = {"Q8_0": ("W8A16", 1.8), "Q4_0": ("W4A16", 3.0), "FP8_E4M3": ("FP8", 1.8)}
COPY_SHARE = 80.0
# The shapes the goals are judged at: Llama-3-8B's projections at batch 1 (out x in).
REQUIRED_SHAPES = {
    "n=1 out=4096 in=4096": "q/o proj",
    "n=1 out=14336 in=4096": "gate/up",
    "n=1 out=4096 in=14336": "down",
    "n=1 out=1024 in=4096": "k/v proj",
}


def shape_key(shape):
    """'n=1 out=4096 in=4096 (q/o proj)' -> 'n=1 out=4096 in=4096'."""
    return shape.split(" (")[0].strip()


def repeated(rows):
    """The (shape, version) pairs that occur more than once."""
    seen, twice = set(), []
    for r in rows:
        k = (r.get("shape"), r.get("version"))
        if k in seen and k not in twice:
            twice.append(k)
        seen.add(k)
    return twice


def table(rows, checks_failed=None):
    rows = [r for r in rows if r.get("family") == "quant_gemv"]
    if not rows:
        return None
    first = rows[0]
    lines = [f"## Quantized decode GEMV on {first.get('device', '?')}", "",
             f"Copy bandwidth {first.get('copy_gbps', 0):.0f} GB/s (device-to-device, read + written, same process); "
             "a GEMV's GB/s counts the bytes it moves (weights as stored with their scales, x, y). "
             "Each time is the median of 3 rounds, each round the median per-launch time of batches of "
             "back-to-back launches on rotated copies of the weights (cold in L2), every variant timed in turn "
             "(kernel_harness bench quant_gemv). Goals are judged at batch 1 only.", "",
             "| shape | version | ms | GB/s | % of copy | x fp16 GEMV | goal | met |",
             "|---|---|---|---|---|---|---|---|"]
    met_all = True
    judged = {}  # shape key -> formats judged there (the baseline counts as "baseline")
    shapes = []
    for r in rows:
        if r["shape"] not in shapes:
            shapes.append(r["shape"])
    for shape in shapes:
        here = [r for r in rows if r["shape"] == shape]
        base = next((r for r in here if r["version"] == BASELINE), None)
        best = {}
        for r in here:
            fmt = r["version"].split(" ")[0]
            if fmt in GOALS and (fmt not in best or r["ms"] < best[fmt]["ms"]):
                best[fmt] = r
        batch1 = shape_key(shape).startswith("n=1 ")
        for r in here:
            speedup = base["ms"] / r["ms"] if base and base["ms"] > 0 and r["ms"] > 0 else float("nan")
            fmt = r["version"].split(" ")[0]
            goal, met = "", ""
            if batch1 and fmt in GOALS and best.get(fmt) is r:
                judged.setdefault(shape_key(shape), set()).add(fmt)
                name, want = GOALS[fmt]
                ok = speedup >= want and r["ceiling_pct"] >= COPY_SHARE
                goal = f"{name}: >= {want}x, >= {COPY_SHARE:.0f}% copy"
                met = "yes" if ok else "**no**"
                met_all = met_all and ok
            elif r["version"] == BASELINE:
                goal = "baseline"
                if batch1:
                    judged.setdefault(shape_key(shape), set()).add("baseline")
            lines.append(f"| {shape} | {r['version']} | {r['ms']:.4f} | {r['value']:.0f} | {r['ceiling_pct']:.1f} | "
                         f"{speedup:.2f} | {goal} | {met} |")
    missing = []
    for key, what in REQUIRED_SHAPES.items():
        have = judged.get(key, set())
        for fmt in ["baseline"] + list(GOALS):
            if fmt not in have:
                name = "the fp16 baseline" if fmt == "baseline" else f"{GOALS[fmt][0]} ({fmt})"
                missing.append(f"{key} ({what}): no row of {name}")
    if missing:
        met_all = False
        lines += ["", "Missing (not met: the run did not time them):"] + [f"- {m}" for m in missing]
    if checks_failed:
        met_all = False
        lines += ["", f"The checks failed ({checks_failed}): a time of a kernel whose output is wrong meets "
                  "no goal, so none is counted as met."]
    lines += ["", "All goals met." if met_all else
              "Not every goal is met (rows marked **no**" + (", or missing" if missing else "")
              + (", or the checks failed" if checks_failed else "") + ")."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl")
    ap.add_argument("--out")
    ap.add_argument("--checks-failed", metavar="WHICH",
                    help="the GEMV checks of the same run failed (WHICH says which): no goal is counted as met")
    a = ap.parse_args()
    try:
        rows = [json.loads(line) for line in open(a.jsonl) if line.strip()]
    except OSError as e:
        print(f"error: {a.jsonl}: {e.strerror}", file=sys.stderr)
        return 1
    twice = repeated([r for r in rows if r.get("family") == "quant_gemv"])
    if twice:
        print(f"error: {a.jsonl}: rows repeated (more than one run appended?): "
              + "; ".join(f"{v} at {sh}" for sh, v in twice[:3]), file=sys.stderr)
        return 1
    t = table(rows, a.checks_failed)
    if t is None:
        print(f"error: {a.jsonl}: no quant_gemv rows", file=sys.stderr)
        return 1
    print(t, end="")
    if a.out:
        with open(a.out, "w") as f:
            f.write(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
