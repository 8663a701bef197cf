#!/usr/bin/env bash
# scripts/bench (what scripts/run runs) must leave a checkout as it found it, and only
# `scripts/bench --publish` may change tracked files: the results and the READMEs' blocks.
# Runs both, on two requests per step, in a throw-away git repository holding a copy of what the
# script reads, so that the test sees every path written and never touches the real tree.
#
#   bench_script_clean.sh BENCH_EXECUTABLE
set -euo pipefail
bench="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/bench-clean.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$tmp/repo/datasets/models" "$tmp/repo/docs/results"
cp -r "$src/scripts" "$src/datasets/workloads" "$tmp/repo/" && mv "$tmp/repo/workloads" "$tmp/repo/datasets/"
mkdir -p "$tmp/repo/datasets/eval" && cp "$src"/datasets/eval/heldout_*.txt "$tmp/repo/datasets/eval/"  # stage 05's perplexity
cp "$src/datasets/models/tiny-target.gguf" "$tmp/repo/datasets/models/"
cp "$src/.gitignore" "$src/README.md" "$tmp/repo/"
for d in "$src"/stages/[0-9][0-9]_*/; do
  n=$(basename "$d")
  mkdir -p "$tmp/repo/stages/$n"
  [ -f "$d/README.md" ] && cp "$d/README.md" "$tmp/repo/stages/$n/"
done
cd "$tmp/repo"
git init -q . && git add -A && git -c user.name=t -c user.email=t@t commit -qm copy

export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
scripts/bench --smoke --bench "$bench" >"$tmp/quick.log" 2>&1 || { cat "$tmp/quick.log"; fail "scripts/bench --smoke failed"; }
changed="$(git status --porcelain --untracked-files=all)"
[ -z "$changed" ] || fail "scripts/bench changed the checkout:"$'\n'"$changed"
device="$("$bench" --device-id)"
for f in short-tiny-target.md short-tiny-target.json short-tiny-target_throughput.png chat-qps-tiny-target_qps.png; do
  [ -s "build/results/$device/$f" ] || fail "no build/results/$device/$f"
done
grep -q "results (tables \*.md, data \*.json, plots \*.png) are in build/results/$device/" "$tmp/quick.log" ||
  fail "scripts/bench did not say where the results are"$'\n'"$(tail -5 "$tmp/quick.log")"

scripts/bench --smoke --publish --bench "$bench" >"$tmp/publish.log" 2>&1 || { cat "$tmp/publish.log"; fail "--publish failed"; }
changed="$(git status --porcelain --untracked-files=all | cut -c4-)"
unexpected="$(echo "$changed" | grep -Ev "^(README\.md|stages/0[1-5]_[a-z_]+/README\.md|docs/results/$device/[a-z0-9-]+(\.json|\.md|_[a-z_]+\.png))$" || true)"
[ -z "$unexpected" ] || fail "--publish wrote outside the results and the READMEs:"$'\n'"$unexpected"
echo "$changed" | grep -qx "README.md" || fail "--publish left README.md alone"
echo "$changed" | grep -q "^docs/results/$device/shared-prefix-tiny-target.json$" || fail "--publish skipped the full set"
for f in quant-tiny-target.json quant-tiny-target_speed_ppl.png kv-budget-tiny-target.json; do  # stage 05's steps
  echo "$changed" | grep -qx "docs/results/$device/$f" || fail "--publish wrote no docs/results/$device/$f"
done
grep -q "In short (generated from the results below" stages/03_continuous_batching/README.md ||
  fail "stage 03's generated summary is missing"
echo "ok: scripts/bench left the checkout clean; --publish changed only: $(echo "$changed" | tr '\n' ' ')"
