#!/usr/bin/env python3
"""Plots of the bench's results, and the results tables in the READMEs.

  /usr/bin/python3 scripts/plot_bench.py RESULT.json [RESULT.json ...] [--readme]

For each RESULT.json written by the bench (<out>/<device>/<name>.json) it draws, next to it:

  <name>_throughput.png   tokens/s per stage (log scale) with the range of its agreeing runs as
                          error bars, and the speedup over the first stage plotted and over the
                          previous one (none for a stage whose runs never agreed: "noisy")
  <name>_decode_bw.png    each stage's decode bytes/s (range over its runs) against the
                          machine's measured read and copy bandwidth (the decode roofline)
  <name>_qps.png          when every stage was swept at the same rates (--qps-rates): p90 TTFT
                          and p90 TPOT against the arrival rate, with the SLO
  <name>_per_token.png    when the result has a trace: per-token latency against position for
                          stages 00 and 01 and KV-cache memory against position
  <name>_speed_ppl.png    when at least two stages measured perplexity (bench --ppl-text, e.g.
                          stage 05's weight formats): tokens/s against perplexity, each with its
                          range / standard error, labelled with the bytes per weight

A stage has the same colour in every plot (STAGE_COLORS).

With --readme (scripts/bench --publish) it rewrites, in README.md and in each stage README
that has them, the text between <!-- BENCH:BEGIN --> and <!-- BENCH:END --> (README.md) or
<!-- RESULTS:stageNN BEGIN --> and <!-- RESULTS:stageNN END --> (stages/NN_*/README.md) with
the bench's Markdown tables and the plots, so numbers are never copied by hand; stage 03's
block starts with a summary computed from the same results. Results that ran a stage 05 entry
(its formats, its KV-budget run) go to README.md and stage 05's block only; the other stage
blocks get the other results. Only results under docs/results
can be published: the READMEs are committed, and must link committed files.

Needs matplotlib (Debian's python3-matplotlib; scripts/setup installs it).
"""

import argparse
import json
import pathlib
import re
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent

# One colour per stage id, in every plot.
STAGE_COLORS = {
    "00": "#7f7f7f",
    "01": "#1f77b4",
    "02": "#2ca02c",
    "03": "#d62728",
    "03np": "#ff9896",
    "04": "#9467bd",
    "04ng": "#c5b0d5",
    # Stage 05: one colour per weight format, one per K/V format.
    "05-f32": "#8c564b",
    "05-f16": "#c49c94",
    "05-q8_0": "#e377c2",
    "05-q4_1": "#17becf",
    "05-q4_0": "#bcbd22",
    "05-fp8": "#ff7f0e",
    "05-auto": "#9edae5",
    "05-kv-f32": "#393b79",
    "05-kv-f16": "#6b6ecf",
    "05-kv-int8": "#e7ba52",
    "05-kv-fp8": "#ad494a",
}
OTHER_COLOR = "#333333"
DEFAULT_NOISE_FACTOR = 1.5  # the bench's default; results written before it record none


def stage_id(s):
    """"03np" for "03_continuous_batching (no prefix cache)"; older results carry no "id"."""
    if "id" in s:
        return s["id"]
    name = s["stage"]
    sid = name.split("_", 1)[0]
    if "(no prefix cache)" in name:
        sid += "np"
    if "(no CUDA graphs)" in name:
        sid += "ng"
    return sid


def color(s):
    return STAGE_COLORS.get(stage_id(s), OTHER_COLOR)


def spaced(name):
    """ "static batching" from "static_batching"; a bracket keeps its own: "quantization (q8_0 weights)"."""
    words, bracket, rest = name.partition(" (")
    return words.replace("_", " ") + bracket + rest


def short(stage):
    """ "02 static batching" from "02_static_batching"."""
    head, _, rest = stage.partition("_")
    return head + " " + spaced(rest)


