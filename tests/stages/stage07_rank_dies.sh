#!/bin/sh
# stage07_rank_dies.sh MPIEXEC STAGE07 MODEL [FLAGS...]: under mpirun -np 2, a rank that leaves
# mid-run (LLM_TP_EXIT_RANK/LLM_TP_EXIT_STEP: worker 1, then rank 0) must end the job non-zero
# within 30 s, never a hang. FLAGS go to the executable (e.g. --backend cuda). Exit 0 when both
# ended so, 1 otherwise. Used by stage07_cli.sh and stage07_nccl_cli.sh.
set -u
MPIEXEC=$1 STAGE07=$2 MODEL=$3
shift 3
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
failures=0
for rank in 1 0; do
  start=$(date +%s)
  LLM_TP_EXIT_RANK=$rank LLM_TP_EXIT_STEP=3 timeout 120 "$MPIEXEC" --oversubscribe -np 2 "$STAGE07" "$@" --model "$MODEL" \
    --prompt "It is a truth universally acknowledged, that a single man" --max-new-tokens 40 > "$OUT" 2>&1
  rc=$? took=$(($(date +%s) - start))
  if [ $rc = 0 ] || [ $rc = 124 ] || [ $took -gt 30 ]; then
    echo "FAIL: rank $rank left at step 3: mpirun exit $rc after $took s (want non-zero within 30 s)"; tail -20 "$OUT"
    failures=$((failures + 1))
  elif ! grep -q "leaving at step 3" "$OUT"; then
    echo "FAIL: rank $rank: the fault did not fire"; tail -20 "$OUT"
    failures=$((failures + 1))
  else
    echo "ok: rank $rank left at step 3: the job ended with exit $rc after $took s"
  fi
done
[ $failures = 0 ]
