#!/bin/sh
# stage07_nccl_cli.sh MPIEXEC STAGE07 STAGE04 MODEL [refusals]: stage 07's executable on the CUDA
# backend (--backend cuda, one GPU per rank; a `gpu` test: exit 77 where it cannot run).
# With `refusals` (any machine): --backend cuda with one of stage 05's formats, and an unknown
# --backend, exit 2 with one error naming the flags, alone and under mpirun -np 2 (rank 0 refuses
# before the other ranks load anything).
#  1. greedy text of a prompt under -np 2 = stage 04's on the CUDA backend (fp16 both; only the
#     sum order of the all-reduced products differs, which a tiny model's greedy tokens survive);
#     on a machine with one GPU, -np 1 instead (then exit 77: the rest needs two GPUs);
#  2. a rank that leaves mid-run (LLM_TP_EXIT_RANK/LLM_TP_EXIT_STEP: worker 1, then rank 0), while
#     its peer waits in NCCL collectives on the GPU, ends the job non-zero within 30 s.
# Needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 when run as root (ctest sets them).
set -u
MPIEXEC=$1 STAGE07=$2 STAGE04=$3 MODEL=$4
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
if [ "${5:-}" = refusals ]; then
  for np in 0 2; do
    all="--weights|q8_0|--backend|cuda --kv-cache|int8|--backend|cuda --backend|tpu"
    [ "$np" = 2 ] && all="--weights|q8_0|--backend|cuda"  # under mpirun: that rank 0 refuses alone
    for flags in $all; do
      IFS='|'; set -- $flags; unset IFS
      if [ "$np" = 0 ]; then
        "$STAGE07" --model "$MODEL" --prompt hi "$@" > "$TMP/out" 2>&1
      else
        timeout 60 "$MPIEXEC" --oversubscribe -np 2 "$STAGE07" --model "$MODEL" --prompt hi "$@" > "$TMP/out" 2>&1
      fi
      rc=$?
      if [ $rc != 2 ] || ! grep -q "error: $1 $2\|error: --backend cuda: .*$1 $2" "$TMP/out"; then
        fail "np=$np $*: exit $rc (want 2 and an error naming $1 $2)"; tail -5 "$TMP/out"
      else
        echo "ok: np=$np $*: $(grep -m1 error: "$TMP/out")"
      fi
    done
  done
  [ $failures = 0 ] && echo "stage07_nccl_cli refusals: passed" && exit 0
  exit 1
fi
for exe in "$STAGE07" "$STAGE04"; do
  [ -x "$exe" ] || { echo "SKIP: $exe is not built here"; exit 77; }
done
PROMPT="It is a truth universally acknowledged, that a single man"
# Stage 04's text on CUDA, the reference (once), then stage 07's at NP ranks against it. Each run
# under `timeout`: a hang (a collective or a shutdown that waits for ever) fails with its log
# instead of taking the test's whole time.
want() {
  [ -s "$TMP/want.txt" ] && return 0
  timeout 60 "$STAGE04" --backend cuda --model "$MODEL" --prompt "$PROMPT" --max-new-tokens 32 --json > "$TMP/want.json" 2> "$TMP/want.err" \
    || { fail "stage 04 --backend cuda"; tail -20 "$TMP/want.err"; return 1; }
  grep '"text"' "$TMP/want.json" > "$TMP/want.txt"
}
same_text() {  # NP: stage 07 --backend cuda at NP ranks; its text = stage 04's
  if [ "$rc" != 0 ]; then
    fail "stage 07 --backend cuda -np $1: exit $rc"; tail -20 "$TMP/got.err"; return
  fi
  want || return
  grep '"text"' "$TMP/got.json" > "$TMP/got.txt"
  if [ -s "$TMP/want.txt" ] && cmp -s "$TMP/want.txt" "$TMP/got.txt"; then
    echo "ok: -np $1 --backend cuda: the text = stage 04's on CUDA"
  else
    fail "-np $1 --backend cuda: text differs from stage 04's on CUDA"; diff "$TMP/want.txt" "$TMP/got.txt" | head -10
  fi
}
run07() {  # NP
  timeout 120 "$MPIEXEC" --oversubscribe -np "$1" "$STAGE07" --backend cuda --model "$MODEL" --prompt "$PROMPT" \
    --max-new-tokens 32 --json > "$TMP/got.json" 2> "$TMP/got.err"
  rc=$?
}
run07 2
if [ $rc != 0 ] && grep -qE "one GPU per rank" "$TMP/got.err" && ! grep -qE "with 0 GPU" "$TMP/got.err"; then
  # One GPU: what a single-GPU machine can check, stage 07's executable on the CUDA backend at
  # -np 1 (its engine on the NCCL executor, all-reduces of one rank); -np 2 and a rank leaving
  # mid-run need two GPUs.
  why=$(grep -m1 -E "one GPU per rank" "$TMP/got.err")
  run07 1
  same_text 1
  [ $failures = 0 ] || { echo "stage07_nccl_cli: $failures failure(s)"; exit 1; }
  echo "SKIP: -np 2 and a rank leaving mid-run: $why"
  exit 77
fi
if [ $rc != 0 ] && grep -qE "one GPU per rank|no CUDA device|no CUDA backend|no NCCL" "$TMP/got.err"; then
  echo "SKIP: $(grep -m1 -E "one GPU per rank|no CUDA device|no CUDA backend|no NCCL" "$TMP/got.err")"
  exit 77
fi
same_text 2
sh "$(dirname "$0")/stage07_rank_dies.sh" "$MPIEXEC" "$STAGE07" "$MODEL" --backend cuda || fail "a rank leaving mid-run"
[ $failures = 0 ] && echo "stage07_nccl_cli: passed" && exit 0
echo "stage07_nccl_cli: $failures failure(s)"; exit 1
