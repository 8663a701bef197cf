#!/usr/bin/env python3
"""scripts/plot_bench.py on synthetic results: ratios against the first plotted stage and never
from a noisy stage, one colour per stage in every plot, x labels that do not run together,
titles and axis labels inside the saved image, the generated stage-03 summary, the
speed-vs-perplexity plot of stage 05's formats, stage 05's results going to its own README block
only, and --readme refusing results that are not under docs/results.

  /usr/bin/python3 tests/cli/test_plot_bench.py
"""

import copy
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
spec = importlib.util.spec_from_file_location("plot_bench", ROOT / "scripts" / "plot_bench.py")
pb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pb)
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def stage(sid, name, tps, runs, agree=True, gbps=5.0):
    lo, hi = min(runs), max(runs)
    run = lambda t: {"tokens_per_s": t, "engine": {"decode_seconds": 1.0, "decode_bytes": gbps * 1e9 * t / tps}}
    return {
        "id": sid,
        "stage": name,
        "what": "x",
        "median": {
            "tokens_per_s": tps,
            "spread": {"agree": agree, "factor": 1.5, "runs": len(runs), "agreeing_runs": len(runs) if agree else 0,
                       "min_tokens_per_s": lo, "max_tokens_per_s": hi, "all_min_tokens_per_s": lo,
                       "all_max_tokens_per_s": hi},
            "decode_gbps": gbps, "kv_bytes_used": 1 << 20, "kv_bytes_allocated": 2 << 20, "slot_steps": 100,
            "wasted_slot_steps": 25, "prefill_tokens": 80, "prefix_hit_tokens": 20, "backend": "cpu",
        },
        "runs": [run(t) for t in runs],
        "qps": {"sweep": [{"rate": 2.0, "p90_ttft_s": 0.01, "p90_tpot_s": 0.002, "meets_slo": True},
                          {"rate": 8.0, "p90_ttft_s": 0.5, "p90_tpot_s": 0.004, "meets_slo": False}],
                "max_rate_meeting_slo": 2.0},
        "light_load": {"rate": 2.0, "ttft_p50_s": 0.02, "ttft_mean_s": 0.02, "tpot_mean_s": 0.002},
    }


def result(name, stages):
    return {"name": name, "date": "2030-01-01T00:00:00Z", "commit": "abc1234", "batch": 16, "noise_factor": 1.5,
            "device": {"name": "Test CPU, 2 threads", "read_gbps": 30.0, "copy_gbps": 28.0},
            "model": {"path": "datasets/models/tiny-target.gguf"}, "workload": {"path": "datasets/workloads/chat.jsonl"},
            "slo": {"ttft_ms": 250, "tpot_ms": 50}, "qps_rates": [2.0, 8.0], "qps_requests": 8, "stages": stages}


# Stage 00 is not in this run: 02 is the base; 03's runs disagree; 04 comes after the noisy 03.
r = result("chat-qps-tiny-target", [
    stage("02", "02_static_batching", 1400, [1380, 1400, 1450]),
    stage("03", "03_continuous_batching", 1300, [40, 1300, 3700], agree=False),
    stage("04", "04_cuda", 2800, [2700, 2800, 2900]),
])

fig = pb.plot_throughput(r)
texts = [t.get_text() for t in fig.axes[0].texts]
check(not any("vs 00" in t for t in texts), f"a ratio against stage 00, which is not plotted: {texts}")
check("vs 02" not in texts[0], "the base stage carries a ratio")
check("noisy" in texts[1] and "x vs" not in texts[1], f"the noisy stage 03 shows a ratio: {texts[1]!r}")
check("2.0x vs 02" in texts[2], f"stage 04 lacks its ratio against the first plotted stage: {texts[2]!r}")
check("vs prev: noisy" in texts[2], f"stage 04's ratio against the noisy stage 03 is shown: {texts[2]!r}")
bar_colors = {s["id"]: to_hex(p.get_facecolor()) for s, p in zip(r["stages"], fig.axes[0].patches)}
check(bar_colors == {k: pb.STAGE_COLORS[k] for k in ("02", "03", "04")}, f"throughput colours {bar_colors}")
check(bool(fig.axes[0].patches[1].get_hatch()), "the noisy bar is not hatched")
check(any(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers), "no error bars on the throughput plot")
fig.canvas.draw()
renderer = fig.canvas.get_renderer()
boxes = [t.get_window_extent(renderer) for t in fig.axes[0].get_xticklabels()]
for a, b in zip(boxes, boxes[1:]):
    check(a.x1 < b.x0, f"x labels run together: {a} and {b}")

