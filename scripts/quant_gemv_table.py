#!/usr/bin/env python3
"""The quantized GEMV's timings against issue 14's GPU goals, from kernel_harness's JSON rows
(`kernel_harness bench quant_gemv --json FILE`; scripts/gpu_check --quick runs both).

Goals (issue 14, at the Llama-3-8B shapes, batch 1, in the same run): W8A16 >= 1.8x, W4A16 >= 3x and
FP8 >= 1.8x the fp16 GEMV (stage 04's decode matmul), and each GEMV >= 80% of the copy bandwidth. For
each format the best version at each shape is judged.

  python3 scripts/quant_gemv_table.py gpu-logs/quant_gemv.jsonl [--out gpu-logs/quant_gemv.md]

Exit 0 when the table was written (goals met or not: the table says which); 1 with no rows.
"""
import argparse
import json
import sys

BASELINE = "fp16 gemv 02 (baseline)"
# format prefix of the version name -> (what the issue calls it, speed-up asked over fp16)
GOALS = {"Q8_0": ("W8A16", 1.8), "Q4_0": ("W4A16", 3.0), "FP8_E4M3": ("FP8", 1.8)}
COPY_SHARE = 80.0


def table(rows):
    rows = [r for r in rows if r.get("family") == "quant_gemv"]
    if not rows:
        return None
    first = rows[0]
    lines = [f"## Quantized decode GEMV on {first.get('device', '?')}", "",
             f"Copy bandwidth {first.get('copy_gbps', 0):.0f} GB/s (device-to-device, read + written, same process). "
             "Each time is the median of 3 rounds, each round a median of 30 L2-flushed launches, every variant "
             "timed in turn (kernel_harness bench quant_gemv).", "",
             "| shape | version | ms | GB/s | % of copy | x fp16 GEMV | goal | met |",
             "|---|---|---|---|---|---|---|---|"]
    met_all = True
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
        for r in here:
            speedup = base["ms"] / r["ms"] if base and r["ms"] > 0 else float("nan")
            fmt = r["version"].split(" ")[0]
            goal, met = "", ""
            if fmt in GOALS and best.get(fmt) is r:
                name, want = GOALS[fmt]
                ok = speedup >= want and r["ceiling_pct"] >= COPY_SHARE
                goal = f"{name}: >= {want}x, >= {COPY_SHARE:.0f}% copy"
                met = "yes" if ok else "**no**"
                met_all = met_all and ok
            elif r["version"] == BASELINE:
                goal = "baseline"
            lines.append(f"| {shape} | {r['version']} | {r['ms']:.4f} | {r['value']:.0f} | {r['ceiling_pct']:.1f} | "
                         f"{speedup:.2f} | {goal} | {met} |")
    lines += ["", "All goals met." if met_all else "Not every goal is met (rows marked **no**)."]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl")
    ap.add_argument("--out")
    a = ap.parse_args()
    try:
        rows = [json.loads(line) for line in open(a.jsonl) if line.strip()]
    except OSError as e:
        print(f"error: {a.jsonl}: {e.strerror}", file=sys.stderr)
        return 1
    t = table(rows)
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
