#!/usr/bin/env python3
"""Per-token latency of stage 00 (no KV cache): the figure that motivates stage 01.

Stage 00 produces every new token by running the *whole* sequence (prompt + tokens so far)
through the model again, so the step that emits token i processes prompt_tokens + i tokens and
its latency grows with the position; the total time grows quadratically.

This script runs the stage-00 binary on the real model with --json --quiet --temperature 0 and
a fixed plain prompt (no --chat): once with a short prompt and N new tokens, once with a long
prompt and a few new tokens (to see the same line further out). It writes

  docs/results/<device>/stage00_per_token_latency.json   raw timestamps, device, commit, commands
  docs/results/<device>/stage00_per_token_latency.png    latency vs position; cumulative time

where <device> is like cpu-amd-epyc-2c (CPU model name from /proc/cpuinfo + core count).
Everything but the timings is deterministic (greedy decoding, fixed prompts).

  python3 scripts/plot_stage00.py                       defaults: 200 new tokens, real model
  python3 scripts/plot_stage00.py --tokens 100          fewer tokens (quicker)
  python3 scripts/plot_stage00.py --model PATH          another model
  python3 scripts/plot_stage00.py --replot              redraw the PNG from the saved JSON

Needs matplotlib: `pip install matplotlib` (in the pyenv python), or Debian's python3-matplotlib.
Build first (scripts/run or cmake --build build --target stage00_naive) and fetch the model
(scripts/fetch_models). Leave the machine otherwise idle while it measures (about three
minutes on 2 cores with the defaults): the script waits for an idle machine before each run and
records how much CPU time other processes took meanwhile (other_processes_cpu_s in the JSON).
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = "datasets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_BINARY = "build/stages/00_naive/stage00_naive"

SHORT_PROMPT = "The history of the printing press begins"

# Plain prose written for this script (no --chat), about 450 tokens for SmolLM2's tokenizer.
LONG_PROMPT = (
    "Before the printing press, every book in Europe was copied by hand. A scribe sat at a sloped "
    "desk with a quill, a knife to sharpen it, and a pot of ink made from oak galls and iron salts. "
    "Copying a single Bible could take a year or more, and each copy carried its own small errors, "
    "so that two books with the same title rarely agreed word for word. Monasteries kept most of "
    "the libraries, and a large one might hold a few hundred volumes, chained to the shelves "
    "because each was worth as much as a farm. Universities changed this slowly: students needed "
    "texts, and stationers in Paris and Bologna rented out unbound sections of approved copies, "
    "called peciae, so that many students could copy the same book at once. Paper, which had "
    "come to Europe from China through the Islamic world, replaced parchment for everyday books "
    "because it was far cheaper, and paper mills spread along the rivers of Italy, France and "
    "Germany. By the early fifteenth century the demand for books was growing faster than the "
    "scribes could meet it. Block printing, in which a whole page was carved into a single piece "
    "of wood, was used for playing cards, religious images and short picture books, but carving "
    "a block for every page of a long text was slow, and a cracked block was useless. The idea "
    "that made the difference was to cast each letter as a separate piece of metal, all of the "
    "same height, so that the pieces could be set in lines, locked into a frame, inked, pressed "
    "against paper, and then taken apart and used again for the next page. Making this work "
    "required several inventions at once: an adjustable hand mould to cast letters of different "
    "widths, an alloy of lead, tin and antimony that melted easily and did not shrink as it "
    "cooled, an oil-based ink that stuck to metal, and a screw press adapted from the presses "
    "used to make wine and olive oil. In the city of Mainz, a goldsmith brought these pieces "
    "together, and around the middle of the century his workshop printed a large Latin Bible in "
    "two columns of forty-two lines. Within fifty years there were presses in more than two "
    "hundred European towns, and the number of books in circulation had grown from thousands to "
    "millions. Tell the rest of the story:"
)


def sh(args, **kw):
    return subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, **kw).stdout.strip()


def cpu_name():
    """CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown-cpu"


