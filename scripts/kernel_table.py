#!/usr/bin/env python3
"""Turns kernel_harness's JSON rows (plus scripts/sdpa_baseline.py's) into the results page
docs/results/kernels.md and the summary table of kernels/README.md (between the markers
<!-- RESULTS:kernels --> and <!-- /RESULTS:kernels -->).

  python3 scripts/kernel_table.py gpu-logs/kernels.jsonl --command "scripts/gpu_check"
"""
import argparse
import collections
import datetime
import json
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent

# The rows the README's summary shows, SGEMM_CUDA style: (family, shape, baseline version or None,
# what the issue asks of the best version).
HEADLINES = [
    ("attention_prefill", "b4 q4096 kv4096 h32/8 d128 full", "sdpa", ">= 70% of SDPA"),
    ("attention_prefill", "b4 q4096 kv4096 h32/8 d128 causal", "sdpa", ">= 70% of SDPA"),
    ("attention_decode", None, None, ">= 70% of copy bandwidth at 32k"),
    ("gemv", None, None, ">= 85% of copy bandwidth"),
]


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows


def best_baseline(rows, family, shape):
    cands = [r for r in rows if r["family"] == family and r["shape"] == shape and r["version"].startswith("sdpa")]
    return max(cands, key=lambda r: r["value"]) if cands else None


def family_tables(rows):
    out = []
    by_family = collections.OrderedDict()
    for r in rows:
        by_family.setdefault(r["family"], []).append(r)
    for family, frows in by_family.items():
        versions = list(dict.fromkeys(r["version"] for r in frows))
        shapes = list(dict.fromkeys(r["shape"] for r in frows))
        unit = frows[0]["unit"]
        out.append(f"\n### {family}\n")
        out.append(f"{unit} (share of the {'copy bandwidth' if unit == 'GB/s' else 'cuBLAS GEMM'} ceiling"
                   + (", and of the best SDPA backend" if any(v.startswith("sdpa") for v in versions) else "") + ")\n")
        out.append("| shape | " + " | ".join(versions) + " |")
        out.append("|---|" + "---|" * len(versions))
        for shape in shapes:
            cells = []
            base = best_baseline(rows, family, shape)
            for v in versions:
                r = next((x for x in frows if x["shape"] == shape and x["version"] == v), None)
                if r is None:
                    cells.append("")
                    continue
                cell = f"{r['value']:.1f} ({r['ceiling_pct']:.0f}%"
                if base and not v.startswith("sdpa"):
                    cell += f", {100 * r['value'] / base['value']:.0f}% of SDPA"
                cells.append(cell + ")")
            out.append(f"| {shape} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def summary(rows):
    lines = ["| kernel | shape | version | value | % of ceiling | % of baseline | goal |", "|---|---|---|---|---|---|---|"]
    for family, shape, baseline, goal in HEADLINES:
        frows = [r for r in rows if r["family"] == family and not r["version"].startswith("sdpa")]
        if shape is None and frows:  # the shape where the best version is furthest from its ceiling's goal
            shape = max(frows, key=lambda r: r["ms"])["shape"]
        frows = [r for r in frows if r["shape"] == shape]
        base = best_baseline(rows, family, shape) if baseline else None
        for r in frows:
            rel = f"{100 * r['value'] / base['value']:.0f}% of {base['version']}" if base else ""
            lines.append(f"| {family} | {shape} | {r['version']} | {r['value']:.1f} {r['unit']} | "
                         f"{r['ceiling_pct']:.0f}% | {rel} | {goal} |")
        if base:
            lines.append(f"| {family} | {shape} | {base['version']} (baseline) | {base['value']:.1f} {base['unit']} | "
                         f"{base['ceiling_pct']:.0f}% | 100% | |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl")
    ap.add_argument("--command", default="scripts/gpu_check")
    args = ap.parse_args()
    rows = load(args.jsonl)
    ceil = next((r for r in rows if "copy_gbps" in r), {})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = (f"Device: **{rows[0]['device']}**. Date: {datetime.date.today()}. Commit: `{commit}`. "
            f"Command: `{args.command}`.\n\nCeilings measured in the same run: device-to-device copy "
            f"**{ceil.get('copy_gbps', 0):.0f} GB/s**, cuBLAS fp16 GEMM 8192^3 **{ceil.get('gemm_tflops', 0):.0f} TFLOP/s**. "
            "Every figure is the median of many launches after warm-up with L2 flushed before each "
            "(gemv, quant_gemv, attention_decode: the median per-launch time of batches of back-to-back "
            "launches on rotated copies of the weights or K/V cache, cold in L2).\n")
    page = ("# Kernel results\n\n" + head + "\n## Summary\n\n" + summary(rows) + "\n## Every version and shape\n"
            + family_tables(rows))
    (ROOT / "docs/results/kernels.md").write_text(page)
    readme = ROOT / "kernels/README.md"
    text = readme.read_text()
    block = "<!-- RESULTS:kernels -->\n" + head + "\n" + summary(rows) + "\nAll rows: `docs/results/kernels.md`.\n<!-- /RESULTS:kernels -->"
    text, n = re.subn(r"<!-- RESULTS:kernels -->.*?<!-- /RESULTS:kernels -->", lambda m: block, text, flags=re.S)
    if n != 1:
        raise SystemExit("kernels/README.md: no RESULTS:kernels markers")
    readme.write_text(text)
    print(f"wrote docs/results/kernels.md and the table in kernels/README.md ({len(rows)} rows)")


if __name__ == "__main__":
    main()