# A different subset: stage 03 first. Its colour must not change.
r2 = result("other", [copy.deepcopy(r["stages"][1]), copy.deepcopy(r["stages"][0])])
r2["stages"][0]["median"]["spread"]["agree"] = True
fig2 = pb.plot_throughput(r2)
check(to_hex(fig2.axes[0].patches[0].get_facecolor()) == pb.STAGE_COLORS["03"], "stage 03's colour changed with the subset")
check(any("vs 03" in t.get_text() for t in fig2.axes[0].texts), "the ratio is not against the first plotted stage")

bw = pb.plot_decode_bw(r)
check([to_hex(p.get_facecolor()) for p in bw.axes[0].patches] == [pb.STAGE_COLORS[k] for k in ("02", "03", "04")],
      "decode-bandwidth colours differ from the throughput plot's")
qps = pb.plot_qps(r)
check([to_hex(l.get_color()) for l in qps.axes[0].get_lines()[:3]] == [pb.STAGE_COLORS[k] for k in ("02", "03", "04")],
      "QPS colours differ from the throughput plot's")

with tempfile.TemporaryDirectory() as tmp:
    # Saved with a tight bounding box: the title and the axis label are inside the image.
    out = pathlib.Path(tmp) / "bw.png"
    bw.canvas.draw()
    bbox = bw.get_tightbbox(bw.canvas.get_renderer())
    for artist in (bw.axes[0].title, bw.axes[0].xaxis.label):
        e = artist.get_window_extent(bw.canvas.get_renderer()).transformed(bw.dpi_scale_trans.inverted())
        check(bbox.x0 <= e.x0 and e.x1 <= bbox.x1 and bbox.y0 <= e.y0 and e.y1 <= bbox.y1,
              f"{artist.get_text()!r} falls outside the saved image")
    pb.save(bw, out)
    check(out.stat().st_size > 1000, "no decode-bandwidth PNG")

    # The generated summary says the machine and withholds the noisy ratio.
    chat = result("chat-tiny-target", copy.deepcopy(r["stages"][:2]))
    text = pb.stage03_summary([chat, r])
    check("Test CPU, 2 threads" in text and "commit abc1234" in text, "the summary does not name the machine")
    check("n/a (noisy)" in text, f"the summary gives a ratio for the noisy stage 03:\n{text}")

    # Publishing: only the blocks between the markers change.
    root = pathlib.Path(tmp) / "repo"
    (root / "stages" / "03_continuous_batching").mkdir(parents=True)
    (root / "README.md").write_text("intro\n<!-- BENCH:BEGIN -->\nold\n<!-- BENCH:END -->\noutro\n")
    (root / "stages" / "03_continuous_batching" / "README.md").write_text(
        "prose\n<!-- RESULTS:stage03 BEGIN -->\nold\n<!-- RESULTS:stage03 END -->\n")
    pb.publish([(r, "| table |\n", ["docs/results/x/a_throughput.png"])], root)
    readme = (root / "README.md").read_text()
    check(readme.startswith("intro\n") and readme.endswith("outro\n") and "| table |" in readme and "old" not in readme,
          f"README.md block not replaced cleanly:\n{readme}")
    s03 = (root / "stages" / "03_continuous_batching" / "README.md").read_text()
    check("](../../docs/results/x/a_throughput.png)" in s03, "stage README links the plot without ../../")
    check("In short (generated" in s03, "stage 03's block lacks the generated summary")

    # --readme refuses results that are not committed ones.
    res = pathlib.Path(tmp) / "r.json"
    res.write_text(json.dumps(r))
    (pathlib.Path(tmp) / "r.md").write_text("| table |\n")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "plot_bench.py"), "--readme", str(res)],
                       capture_output=True, text=True)
    check(p.returncode == 2 and p.stderr.count("error:") == 1 and "docs/results" in p.stderr,
          f"--readme outside docs/results: exit {p.returncode}, {p.stderr!r}")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "plot_bench.py"), str(pathlib.Path(tmp) / "none.json")],
                       capture_output=True, text=True)
    check(p.returncode == 2 and "none.json" in p.stderr, f"a missing result: exit {p.returncode}, {p.stderr!r}")

# Stage 05's formats: tokens/s against perplexity, one point per stage that measured it, in its colour.
def with_ppl(st, ppl, se, packed=0):
    st = copy.deepcopy(st)
    st["perplexity"] = {"text": "datasets/eval/heldout_kjv.txt", "ctx": 256, "stride": 128, "windows": 4,
                        "tokens": 512, "ppl": ppl, "ppl_se": se}
    st["median"]["weights_count"] = 1000
    st["median"]["packed_weight_bytes"] = packed
    return st