def cpu_details():
    """Family/model numbers (they tell e.g. Zen 4 apart from Zen 3 when the name is just 'AMD EPYC')."""
    out = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # first processor only
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("vendor_id", "cpu family", "model", "stepping", "cpu MHz", "cache size"):
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def device_dir_name(name, cores):
    """'AMD EPYC' -> 'cpu-amd-epyc-2c'; 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz' -> 'cpu-intel-xeon-gold-6338-2c'."""
    s = name.lower()
    s = re.sub(r"\((r|tm)\)", " ", s)
    s = re.sub(r"@.*$", " ", s)
    s = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", s)
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return f"cpu-{s}-{cores}c"


def busy_cpu_s():
    """CPU seconds spent so far by every process on the machine (user + nice + system + irq + softirq)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return sum(int(fields[i]) for i in (1, 2, 3, 6, 7)) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(max_wait_s):
    """Waits (up to max_wait_s) until the machine has been idle for 6 s: other work skews the timings."""
    deadline, quiet_since = time.monotonic() + max_wait_s, None
    while time.monotonic() < deadline:
        before = busy_cpu_s()
        time.sleep(2)
        if busy_cpu_s() - before < 0.2:  # less than 10% of one core
            quiet_since = quiet_since or time.monotonic() - 2
            if time.monotonic() - quiet_since >= 6:
                return True
        else:
            if quiet_since is None:
                print("plot_stage00: waiting for the machine to go idle ...", flush=True)
            quiet_since = None
    return False


def run_stage00(binary, model, prompt, new_tokens, idle_wait_s):
    cmd = [binary, "--model", model, "--prompt", prompt, "--max-new-tokens", str(new_tokens),
           "--temperature", "0", "--json", "--quiet"]
    print(f"plot_stage00: running {os.path.basename(binary)} with a {len(prompt)}-character prompt, "
          f"{new_tokens} new tokens ...", flush=True)
    if idle_wait_s > 0 and not wait_until_idle(idle_wait_s):
        print("plot_stage00: warning: the machine never went idle; timings will be noisy", flush=True)
    busy0, child0 = busy_cpu_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (child1.ru_utime - child0.ru_utime) + (child1.ru_stime - child0.ru_stime)
    # CPU time that other processes took while we measured: more than a second or so means the
    # timings are skewed (two OpenMP programs on 2 cores slow each other down a lot).
    other = max(0.0, busy_cpu_s() - busy0 - own)
    if other > 1.0:
        print(f"plot_stage00: warning: other processes used {other:.1f} CPU-seconds during this run; "
              "its timings are skewed (run again on an idle machine)", flush=True)
    if p.returncode != 0:
        sys.exit(f"plot_stage00: {' '.join(cmd[:3])} ... failed (exit {p.returncode}):\n{p.stderr}")
    j = json.loads(p.stdout)
    out = j["outputs"][0]
    if "token_time_s" not in out or "prompt_tokens" not in out:
        sys.exit("plot_stage00: the binary's --json has no outputs[].token_time_s / prompt_tokens: rebuild it")
    times = out["token_time_s"]
    # Step i (0-based) emits generated token i after a forward over prompt_tokens + i tokens.
    # token_time_s counts from the start of the run, so step i took times[i] - times[i-1].
    steps = [times[0]] + [b - a for a, b in zip(times, times[1:])]
    if len(times) < new_tokens:
        print(f"plot_stage00: note: generation stopped at a stop token after {len(times)} tokens", flush=True)
    return {
        "command": cmd,
        "prompt": prompt,
        "prompt_tokens": out["prompt_tokens"],
        "new_tokens_requested": new_tokens,
        "generated_tokens": len(times),
        "text": out["text"],
        "token_time_s": times,
        "step_s": steps,
        "positions": [out["prompt_tokens"] + i for i in range(len(times))],
        "stage00_cpu_s": round(own, 2),
        "other_processes_cpu_s": round(other, 2),
        "metrics": {k: j[k] for k in ("wall_s", "tokens_per_s", "ttft_s", "tpot_s", "weight_bytes", "peak_rss_bytes") if k in j},
    }


def fit_poly(xs, ys, degree):
    """Least-squares polynomial coefficients, lowest power first (numpy if present, else normal equations)."""
    try:
        import numpy as np
        return [float(c) for c in np.polynomial.polynomial.polyfit(xs, ys, degree)]
    except ImportError:  # tiny Gaussian elimination on the normal equations
        m = degree + 1
        a = [[sum(x ** (i + k) for x in xs) for k in range(m)] + [sum(y * x ** i for x, y in zip(xs, ys))] for i in range(m)]
        for c in range(m):
            p = max(range(c, m), key=lambda r: abs(a[r][c]))
            a[c], a[p] = a[p], a[c]
            for r in range(m):
                if r != c:
                    f = a[r][c] / a[c][c]
                    a[r] = [u - f * v for u, v in zip(a[r], a[c])]
        return [a[i][m] / a[i][i] for i in range(m)]


def plot(data, png_path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_stage00: matplotlib is missing: pip install matplotlib (or apt-get install python3-matplotlib)")

    runs = data["runs"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    colors = {"short_prompt": "tab:blue", "long_prompt": "tab:orange"}

    # Left: latency of each step vs the number of tokens that step ran through the model.
    all_x, all_y = [], []
    for name, r in runs.items():
        x, y = r["positions"], [s * 1e3 for s in r["step_s"]]
        label = f"{r['prompt_tokens']}-token prompt, {r['generated_tokens']} new tokens"
        ax1.plot(x, y, ".", ms=4, color=colors.get(name), label=label)
        all_x += x
        all_y += y
    fit = data["fit_ms"]
    xs = list(range(min(all_x), max(all_x) + 1))
    ax1.plot(xs, [fit[0] + fit[1] * x + fit[2] * x * x for x in xs], "-", color="black", lw=1,
             label=f"fit: {fit[0]:.0f} + {fit[1]:.2f}·n + {fit[2] * 1e3:.2f}e-3·n² ms")
    ax1.set_xlabel("tokens in the sequence at this step (n = prompt + generated so far)")
    ax1.set_ylabel("time to produce the next token (ms)")
    ax1.set_title("Stage 00: every step re-runs the whole sequence")
    ax1.set_xlim(left=0)
    ax1.set_ylim(bottom=0)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="upper left", fontsize=8)

    # Right: cumulative time vs tokens generated, for the short-prompt run.
    r = runs["short_prompt"]
    n = list(range(1, r["generated_tokens"] + 1))
    ax2.plot(n, r["token_time_s"], "-", color=colors["short_prompt"], lw=2, label="measured (stage 00)")
    # The very first step also pays one-time costs (thread start-up, first touch of buffers), so
    # the constant-cost reference uses the median of the first few steps.
    early = sorted(r["step_s"][:7])[len(r["step_s"][:7]) // 2]
    ax2.plot(n, [early * k for k in n], "--", color="gray", lw=1,
             label=f"if every token cost as much as the early ones ({early * 1e3:.0f} ms)")
    ax2.set_xlabel("tokens generated")
    ax2.set_ylabel("time since the start of the run (s)")
    ax2.set_title(f"Total time grows quadratically ({r['prompt_tokens']}-token prompt)")
    ax2.set_xlim(left=0)
    ax2.set_ylim(bottom=0)
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper left", fontsize=8)

    model = os.path.basename(data["model"])
    fig.suptitle(f"{model}, fp32, batch 1, greedy — {data['device']['name']}, {data['device']['cores']} cores — "
                 f"commit {data['git_commit']}, {data['date'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help=f"model file (default {DEFAULT_MODEL})")
    ap.add_argument("--tokens", type=int, default=200, help="new tokens after the short prompt (default 200)")
    ap.add_argument("--long-tokens", type=int, default=32, help="new tokens after the long prompt; 0 = skip it (default 32)")
    ap.add_argument("--binary", default=DEFAULT_BINARY, help=f"stage-00 executable (default {DEFAULT_BINARY})")
    ap.add_argument("--device", help="results folder name under docs/results (default: from /proc/cpuinfo)")
    ap.add_argument("--idle-wait", type=float, default=600, help="seconds to wait for an idle machine before each run; 0 = don't (default 600)")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG from the saved JSON")
    args = ap.parse_args()

    cores = os.cpu_count() or 1
    name = cpu_name()
    device = args.device or device_dir_name(name, cores)
    out_dir = os.path.join(ROOT, "docs", "results", device)
    json_path = os.path.join(out_dir, "stage00_per_token_latency.json")
    png_path = os.path.join(out_dir, "stage00_per_token_latency.png")

    if args.replot:
        with open(json_path) as f:
            data = json.load(f)
        plot(data, png_path)
        print(f"plot_stage00: wrote {os.path.relpath(png_path, ROOT)}")
        return

    binary = args.binary if os.path.isabs(args.binary) else os.path.join(ROOT, args.binary)
    if not os.path.exists(binary):
        sys.exit(f"plot_stage00: {args.binary} not found: build it first (cmake --build build --target stage00_naive)")
    model = os.path.relpath(os.path.abspath(args.model), ROOT) if not os.path.isabs(args.model) else args.model
    if not os.path.exists(os.path.join(ROOT, model)):
        sys.exit(f"plot_stage00: model {args.model} not found: run scripts/fetch_models")
    if args.tokens < 2:
        sys.exit("plot_stage00: --tokens must be at least 2")
    binary_rel = os.path.relpath(binary, ROOT)

    runs = {"short_prompt": run_stage00(binary_rel, model, SHORT_PROMPT, args.tokens, args.idle_wait)}
    if args.long_tokens > 0:
        runs["long_prompt"] = run_stage00(binary_rel, model, LONG_PROMPT, args.long_tokens, args.idle_wait)

    xs = [x for r in runs.values() for x in r["positions"]]
    ys = [s * 1e3 for r in runs.values() for s in r["step_s"]]
    try:
        commit = sh(["git", "rev-parse", "--short", "HEAD"])
        dirty = bool(sh(["git", "status", "--porcelain", "--untracked-files=no"]))
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    data = {
        "what": "stage 00 per-token latency: step i re-runs prompt_tokens + i tokens through the model",
        "device": {"name": name, "cores": cores, "dir": device, "cpuinfo": cpu_details(),
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "model": os.path.basename(model),
        "model_path": model,
        "fit_ms": fit_poly(xs, ys, 2),
        "fit_note": "least squares step_ms = c0 + c1*n + c2*n^2 over all runs, n = tokens in the sequence",
        "runs": runs,
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    plot(data, png_path)

    c = data["fit_ms"]
    print(f"plot_stage00: wrote {os.path.relpath(json_path, ROOT)} and {os.path.relpath(png_path, ROOT)}")
    for key, r in runs.items():
        print(f"  {key}: prompt {r['prompt_tokens']} tokens, {r['generated_tokens']} generated, "
              f"first step {r['step_s'][0] * 1e3:.0f} ms, last step {r['step_s'][-1] * 1e3:.0f} ms, "
              f"total {r['token_time_s'][-1]:.1f} s, {r['generated_tokens'] / r['token_time_s'][-1]:.2f} tokens/s, "
              f"other processes {r['other_processes_cpu_s']:.1f} CPU-s")
    print(f"  fit: step_ms = {c[0]:.1f} + {c[1]:.3f}*n + {c[2]:.2e}*n^2")


if __name__ == "__main__":
    main()
