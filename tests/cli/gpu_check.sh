#!/usr/bin/env bash
# scripts/gpu_check without a GPU: what can be tested here of the one-command GPU check.
#   - --quick --dry-run lists every step with its time limit, the limits add up to at most 8
#     minutes, and it says when the build folder is not built;
#   - the size check passes for a small build folder and refuses (exit 2, naming the limit and the
#     largest file) one that would take the source tree + folder over 64 MiB;
#   - bad arguments exit 2 with one error line;
#   - scripts/quant_gemv_table.py judges issue 14's goals from synthetic rows (a met and a missed one).
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
gc="$src/scripts/gpu_check"

mkdir -p "$tmp/small/kernels"
out=$("$gc" --quick --dry-run --build "$tmp/small" --out "$tmp/out") || fail "--quick --dry-run exited $?"
echo "$out"
for want in "kernel_harness check all --quick" "kernel_harness check quant_gemv" "-L ^gpu$" "compute-sanitizer --tool memcheck" \
            "bench quant_gemv --quick --json $tmp/out/quant_gemv.jsonl" "quant_gemv_table.py" "not built here" "size: source tree"; do
  grep -qF -- "$want" <<<"$out" || fail "the dry run does not mention '$want'"
done
total=$(sed -n 's/.*total of the limits: \([0-9]*\) s.*/\1/p' <<<"$out")
[ -n "$total" ] && [ "$total" -le 480 ] || fail "the limits add up to '$total' s, not at most 480"
[ ! -e "$tmp/out" ] || fail "the dry run created its output folder"

"$gc" --check-size --build "$tmp/small" >"$tmp/size.log" 2>&1 || { cat "$tmp/size.log"; fail "a small folder failed the size check"; }
mkdir -p "$tmp/big/kernels"
truncate -s 70M "$tmp/big/kernels/huge.bin"
set +e
"$gc" --check-size --build "$tmp/big" >"$tmp/big.log" 2>&1; rc=$?
"$gc" --quick --build "$tmp/big" --out "$tmp/out2" >"$tmp/big-quick.log" 2>&1; rc_quick=$?
set -e
cat "$tmp/big.log"
[ "$rc" = 2 ] || fail "a 70 MiB folder passed the size check (exit $rc)"
grep -q "over the 67108864 bytes" "$tmp/big.log" || fail "the size error does not state the limit"
grep -q "huge.bin" "$tmp/big.log" || fail "the size error does not name the largest file"
[ "$rc_quick" = 2 ] || fail "--quick ran with a folder over the limit (exit $rc_quick)"
[ ! -e "$tmp/out2" ] || fail "--quick wrote output before the size check"

for bad in "--dry-run" "--part nope" "--frobnicate" "--quick --prepare" "--build"; do
  set +e
  # shellcheck disable=SC2086
  msg=$("$gc" $bad 2>&1); rc=$?
  set -e
  [ "$rc" = 2 ] || fail "gpu_check $bad exited $rc, not 2"
  [ "$(grep -c '^error:' <<<"$msg")" = 1 ] || fail "gpu_check $bad: not one error line: $msg"
done

cat >"$tmp/rows.jsonl" <<'ROWS'
{"family": "quant_gemv", "version": "fp16 gemv 02 (baseline)", "shape": "n=1 out=4096 in=4096 (q/o proj)", "ms": 0.0200, "value": 3400, "unit": "GB/s", "ceiling_pct": 85.0, "device": "test", "copy_gbps": 4000, "gemm_tflops": 700}
{"family": "quant_gemv", "version": "Q8_0 02_prepacked", "shape": "n=1 out=4096 in=4096 (q/o proj)", "ms": 0.0100, "value": 3500, "unit": "GB/s", "ceiling_pct": 87.5, "device": "test", "copy_gbps": 4000, "gemm_tflops": 700}
{"family": "quant_gemv", "version": "Q8_0 01_fused_16B", "shape": "n=1 out=4096 in=4096 (q/o proj)", "ms": 0.0150, "value": 2400, "unit": "GB/s", "ceiling_pct": 60.0, "device": "test", "copy_gbps": 4000, "gemm_tflops": 700}
{"family": "quant_gemv", "version": "Q4_0 02_prepacked", "shape": "n=1 out=4096 in=4096 (q/o proj)", "ms": 0.0080, "value": 2400, "unit": "GB/s", "ceiling_pct": 60.0, "device": "test", "copy_gbps": 4000, "gemm_tflops": 700}
ROWS
python3 "$src/scripts/quant_gemv_table.py" "$tmp/rows.jsonl" --out "$tmp/table.md" >/dev/null || fail "quant_gemv_table.py failed"
cat "$tmp/table.md"
grep -q "| Q8_0 02_prepacked | 0.0100 | 3500 | 87.5 | 2.00 | W8A16: >= 1.8x, >= 80% copy | yes |" "$tmp/table.md" || fail "Q8_0's met goal not reported"
grep -q "| Q8_0 01_fused_16B | 0.0150 | 2400 | 60.0 | 1.33 |  |  |" "$tmp/table.md" || fail "the slower Q8_0 version was judged"
grep -q "| Q4_0 02_prepacked | 0.0080 | 2400 | 60.0 | 2.50 | W4A16: >= 3.0x, >= 80% copy | \*\*no\*\* |" "$tmp/table.md" || fail "Q4_0's missed goal not reported"
grep -q "Not every goal is met" "$tmp/table.md" || fail "the verdict line is wrong"
echo "gpu_check: dry run, size check, arguments and the goal table passed"