def tick_label(s):
    """A short label that fits under a bar: the id, then the name wrapped to a narrow column."""
    _, _, rest = s["stage"].partition("_")
    label = stage_id(s) + "\n" + textwrap.fill(spaced(rest), 14)
    backend = s.get("median", {}).get("backend", "")
    if stage_id(s).startswith("04") and backend:
        label += f"\n(ran on {backend.split(' ')[0]})"  # the GPU engine's row may have run on the CPU
    return label


def spread(r, s):
    """(median tokens/s, low, high, agree): the bench's own verdict, or, for results written before
    the bench recorded one, the range of all runs against the default factor."""
    m = s["median"]
    if "spread" in m:
        sp = m["spread"]
        if sp["agree"]:
            return m["tokens_per_s"], sp["min_tokens_per_s"], sp["max_tokens_per_s"], True
        return m["tokens_per_s"], sp["all_min_tokens_per_s"], sp["all_max_tokens_per_s"], False
    tps = [run["tokens_per_s"] for run in s.get("runs", [])] or [m["tokens_per_s"]]
    lo, hi = min(tps), max(tps)
    factor = r.get("noise_factor", DEFAULT_NOISE_FACTOR)
    return m["tokens_per_s"], lo, hi, lo > 0 and hi <= factor * lo


def footer(fig, r, lead=""):
    fig.text(0.01, -0.02, f"{lead}{r['device']['name']}, commit {r['commit']}, {r['date']}", fontsize=7,
             color="#666666", ha="left", va="top")


def finish(fig, ax, r, title):
    """The title wrapped to fit, the machine's footer, a tight layout."""
    ax.set_title(textwrap.fill(title, 80), fontsize=9)
    footer(fig, r)
    fig.tight_layout()
    return fig


def plot_throughput(r):
    stages = r["stages"]
    meas = [spread(r, s) for s in stages]
    tps = [m[0] for m in meas]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(stages) + 2), 4.2))
    x = range(len(stages))
    err = [[t - m[1] for t, m in zip(tps, meas)], [m[2] - t for t, m in zip(tps, meas)]]
    bars = ax.bar(x, tps, color=[color(s) for s in stages], yerr=err, capsize=4, ecolor="#222222")
    for b, m in zip(bars, meas):
        if not m[3]:
            b.set_hatch("//")
    ax.set_xticks(list(x), [tick_label(s) for s in stages], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("tokens / s (log scale)")
    base = stage_id(stages[0])
    for i, (b, t, m) in enumerate(zip(bars, tps, meas)):
        label = f"{t:.0f}"
        if not m[3]:
            label += "\nnoisy: no ratio"
        elif i > 0:
            label += f"\n{t / tps[0]:.1f}x vs {base}" if meas[0][3] else f"\nvs {base}: noisy"
            if i > 1:
                label += f"\n{t / tps[i - 1]:.1f}x vs prev" if meas[i - 1][3] else "\nvs prev: noisy"
        ax.annotate(label, (b.get_x() + b.get_width() / 2, m[2]), ha="center", va="bottom", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_ylim(min(m[1] for m in meas) / 2, max(m[2] for m in meas) * 12)
    title = (f"Throughput, all requests at t = 0: {pathlib.Path(r['workload']['path']).name} on "
             f"{pathlib.Path(r['model']['path']).name}. Bars: median; whiskers: range of the agreeing runs "
             f"(hatched: runs never agreed)")
    return finish(fig, ax, r, title)


def decode_range(s):
    """(median, low, high) decode GB/s of a stage over its throughput runs."""
    med = s["median"]["decode_gbps"]
    vals = []
    for run in s.get("runs", []):
        e = run.get("engine", {})
        if e.get("decode_seconds", 0) > 0:
            vals.append(e["decode_bytes"] / e["decode_seconds"] / 1e9)
    if not vals:
        return med, med, med
    return med, min(vals), max(vals)


def plot_decode_bw(r):
    stages = [s for s in r["stages"] if s["median"]["decode_gbps"] > 0]
    if not stages:
        return None
    read, copy = r["device"]["read_gbps"], r["device"]["copy_gbps"]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.55 * len(stages)))
    ranges = [decode_range(s) for s in stages]
    y = range(len(stages))
    ax.barh(list(y), [g for g, _, _ in ranges], color=[color(s) for s in stages],
            xerr=[[g - lo for g, lo, _ in ranges], [hi - g for g, _, hi in ranges]], capsize=3, ecolor="#222222")
    ax.set_yticks(list(y), [short(s["stage"]) for s in stages], fontsize=8)
    ax.invert_yaxis()
    for k, (g, _, hi) in enumerate(ranges):
        ax.annotate(f" {g:.1f} GB/s ({100 * g / read:.0f}% of read)", (hi, k), va="center", fontsize=8,
                    bbox=dict(fc="white", ec="none", alpha=0.85, pad=1))
    ax.axvline(read, color="#000000", ls="--", label=f"measured read {read:.1f} GB/s")
    ax.axvline(copy, color="#888888", ls=":", label=f"measured copy {copy:.1f} GB/s")
    ax.set_xlabel("decode GB/s: bytes a step reads (weights once + each row's K/V) / step time")
    ax.set_xlim(0, max(max(hi for _, _, hi in ranges), read) * 1.6)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(textwrap.fill("Decode memory traffic against the machine's measured bandwidth: weights that fit "
                               "in the last-level cache can exceed it", 80), fontsize=9)
    footer(fig, r, f"{pathlib.Path(r['model']['path']).name}; ")
    fig.tight_layout()
    return fig


