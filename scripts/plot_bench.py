#!/usr/bin/env python3
"""Plots of the bench's results, and the results tables in the READMEs.

  /usr/bin/python3 scripts/plot_bench.py RESULT.json [RESULT.json ...] [--readme]

For each RESULT.json written by the bench (docs/results/<device>/<name>.json) it draws, next to it:

  <name>_throughput.png   tokens/s per stage (log scale), with the speedup over stage 00 and
                          over the previous stage
  <name>_decode_bw.png    each stage's decode bytes/s against the machine's measured read and
                          copy bandwidth (the decode roofline: decode is memory-bound)
  <name>_qps.png          when every stage was swept at the same rates (--qps-rates): p90 TTFT
                          and p90 TPOT against the arrival rate, with the SLO
  <name>_per_token.png    when the result has a trace: per-token latency against position for
                          stages 00 and 01 (stage 00 grows with the position, stage 01 is flat
                          after the prefill) and KV-cache memory against position (stage 01's
                          grows linearly; its allocation is reserved up front)

With --readme it rewrites, in README.md and in each stage README that has them, the text
between the markers <!-- BENCH:BEGIN --> and <!-- BENCH:END --> (README.md) or
<!-- RESULTS:stageNN BEGIN --> and <!-- RESULTS:stageNN END --> (stages/NN_*/README.md) with
the bench's Markdown tables and the plots, so numbers are never copied by hand.

Needs matplotlib (Debian's python3-matplotlib; scripts/setup --run installs it).
"""

import argparse
import json
import pathlib
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def short(stage):
    return stage.split("_", 1)[0] + " " + stage.split("_", 1)[1].replace("_", " ")


def plot_throughput(r, out):
    stages = r["stages"]
    names = [short(s["stage"]) for s in stages]
    tps = [s["median"]["tokens_per_s"] for s in stages]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars = ax.bar(names, tps, color=["#999999", "#4c72b0", "#55a868", "#c44e52", "#8172b2"][: len(names)])
    ax.set_yscale("log")
    ax.set_ylabel("tokens / s (log scale)")
    for i, (b, t) in enumerate(zip(bars, tps)):
        label = f"{t:.0f}"
        if i > 0:
            label += f"\n{t / tps[0]:.1f}x vs 00\n{t / tps[i - 1]:.1f}x vs prev"
        ax.annotate(label, (b.get_x() + b.get_width() / 2, t), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(min(tps) / 2, max(tps) * 12)
    ax.set_title(f"Throughput, all requests at t = 0: {pathlib.Path(r['workload']['path']).name} on "
                 f"{pathlib.Path(r['model']['path']).name}", fontsize=9)
    fig.text(0.01, 0.01, f"{r['device']['name']}, commit {r['commit']}", fontsize=7, color="#666666")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_decode_bw(r, out):
    stages = [s for s in r["stages"] if s["median"]["decode_gbps"] > 0]
    if not stages:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.4))
    names = [short(s["stage"]) for s in stages]
    gbps = [s["median"]["decode_gbps"] for s in stages]
    ax.barh(names, gbps, color="#4c72b0")
    for y, g in enumerate(gbps):
        ax.annotate(f" {g:.1f} GB/s ({100 * g / r['device']['read_gbps']:.0f}% of read)", (g, y), va="center",
                    fontsize=8)
    ax.axvline(r["device"]["read_gbps"], color="#c44e52", ls="--", label=f"measured read {r['device']['read_gbps']:.1f} GB/s")
    ax.axvline(r["device"]["copy_gbps"], color="#dd8452", ls=":", label=f"measured copy {r['device']['copy_gbps']:.1f} GB/s")
    ax.set_xlabel("bytes read per decode step / step time (weights once per step + each row's K/V), GB/s")
    ax.set_xlim(0, max(max(gbps), r["device"]["read_gbps"]) * 1.5)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Decode memory traffic against the machine's bandwidth (a model that fits in cache can exceed it)",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def plot_qps(r, out):
    """p90 TTFT and p90 TPOT against the Poisson rate, when every stage was swept at the same rates."""
    if len(r.get("qps_rates") or []) < 2 or not all("qps" in s for s in r["stages"]):
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = ["#55a868", "#c44e52", "#8172b2", "#4c72b0"]
    for i, s in enumerate(r["stages"]):
        sweep = s["qps"]["sweep"]
        rates = [p["rate"] for p in sweep]
        a1.plot(rates, [p["p90_ttft_s"] * 1e3 for p in sweep], "o-", color=colors[i % 4], label=short(s["stage"]))
        a2.plot(rates, [p["p90_tpot_s"] * 1e3 for p in sweep], "o-", color=colors[i % 4], label=short(s["stage"]))
    for ax, slo, what in ((a1, r["slo"]["ttft_ms"], "p90 TTFT"), (a2, r["slo"]["tpot_ms"], "p90 TPOT")):
        ax.axhline(slo, color="#666666", ls="--", label=f"SLO {slo:.0f} ms")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("Poisson arrival rate (requests / s, log)")
        ax.set_ylabel(f"{what} (ms, log)")
        ax.legend(fontsize=8)
    a1.set_title("Time to first token under load: below the line meets the SLO", fontsize=9)
    a2.set_title("Time per output token under load", fontsize=9)
    per_rate = f" ({r['qps_requests']} requests per rate)" if "qps_requests" in r else ""
    fig.text(0.01, 0.01, f"{pathlib.Path(r['workload']['path']).name}{per_rate} on {pathlib.Path(r['model']['path']).name}, "
             f"{r['device']['name']}, commit {r['commit']}", fontsize=7, color="#666666")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def plot_trace(r, out):
    traces = r.get("trace") or []
    if not traces:
        return False
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = {"00": "#999999", "01": "#4c72b0"}
    for t in traces:
        times = t["token_time_s"]
        p = t["prompt_tokens"]
        # Latency of the step that produced token i: gap to the previous token (the first is TTFT).
        lat = [times[0]] + [b - a for a, b in zip(times, times[1:])]
        pos = [p + i for i in range(len(times))]
        sid = t["stage"][:2]
        a1.plot(pos, [x * 1e3 for x in lat], ".", ms=3, color=colors.get(sid, "k"), label=short(t["stage"]))
        if sid != "00":
            used = [(q + 1) * t["kv_bytes_per_token"] / 2**20 for q in pos]
            a2.plot(pos, used, color=colors.get(sid, "k"), label=f"{short(t['stage'])}: KV used")
            a2.axhline(t["kv_bytes_allocated"] / 2**20, color=colors.get(sid, "k"), ls="--",
                       label=f"{short(t['stage'])}: KV allocated (prompt + max_new)")
    a1.set_yscale("log")
    a1.set_xlabel("position of the generated token")
    a1.set_ylabel("time for that token (ms, log)")
    a1.set_title("Per-token latency: the first point is the prefill (TTFT)", fontsize=9)
    a1.legend(fontsize=8)
    a2.set_xlabel("position")
    a2.set_ylabel("MiB")
    a2.set_title("KV-cache memory (stage 00 keeps none: it recomputes)", fontsize=9)
    a2.legend(fontsize=8)
    fig.text(0.01, 0.01, f"{pathlib.Path(r['model']['path']).name}, {r['device']['name']}, commit {r['commit']}",
             fontsize=7, color="#666666")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True


