#!/bin/sh
# stage07_cli.sh MPIEXEC STAGE07 STAGE03 MODEL: stage 07's executable under mpirun.
#  1. greedy text of a prompt and of a workload under -np 1, 2, 3 = stage 03's (and without mpirun);
#  2. a rank that leaves mid-run (LLM_TP_EXIT_RANK/LLM_TP_EXIT_STEP: worker 1, then rank 0)
#     ends the job non-zero within 30 s, never a hang.
# Needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 when run as root (ctest sets them).
set -u
MPIEXEC=$1 STAGE07=$2 STAGE03=$3 MODEL=$4
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

texts() {  # the "text" fields of --json, in request order
  grep '"text"' "$1"
}
PROMPT="It is a truth universally acknowledged, that a single man"
for args in "--prompt|$PROMPT|--max-new-tokens|48" "--workload|$SRC/datasets/workloads/short.jsonl|--max-new-tokens|24"; do
  IFS='|'; set -- $args; unset IFS
  "$STAGE03" --model "$MODEL" "$@" --json > "$TMP/want.json" 2> "$TMP/want.err" || { fail "stage 03 $1"; cat "$TMP/want.err"; continue; }
  texts "$TMP/want.json" > "$TMP/want.txt"
  [ -s "$TMP/want.txt" ] || fail "stage 03 printed no text for $1"
  for np in 0 1 2 3; do
    if [ "$np" = 0 ]; then
      "$STAGE07" --model "$MODEL" "$@" --json > "$TMP/got.json" 2> "$TMP/got.err"
    else
      "$MPIEXEC" --oversubscribe -np "$np" "$STAGE07" --model "$MODEL" "$@" --json > "$TMP/got.json" 2> "$TMP/got.err"
    fi
    rc=$?
    [ $rc = 0 ] || { fail "stage 07 np=$np $1: exit $rc"; cat "$TMP/got.err"; continue; }
    texts "$TMP/got.json" > "$TMP/got.txt"
    if cmp -s "$TMP/want.txt" "$TMP/got.txt"; then
      echo "ok: np=$np $1: $(wc -l < "$TMP/got.txt") texts = stage 03's"
    else
      fail "np=$np $1: text differs from stage 03's"; diff "$TMP/want.txt" "$TMP/got.txt" | head -10
    fi
  done
done

sh "$(dirname "$0")/stage07_rank_dies.sh" "$MPIEXEC" "$STAGE07" "$MODEL" || fail "a rank leaving mid-run"
[ $failures = 0 ] && echo "stage07_cli: passed" && exit 0
echo "stage07_cli: $failures failure(s)"; exit 1