def plot_qps(r):
    """p90 TTFT and p90 TPOT against the Poisson rate, when every stage was swept at the same rates."""
    if len(r.get("qps_rates") or []) < 2 or not all("qps" in s for s in r["stages"]):
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for s in r["stages"]:
        sweep = s["qps"]["sweep"]
        rates = [p["rate"] for p in sweep]
        a1.plot(rates, [p["p90_ttft_s"] * 1e3 for p in sweep], "o-", color=color(s), label=short(s["stage"]))
        a2.plot(rates, [p["p90_tpot_s"] * 1e3 for p in sweep], "o-", color=color(s), label=short(s["stage"]))
    for ax, slo, what in ((a1, r["slo"]["ttft_ms"], "p90 TTFT"), (a2, r["slo"]["tpot_ms"], "p90 TPOT")):
        ax.axhline(slo, color="#666666", ls="--", label=f"SLO {slo:.0f} ms")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("Poisson arrival rate (requests / s, log)")
        ax.set_ylabel(f"{what} (ms, log)")
        ax.legend(fontsize=8)
    a1.set_title("Time to first token under load (one run per rate):\nbelow the line meets the SLO", fontsize=9)
    a2.set_title("Time per output token under load\n(one run per rate)", fontsize=9)
    per_rate = f" ({r['qps_requests']} requests per rate)" if "qps_requests" in r else ""
    if r.get("qps_seconds", 0) > 0:  # bench --qps-seconds: the workload cycled to max(N, S s x rate)
        per_rate = f" (max({r['qps_requests']}, {r['qps_seconds']:g} s x rate) requests per rate)"
    footer(fig, r, f"{pathlib.Path(r['workload']['path']).name}{per_rate} on {pathlib.Path(r['model']['path']).name}; ")
    fig.tight_layout()
    return fig


