#!/usr/bin/env bash
# scripts/quant_gemv_table.py on synthetic rows: it must never say "All goals met" unless every
# Llama-3-8B shape at batch 1 has the fp16 baseline and a row of every format that meets its goal.
#   - a complete set of rows that meets every goal: "All goals met.";
#   - the same without one format at one shape (a failed or skipped variant): missing, not met;
#   - without one whole shape (a run cut short): missing, not met;
#   - a batch-8 row that misses the goals is shown but not judged;
#   - --checks-failed (the GEMV checks of the run failed): not met;
#   - a (shape, version) seen twice (two runs appended): refused, exit 1;
#   - a row below the ratio or the copy share: **no**.
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qgemv-table.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
tbl="$src/scripts/quant_gemv_table.py"

row() {  # row SHAPE VERSION MS CEILING_PCT
  printf '{"family": "quant_gemv", "version": "%s", "shape": "%s", "ms": %s, "value": 3500, "unit": "GB/s", "ceiling_pct": %s, "device": "test", "copy_gbps": 4000, "gemm_tflops": 700}\n' "$2" "$1" "$3" "$4"
}
shapes=("n=1 out=4096 in=4096 (q/o proj)" "n=1 out=14336 in=4096 (gate/up)" "n=1 out=4096 in=14336 (down)" "n=1 out=1024 in=4096 (k/v proj)")
full() {  # every shape: baseline 1.0 ms, Q8_0 0.5 (2x), Q4_0 0.3 (3.3x), Q4_1 0.35, FP8 0.5, all at 85% of copy
  for s in "${shapes[@]}"; do
    row "$s" "fp16 gemv 02 (baseline)" 1.0 85
    row "$s" "Q8_0 01_fused_16B" 0.6 70
    row "$s" "Q8_0 02_prepacked" 0.5 85
    row "$s" "Q4_0 02_prepacked" 0.3 85
    row "$s" "Q4_1 01_fused_16B" 0.35 85
    row "$s" "FP8_E4M3 03_fp8_e4m3" 0.5 85
  done
}
judge() {  # judge NAME [ARGS...]: runs the table on $tmp/NAME.jsonl, prints it
  python3 "$tbl" "$tmp/$1.jsonl" --out "$tmp/$1.md" "${@:2}" >/dev/null || fail "$1: the table failed"
  cat "$tmp/$1.md"
}

full >"$tmp/all.jsonl"
judge all
grep -q "^All goals met.$" "$tmp/all.md" || fail "a complete set that meets every goal is not 'All goals met'"
grep -q "| Q8_0 01_fused_16B | 0.6000 | 3500 | 70.0 | 1.67 |  |  |" "$tmp/all.md" || fail "the slower Q8_0 version was judged"

full | grep -v '"FP8_E4M3 03_fp8_e4m3", "shape": "n=1 out=1024' >"$tmp/nofp8.jsonl"
judge nofp8
grep -q "All goals met" "$tmp/nofp8.md" && fail "met with FP8 missing at k/v proj"
grep -q "n=1 out=1024 in=4096 (k/v proj): no row of FP8 (FP8_E4M3)" "$tmp/nofp8.md" || fail "the missing FP8 row is not named"

full | grep -v 'out=4096 in=14336' >"$tmp/noshape.jsonl"
judge noshape
grep -q "All goals met" "$tmp/noshape.md" && fail "met with the down projection missing"
grep -q "n=1 out=4096 in=14336 (down): no row of the fp16 baseline" "$tmp/noshape.md" || fail "the missing shape is not named"

{ full; row "n=8 out=4096 in=4096 (q/o proj)" "fp16 gemv 02 (baseline)" 1.0 85; row "n=8 out=4096 in=4096 (q/o proj)" "Q4_0 02_prepacked" 0.9 20; } >"$tmp/n8.jsonl"
judge n8
grep -q "^All goals met.$" "$tmp/n8.md" || fail "a batch-8 row was judged against the batch-1 goals"

judge all --checks-failed "step 3" >/dev/null
grep -q "All goals met" "$tmp/all.md" && fail "met although the checks failed"
grep -q "The checks failed (step 3)" "$tmp/all.md" || fail "the failed checks are not said"

{ full; full; } >"$tmp/twice.jsonl"
set +e
python3 "$tbl" "$tmp/twice.jsonl" >/dev/null 2>"$tmp/twice.err"; rc=$?
set -e
[ "$rc" = 1 ] || fail "rows of two runs were accepted (exit $rc)"
grep -q "rows repeated" "$tmp/twice.err" || fail "the repeated rows are not said"

full | sed 's/"Q4_0 02_prepacked", "shape": "n=1 out=4096 in=4096 (q\/o proj)", "ms": 0.3/"Q4_0 02_prepacked", "shape": "n=1 out=4096 in=4096 (q\/o proj)", "ms": 0.4/' >"$tmp/slow.jsonl"
judge slow
grep -q "| n=1 out=4096 in=4096 (q/o proj) | Q4_0 02_prepacked | 0.4000 | 3500 | 85.0 | 2.50 | W4A16: >= 3.0x, >= 80% copy | \*\*no\*\* |" "$tmp/slow.md" \
  || fail "a 2.5x W4A16 row is not marked no"
grep -q "All goals met" "$tmp/slow.md" && fail "met with a missed W4A16 goal"

full | sed 's/"Q8_0 02_prepacked", "shape": "n=1 out=1024 in=4096 (k\/v proj)", "ms": 0.5, "value": 3500, "unit": "GB\/s", "ceiling_pct": 85/"Q8_0 02_prepacked", "shape": "n=1 out=1024 in=4096 (k\/v proj)", "ms": 0.5, "value": 3500, "unit": "GB\/s", "ceiling_pct": 79.9/' >"$tmp/low.jsonl"
judge low
grep -q "| n=1 out=1024 in=4096 (k/v proj) | Q8_0 02_prepacked | 0.5000 | 3500 | 79.9 | 2.00 | W8A16: >= 1.8x, >= 80% copy | \*\*no\*\* |" "$tmp/low.md" \
  || fail "a W8A16 row at 79.9% of copy is not marked no"
echo "quant_gemv_table: complete, missing, batch 8, failed checks, repeated rows and missed goals judged right"