def replace_block(path, begin, end, text):
    s = path.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(s):
        return False
    path.write_text(pattern.sub(lambda _: begin + "\n" + text.rstrip() + "\n" + end, s))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=pathlib.Path)
    ap.add_argument("--readme", action="store_true", help="rewrite the results blocks in the READMEs")
    args = ap.parse_args()
    blocks = []
    for path in args.results:
        r = json.loads(path.read_text())
        base = path.with_suffix("")
        plot_throughput(r, f"{base}_throughput.png")
        pngs = [f"{base.name}_throughput.png"]
        if plot_decode_bw(r, f"{base}_decode_bw.png"):
            pngs.append(f"{base.name}_decode_bw.png")
        if plot_trace(r, f"{base}_per_token.png"):
            pngs.append(f"{base.name}_per_token.png")
        if plot_qps(r, f"{base}_qps.png"):
            pngs.append(f"{base.name}_qps.png")
        print(f"plot_bench: {path} -> {', '.join(pngs)}")
        md = path.with_suffix(".md").read_text()
        rel = path.parent.resolve().relative_to(ROOT)
        blocks.append((r, md, [f"{rel}/{p}" for p in pngs]))
    if not args.readme:
        return
    for depth, target, begin, end in [(0, ROOT / "README.md", "<!-- BENCH:BEGIN -->", "<!-- BENCH:END -->")] + [
        (2, d / "README.md", f"<!-- RESULTS:stage{d.name[:2]} BEGIN -->", f"<!-- RESULTS:stage{d.name[:2]} END -->")
        for d in sorted((ROOT / "stages").glob("[0-9][0-9]_*"))
    ]:
        if not target.exists():
            continue
        up = "../" * depth
        text = "_Written by scripts/bench (scripts/plot_bench.py); do not edit by hand._\n\n"
        for r, md, pngs in blocks:
            text += md + "\n" + "\n".join(f"![{pathlib.Path(p).stem}]({up}{p})" for p in pngs) + "\n\n"
        if replace_block(target, begin, end, text):
            print(f"plot_bench: updated {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