def plot_trace(r):
    traces = r.get("trace") or []
    if not traces:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for t in traces:
        times = t["token_time_s"]
        p = t["prompt_tokens"]
        # Latency of the step that produced token i: gap to the previous token (the first is TTFT).
        lat = [times[0]] + [b - a for a, b in zip(times, times[1:])]
        pos = [p + i for i in range(len(times))]
        c = color(t)
        a1.plot(pos, [x * 1e3 for x in lat], ".", ms=3, color=c, label=short(t["stage"]))
        if stage_id(t) != "00":
            used = [(q + 1) * t["kv_bytes_per_token"] / 2**20 for q in pos]
            a2.plot(pos, used, color=c, label=f"{short(t['stage'])}: KV used")
            a2.axhline(t["kv_bytes_allocated"] / 2**20, color=c, ls="--",
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
    footer(fig, r, f"{pathlib.Path(r['model']['path']).name}; ")
    fig.tight_layout()
    return fig


def bytes_per_weight(s):
    """Bytes per weight as the stage holds them (stage 05: packed; 04: fp16; the others fp32), or None."""
    m = s["median"]
    count = m.get("weights_count", 0)
    if not count:
        return None
    if m.get("packed_weight_bytes", 0) > 0:
        return m["packed_weight_bytes"] / count
    return (2.0 if stage_id(s).startswith("04") else 4.0)


def plot_speed_ppl(r):
    """Tokens/s against perplexity, one point per stage that measured it (bench --ppl-text)."""
    stages = [s for s in r["stages"] if "perplexity" in s]
    if len(stages) < 2:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for s in stages:
        p = s["perplexity"]
        t, lo, hi, agree = spread(r, s)
        ax.errorbar([p["ppl"]], [t], xerr=[[p["ppl_se"]], [p["ppl_se"]]], yerr=[[t - lo], [hi - t]], fmt="o",
                    ms=7, color=color(s), ecolor=color(s), capsize=3, mfc=color(s) if agree else "white",
                    label=short(s["stage"]) + ("" if agree else " (noisy)"))
        bpw = bytes_per_weight(s)
        ax.annotate(stage_id(s) + (f"\n{bpw:.2f} B/weight" if bpw else ""), (p["ppl"], hi), ha="center",
                    va="bottom", fontsize=7, xytext=(0, 3), textcoords="offset points")
    ax.set_xlabel("perplexity (lower is better; bars: ± standard error)")
    ax.set_ylabel("tokens / s (bars: range of the agreeing runs)")
    ax.set_ylim(0, max(spread(r, s)[2] for s in stages) * 1.3)
    p0 = stages[0]["perplexity"]
    ax.legend(fontsize=7, loc="best")
    title = (f"Speed against quality: {pathlib.Path(r['workload']['path']).name} on "
             f"{pathlib.Path(r['model']['path']).name}; perplexity on {pathlib.Path(p0['text']).name}, "
             f"{p0['windows']} windows of {p0['ctx']} tokens ({p0['tokens']} scored). Up and left is better")
    return finish(fig, ax, r, title)


def save(fig, out):
    # bbox_inches="tight": the saved image grows to hold every title, label and footer.
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


# ---- the generated summary of stage 03's README


def by_id(r):
    return {stage_id(s): s for s in r["stages"]}


def ratio_text(a, b, ra, rb, fmt="{:.1f}×"):
    """a / b as text, or why there is none (either stage's runs never agreed)."""
    if not (spread(ra, a)[3] and spread(rb, b)[3]):
        return "n/a (noisy)"
    return fmt.format(a["median"]["tokens_per_s"] / b["median"]["tokens_per_s"])


def qps_text(s):
    q = s["qps"]
    best = q["max_rate_meeting_slo"]
    if best == 0:
        return f"below {q['sweep'][0]['rate']:g} req/s"
    if q["sweep"][-1]["meets_slo"]:
        return f"{best:g} req/s or more"
    return f"{best:g} req/s"


def kv_unused(s):
    m = s["median"]
    return 100.0 * (1 - m["kv_bytes_used"] / m["kv_bytes_allocated"]) if m["kv_bytes_allocated"] > 0 else 0.0


def stage03_summary(results):
    """Stage 02 against stage 03 (and what prefix caching saves) from whichever of the published
    results are present, with the machine they were measured on."""
    named = {r["name"]: r for r in results}
    rows = []
    chat, qps = named.get("chat-tiny-target"), named.get("chat-qps-tiny-target")
    if chat and {"02", "03"} <= by_id(chat).keys():
        a, b = by_id(chat)["02"], by_id(chat)["03"]
        rows.append(("chat.jsonl throughput, all requests at t = 0", f"{a['median']['tokens_per_s']:.0f} tok/s",
                     f"{b['median']['tokens_per_s']:.0f} tok/s", ratio_text(b, a, chat, chat)))
    if qps and {"02", "03"} <= by_id(qps).keys() and all("qps" in s for s in qps["stages"]):
        a, b = by_id(qps)["02"], by_id(qps)["03"]
        rows.append(("the same, in the Poisson-load run", f"{a['median']['tokens_per_s']:.0f} tok/s",
                     f"{b['median']['tokens_per_s']:.0f} tok/s", ratio_text(b, a, qps, qps)))
        ta, tb = a["light_load"]["ttft_p50_s"] * 1e3, b["light_load"]["ttft_p50_s"] * 1e3
        rows.append((f"p50 TTFT at {a['light_load']['rate']:g} requests/s (one run)", f"{ta:.1f} ms", f"{tb:.1f} ms",
                     f"{ta / tb:.0f}× lower" if tb > 0 else ""))
        rates = qps.get("qps_rates") or []
        tried = f"rates {rates[0]:g} to {rates[-1]:g} req/s tried" if rates else "rates tried"
        rows.append((f"highest rate meeting p90 TTFT ≤ {qps['slo']['ttft_ms']:.0f} ms, TPOT ≤ "
                     f"{qps['slo']['tpot_ms']:.0f} ms ({tried})", qps_text(a), qps_text(b), ""))
        rows.append(("KV handed out but unused (peaks)", f"{kv_unused(a):.1f}%", f"{kv_unused(b):.1f}%", ""))
        wasted = [s["median"]["wasted_slot_steps"] / s["median"]["slot_steps"] if s["median"]["slot_steps"] else 0
                  for s in (a, b)]
        rows.append(("row-steps spent on finished requests", f"{100 * wasted[0]:.0f}%", f"{100 * wasted[1]:.0f}%", ""))
    if not rows:
        return ""
    source = chat or qps
    text = (f"In short (generated from the results below: {source['device']['name']}, commit {source['commit']}; "
            f"{pathlib.Path(source['model']['path']).name}; batch cap {source['batch']} for both):\n\n"
            "| | stage 02 | stage 03 | ratio |\n|---|---:|---:|---:|\n")
    text += "".join(f"| {what} | {x} | {y} | {z} |\n" for what, x, y, z in rows)
    pre = named.get("shared-prefix-tiny-target")
    if pre and {"03np", "03"} <= by_id(pre).keys() and all("light_load" in s for s in pre["stages"]):
        off, on = by_id(pre)["03np"], by_id(pre)["03"]
        m = on["median"]
        prompt = m["prefix_hit_tokens"] + m["prefill_tokens"]
        t_off, t_on = off["light_load"]["ttft_p50_s"] * 1e3, on["light_load"]["ttft_p50_s"] * 1e3
        text += (f"\nPrefix caching on `shared_prefix.jsonl`: {100 * m['prefix_hit_tokens'] / max(prompt, 1):.0f}% of all "
                 f"prompt tokens come from the cache; p50 TTFT at {on['light_load']['rate']:g} requests/s goes from "
                 f"{t_off:.1f} ms to {t_on:.1f} ms ({100 * (1 - t_on / t_off):.0f}% lower; one run each), and the KV "
                 f"memory in use from {off['median']['kv_bytes_used'] / 2**20:.1f} to "
                 f"{m['kv_bytes_used'] / 2**20:.1f} MiB.\n")
    short_r, smol = named.get("short-tiny-target"), named.get("short-smollm2")
    extra = []
    if short_r and {"02", "03"} <= by_id(short_r).keys():
        extra.append(f"on `short.jsonl` (all the same length, all at once) stage 03 runs at "
                     f"{ratio_text(by_id(short_r)['03'], by_id(short_r)['02'], short_r, short_r)} stage 02")
    if smol and {"01", "03"} <= by_id(smol).keys():
        extra.append(f"on SmolLM2 at {ratio_text(by_id(smol)['03'], by_id(smol)['01'], smol, smol)} stage 01")
    if extra:
        text += "\n" + "; ".join(extra).capitalize() + ".\n"
    return text + "\n"


# ---- the READMEs' results blocks


def replace_block(path, begin, end, text):
    s = path.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(s):
        return False
    path.write_text(pattern.sub(lambda _: begin + "\n" + text.rstrip() + "\n" + end, s))
    return True


def draw(path):
    """Draws every plot of one result next to it; returns the result and the PNG names."""
    r = json.loads(path.read_text())
    base = path.with_suffix("")
    pngs = []
    for suffix, plot in (("throughput", plot_throughput), ("decode_bw", plot_decode_bw), ("per_token", plot_trace),
                         ("qps", plot_qps), ("speed_ppl", plot_speed_ppl)):
        fig = plot(r)
        if fig is None:
            continue
        save(fig, f"{base}_{suffix}.png")
        pngs.append(f"{base.name}_{suffix}.png")
    print(f"plot_bench: {path} -> {', '.join(pngs)}")
    return r, pngs


def runs_stage05(r):
    return any(stage_id(s).startswith("05") for s in r["stages"])


def blocks_for(begin, blocks):
    """The results a README block shows: all in README.md; in stage 05's, those that ran a stage 05
    entry; in the other stages', the others."""
    if not begin.startswith("<!-- RESULTS:stage"):
        return blocks
    five = begin == "<!-- RESULTS:stage05 BEGIN -->"
    return [b for b in blocks if runs_stage05(b[0]) == five]


def publish(blocks, root=ROOT):
    for depth, target, begin, end in [(0, root / "README.md", "<!-- BENCH:BEGIN -->", "<!-- BENCH:END -->")] + [
        (2, d / "README.md", f"<!-- RESULTS:stage{d.name[:2]} BEGIN -->", f"<!-- RESULTS:stage{d.name[:2]} END -->")
        for d in sorted((root / "stages").glob("[0-9][0-9]_*"))
    ]:
        if not target.exists():
            continue
        up = "../" * depth
        text = "_Written by scripts/bench --publish (scripts/plot_bench.py); do not edit by hand._\n\n"
        shown = blocks_for(begin, blocks)
        if begin == "<!-- RESULTS:stage03 BEGIN -->":
            text += stage03_summary([r for r, _, _ in shown])
        for _, md, pngs in shown:
            text += md + "\n" + "\n".join(f"![{pathlib.Path(p).stem}]({up}{p})" for p in pngs) + "\n\n"
        if begin == "<!-- RESULTS:stage05 BEGIN -->":
            # The quality tools' table (scripts/quality_table) beside the results, where it was written.
            for folder in sorted({pathlib.Path(p).parent for _, _, pngs in shown for p in pngs}):
                if (root / folder / "quality.md").is_file():
                    text += (f"Accuracy of every format against fp32 (KL, top-1, max logit error; scripts/quality_table): "
                             f"[{folder}/quality.md]({up}{folder}/quality.md)\n\n")
        if replace_block(target, begin, end, text):
            print(f"plot_bench: updated {target.relative_to(root)}")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=pathlib.Path)
    ap.add_argument("--readme", action="store_true", help="rewrite the results blocks in the READMEs")
    args = ap.parse_args()
    published = (ROOT / "docs" / "results").resolve()
    for path in args.results:
        if not path.is_file():
            fail(f"{path}: no such result file")
        if args.readme and published not in path.resolve().parents:
            fail(f"--readme: {path} is not under docs/results/: the READMEs must link committed results "
                 "(scripts/bench --publish writes them there)")
    blocks = []
    for path in args.results:
        try:
            r, pngs = draw(path)
            md = path.with_suffix(".md").read_text()
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, OSError) as e:
            fail(f"{path}: not a bench result with its table ({type(e).__name__}: {e})")
        if args.readme:
            rel = path.parent.resolve().relative_to(ROOT)
            blocks.append((r, md, [f"{rel}/{p}" for p in pngs]))
    if args.readme:
        publish(blocks)


if __name__ == "__main__":
    main()
