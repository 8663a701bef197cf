#!/usr/bin/env python3
"""The bench's stage 05 entries on the default model, small: a weight format and a K/V format
beside stage 01, under a KV byte budget, with perplexity.

Checks what the rows say against independent sources: each stage's PPL equals the perplexity
tool's on the same engine and windows; the pool's blocks follow from the budget and the model's
shape (bytes per token worked out here from the model summary, not taken from the bench); the
packed weights are smaller than fp32 by about their format's ratio; the Markdown has the formats
and KV-budget tables. Then the KV-budget step's QPS sweep, small: the rate grid and the requests
per rate against the rules worked out here, the workload cycled past its size, the ratio column.

  test_bench_stage05.py BENCH PERPLEXITY OUT_DIR
"""

import json
import math
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
MODEL = ROOT / "datasets" / "models" / "tiny-target.gguf"
TEXT = ROOT / "datasets" / "eval" / "heldout_kjv.txt"
WORKLOAD = ROOT / "datasets" / "workloads" / "short.jsonl"
BUDGET_MIB = 1.0

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def run(cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stderr[-3000:]}")
    return p.stdout


bench, perplexity, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
md = run([bench, "--model", MODEL, "--workload", WORKLOAD, "--stages", "01,05-q8_0,05-kv-f32,05-kv-int8", "--repeat", 1,
          "--max-requests", 2, "--no-qps", "--trace-tokens", 0, "--bandwidth-mib", 8, "--kv-budget-mib", BUDGET_MIB,
          "--ppl-text", TEXT, "--ppl-ctx", 32, "--ppl-windows", 2, "--out", out, "--name", "stage05"])
result = json.loads(next(out.glob("*/stage05.json")).read_text())
stages = {s["id"]: s for s in result["stages"]}

# Perplexity: the bench's column is the perplexity tool's on the same engine and windows.
tool_flags = {"01": ["--stage", "01"], "05-q8_0": ["--stage", "05", "--weights", "q8_0", "--kv-cache", "f16"],
              "05-kv-f32": ["--stage", "05", "--weights", "auto", "--kv-cache", "f32"],
              "05-kv-int8": ["--stage", "05", "--weights", "auto", "--kv-cache", "int8"]}
for sid, flags in tool_flags.items():
    p = stages[sid].get("perplexity")
    check(p is not None, f"stage {sid} has no perplexity")
    if p is None:
        continue
    if p.get("matmul"):  # stage 05's kernel choice, as the bench ran it
        flags = flags + ["--matmul", p["matmul"]]
    tool = json.loads(run([perplexity, "--model", MODEL, "--text", TEXT, "--ctx", 32, "--max-windows", 2, "--json"] + flags))
    check(p["tokens"] == tool["perplexity"]["tokens"] == 32, f"stage {sid}: {p['tokens']} tokens scored, the tool "
          f"{tool['perplexity']['tokens']}, expected 2 windows x 16")
    check(abs(p["ppl"] - tool["perplexity"]["ppl"]) <= 1e-9 * tool["perplexity"]["ppl"],
          f"stage {sid}: bench PPL {p['ppl']!r}, perplexity tool {tool['perplexity']['ppl']!r}")
    check(p["ppl"] > 1 and p["ppl_se"] > 0, f"stage {sid}: PPL {p['ppl']} +- {p['ppl_se']}")

# The pool under the budget: bytes per token from the model's shape, scales for int8.
summary = result["model"]["summary"]
m = re.search(r"(\d+) layers, \d+ heads \((\d+) kv\) x (\d+)", summary)
check(m is not None, f"model summary {summary!r} has no layers / kv heads / head size")
if m:
    layers, kv_heads, head = map(int, m.groups())
    for sid, elem, scales in (("05-kv-f32", 4, 0), ("05-kv-int8", 1, 4)):
        per_token = 2 * layers * kv_heads * (head * elem + scales)
        plan = stages[sid]["median"]["kv_plan"]
        blocks = int(BUDGET_MIB * 2**20) // (per_token * plan["block_size"])
        check(plan["bytes_per_token"] == per_token and plan["blocks"] == blocks,
              f"stage {sid}: pool {plan}, expected {per_token} bytes/token and {blocks} blocks")
    check(stages["05-kv-int8"]["median"]["kv_plan"]["blocks"] > 3 * stages["05-kv-f32"]["median"]["kv_plan"]["blocks"],
          "int8 K/V does not hold more than 3x the fp32 blocks in the same bytes")
    check(stages["05-kv-f32"]["median"]["peak_running"] >= 1 and stages["05-kv-f32"]["median"]["mean_running"] > 0,
          "no running sequences counted")
