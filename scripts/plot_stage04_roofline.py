#!/usr/bin/env python3
"""Draws stage 04's roofline from a GPU run (scripts/gpu_check): the measured decode steps
(batch 1 and 16) and prefills (1k/4k/16k prompts) at the Llama-3-8B shape, placed by their
arithmetic intensity (FLOPs per byte read from memory) under the card's two roofs measured in
the same run: copy bandwidth (the slope) and the cuBLAS fp16 GEMM (the flat top).

  python3 scripts/plot_stage04_roofline.py gpu-logs      -> docs/results/stage04_roofline.png
"""
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    logs = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-logs")
    run = json.load(open(logs / "stage04-llama3-8b.json"))
    first = json.loads(open(logs / "kernels.jsonl").readline())
    copy_bw, peak = first["copy_gbps"] * 1e9, first["gemm_tflops"] * 1e12
    weights = run["weight_bytes"]
    params = weights / 2.0  # fp16
    points = []
    for d in run.get("decode", []):
        flops = 2.0 * params * d["batch"]  # matmuls; attention at this context adds little
        points.append((f"decode b={d['batch']}", flops / d["bytes_per_step"], flops / (d["step_ms"] * 1e-3)))
    for p in run.get("prefill", []):
        n = p["tokens"]
        flops = 2.0 * params * n
        points.append((f"prefill {n}", flops / weights, flops / (p["ttft_ms"] * 1e-3)))
    xs = [10 ** (i / 20) for i in range(-20, 100)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.loglog(xs, [min(peak, x * copy_bw) / 1e12 for x in xs], color="black", label="roofline (this card)")
    for name, x, y in points:
        ax.scatter([x], [y / 1e12], zorder=3)
        ax.annotate(name, (x, y / 1e12), textcoords="offset points", xytext=(5, -10), fontsize=8)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of weights + KV read)")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(f"Stage 04, Llama-3-8B shape, {run['device']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    out = ROOT / "docs/results/stage04_roofline.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