q = result("quant-smollm2", [
    with_ppl(stage("01", "01_kv_cache", 17, [16, 17, 18]), 26.86, 3.39),
    with_ppl(stage("05-q8_0", "05_quantization (q8_0 weights)", 40, [38, 40, 41]), 26.91, 3.40, packed=1063),
    with_ppl(stage("05-q4_0", "05_quantization (q4_0 weights)", 60, [20, 60, 90], agree=False), 37.61, 4.68,
             packed=563),
    stage("05-kv-int8", "05_quantization (int8 KV cache)", 50, [49, 50, 51]),  # no perplexity: not plotted
])
sp = pb.plot_speed_ppl(q)
check(sp is not None, "no speed-vs-perplexity plot for three stages with perplexity")
if sp is not None:
    ax = sp.axes[0]
    pts = {}
    for line in ax.get_lines():
        x, y = line.get_xdata(), line.get_ydata()
        if len(x) == 1 and line.get_marker() == "o":
            pts[to_hex(line.get_color())] = (float(x[0]), float(y[0]))
    want = {pb.STAGE_COLORS["01"]: (26.86, 17), pb.STAGE_COLORS["05-q8_0"]: (26.91, 40),
            pb.STAGE_COLORS["05-q4_0"]: (37.61, 60)}
    check(pts == want, f"speed-vs-perplexity points (colour: (PPL, tok/s)) {pts}, expected {want}")
    labels = [t.get_text() for t in ax.texts]
    check(any("05-q8_0" in t and "1.06 B/weight" in t for t in labels), f"the q8_0 point lacks its bytes/weight: {labels}")
    check(all("05-kv-int8" not in t for t in labels), "a stage without perplexity is plotted")
    check("perplexity" in ax.get_xlabel() and "tokens" in ax.get_ylabel(), "speed-vs-perplexity axis labels")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    check(any("noisy" in t for t in legend), f"the noisy q4_0 point is not marked in the legend: {legend}")
    check(any("(q8_0 weights)" in t for t in legend), f"the format's name lost its underscore: {legend}")
    check(len(set(pb.STAGE_COLORS.values())) == len(pb.STAGE_COLORS), "two stage ids share a colour")
one = result("one", [with_ppl(stage("05-q8_0", "05_quantization (q8_0 weights)", 40, [40]), 26.9, 3.4)])
check(pb.plot_speed_ppl(one) is None, "a speed-vs-perplexity plot with a single point")
check(pb.plot_speed_ppl(r) is None, "a speed-vs-perplexity plot for a result without perplexity")

# Publishing stage 05's results: its own block and README.md get them; the other stages' do not.
with tempfile.TemporaryDirectory() as tmp:
    root = pathlib.Path(tmp)
    for d in ("03_continuous_batching", "05_quantization"):
        (root / "stages" / d).mkdir(parents=True)
        n = d[:2]
        (root / "stages" / d / "README.md").write_text(f"<!-- RESULTS:stage{n} BEGIN -->\nold\n<!-- RESULTS:stage{n} END -->\n")
    (root / "README.md").write_text("<!-- BENCH:BEGIN -->\nold\n<!-- BENCH:END -->\n")
    (root / "docs" / "results" / "x").mkdir(parents=True)
    (root / "docs" / "results" / "x" / "quality.md").write_text("# quality\n")
    pb.publish([(r, "| chat table |\n", ["docs/results/x/chat_qps.png"]),
                (q, "| quant table |\n", ["docs/results/x/quant-smollm2_speed_ppl.png"])], root)
    s05 = (root / "stages" / "05_quantization" / "README.md").read_text()
    s03 = (root / "stages" / "03_continuous_batching" / "README.md").read_text()
    top = (root / "README.md").read_text()
    check("| quant table |" in s05 and "| chat table |" not in s05, f"stage 05's block:\n{s05}")
    check("](../../docs/results/x/quant-smollm2_speed_ppl.png)" in s05, "stage 05's block lacks the speed-vs-PPL plot")
    check("](../../docs/results/x/quality.md)" in s05, f"stage 05's block does not link quality.md:\n{s05}")
    check("| chat table |" in s03 and "| quant table |" not in s03 and "quality.md" not in s03,
          f"stage 03's block:\n{s03}")
    check("| chat table |" in top and "| quant table |" in top, "README.md lacks one of the results")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("ok: plot_bench.py")