check("kv_plan" not in stages["01"]["median"] or not stages["01"]["median"]["kv_plan"].get("format"),
      "stage 01 (no paged pool) got a K/V plan")

# Packed weights: q8_0 is 34 bytes per 32 weights (+ fp32 norms), fp32 is 4.
q8 = stages["05-q8_0"]["median"]
ratio = q8["packed_weight_bytes"] / q8["weights_count"]
check(1.0625 <= ratio < 1.08, f"q8_0 holds {ratio:.4f} bytes per weight, expected 34/32 plus the norms")
check("q8_0" in q8["weight_storage"], f"q8_0 storage {q8['weight_storage']!r}")

for text in ("**Weights: bytes, speed and quality.**", "PPL vs 01", "**KV cache at the same byte budget: 1.00 MiB**",
             "| 05_quantization (int8 KV cache) | int8 |", "2 windows of 32 tokens"):
    check(text in md, f"the table lacks {text!r}")

# The KV-budget step's QPS sweep (scripts/bench's kv-budget-tiny-target, small): rates on a grid
# relative to the highest capacity, the same for both formats; each rate sends max(least, seconds
# x rate) requests, past the workload's 32 by cycling it; the table gives the ratio columns.
LEAST, SECONDS, GRID = 2, 0.5, (1.0, 2.0, 0.5)
md = run([bench, "--model", MODEL, "--workload", WORKLOAD, "--stages", "05-kv-f32,05-kv-int8", "--repeat", 1,
          "--max-requests", 4, "--qps-grid", ",".join(map(str, GRID)), "--qps-requests", LEAST, "--qps-seconds", SECONDS,
          "--trace-tokens", 0, "--bandwidth-mib", 8, "--kv-budget-mib", BUDGET_MIB, "--out", out, "--name", "sweep"])
result = json.loads(next(out.glob("*/sweep.json")).read_text())
capacity = max(4 / s["median"]["wall_s"] for s in result["stages"])
fractions = [GRID[0] * (1 + GRID[2]) ** k for k in range(3)]  # 1, 1.5, 2.25: the first >= 2 ends it
want_rates = [float(f"{f * capacity:.2g}") for f in fractions]
check(result["qps_rates"] == want_rates, f"rates {result['qps_rates']}, expected {want_rates} for capacity {capacity:.1f}")
for s in result["stages"]:
    sweep = s["qps"]["sweep"]
    check([row["rate"] for row in sweep] == result["qps_rates"], f"stage {s['id']}: its own rates {sweep}")
    for row in sweep:
        want = max(LEAST, math.ceil(SECONDS * row["rate"] - 1e-9))
        check(row["requests"] == want, f"stage {s['id']} at {row['rate']} req/s: {row['requests']} requests, expected {want}")
check(max(row["requests"] for row in sweep) > 32, "no rate sent more requests than the workload holds (no cycling tried)")
for text in ("QPS at SLO vs f32 KV |", f"max({LEAST}, {SECONDS:g} s x rate) requests per rate",
             "x the highest throughput-run capacity among the stages"):
    check(text in md, f"the sweep's table lacks {text!r}")
rows = [line for line in md.splitlines() if line.startswith("| 05_quantization (int8 KV cache) | int8 |")]
check(len(rows) == 1 and re.search(r"\| (-|\d+\.\d\dx) \|$", rows[0]) is not None,
      f"the KV-budget row has no ratio cell: {rows}")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("ok: the bench's stage 05 rows")
