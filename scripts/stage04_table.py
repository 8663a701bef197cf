#!/usr/bin/env python3
"""Writes docs/results/stage04.md from a GPU run's JSON files (scripts/gpu_check): stage 04 at
the Llama-3-8B shape (decode roofline share, prefill TTFT, CUDA graphs on/off) and against
Hugging Face transformers generate().

  python3 scripts/stage04_table.py gpu-logs --command "scripts/gpu_check"
"""
import argparse
import datetime
import json
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs")
    ap.add_argument("--command", default="scripts/gpu_check")
    args = ap.parse_args()
    logs = pathlib.Path(args.logs)
    on = json.load(open(logs / "stage04-llama3-8b.json"))
    off = json.load(open(logs / "stage04-llama3-8b-nographs.json"))
    hf = json.load(open(logs / "hf.json")) if (logs / "hf.json").exists() else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    out = [f"# Stage 04 on the GPU\n",
           f"Device: **{on['device']}**. Date: {datetime.date.today()}. Commit: `{commit}`. Command: `{args.command}`. "
           f"Model: {on['model']} shape ({on['config']}), random fp16 weights generated on the device. "
           f"Copy bandwidth measured in the same run: {on['copy_gbps']:.0f} GB/s.\n",
           "## Decode (weights + KV bytes per step / step time)\n",
           "| batch | context | CUDA graphs | ms/step | tokens/s | GB/s | share of copy bandwidth |", "|---|---|---|---|---|---|---|"]
    for run, label in ((on, "on"), (off, "off")):
        for d in run.get("decode", []):
            out.append(f"| {d['batch']} | {d['context']} | {label} | {d['step_ms']:.3f} | {d['tokens_per_s']:.1f} | "
                       f"{d['gbps']:.0f} | {100 * d['copy_share']:.0f}% |")
    if on.get("profile"):
        total = sum(p["ms"] for p in on["profile"])
        p0 = on["profile"][0]
        out += [f"\n## Where a decode step goes (batch {p0['batch']}, context {p0['context']}; eager, waiting after every "
                f"operation: {total:.3f} ms in all)\n", "| operation (all layers) | ms | share |", "|---|---|---|"]
        for p in on["profile"]:
            out.append(f"| {p['op']} | {p['ms']:.3f} | {100 * p['ms'] / total:.1f}% |")
    out += ["\n## Prefill (one prompt, the whole prompt in one step)\n", "| prompt tokens | TTFT (ms) | prefill tokens/s |",
            "|---|---|---|"]
    for p in on.get("prefill", []):
        out.append(f"| {p['tokens']} | {p['ttft_ms']:.1f} | {p['tokens_per_s']:.0f} |")
    if "chat" in on:
        c = on["chat"]
        out += [f"\n## Chat workload x{c['scale']} ({c['requests']} requests, batch cap {c['batch']})\n",
                f"Stage 04: {c['tokens']} tokens in {c['seconds']:.1f} s = **{c['tokens_per_s']:.1f} tokens/s**."]
        if hf:
            out.append(f"Hugging Face transformers {hf['transformers']} `generate()` (torch {hf['torch']}), random "
                       f"LlamaForCausalLM of the same shape, fp16, batches of {hf['batch']} in workload order, left-padded, "
                       f"every row generating its batch's longest output: {hf['tokens_per_s']:.1f} tokens/s. "
                       f"**Ratio: {hf['ratio']:.1f}x.**")
    (ROOT / "docs/results/stage04.md").write_text("\n".join(out) + "\n")
    print("wrote docs/results/stage04.md")


if __name__ == "__main__":
    main()
