#!/bin/bash
# `ddpgkit tune` (issue 26): the same search scored on groups of seeds and on one seed per trial, each finished on
# the same ten test seeds beside the base; then one report of the three on the test seeds: did one-seed tuning pick
# worse configurations?
#   bash benchmarks/tune.sh [TASK] [WORKDIR]
# TASK: pendulum (benchmarks/tune/pendulum_5seeds.toml and pendulum_1seed.toml, about 8 minutes on two cores) or
#       idp (InvertedDoublePendulum-v5: idp_5seeds.toml and idp_1seed.toml, 12 trials each, about 100 minutes on
#       two cores)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TASK=${1:-pendulum}
WORK=${2:-/tmp/tune_bench_$TASK}
DK=$ROOT/.venv/bin/ddpgkit
case $TASK in
  pendulum) MANY=5seeds ;;
  idp) MANY=5seeds ;;
  *) echo "tune.sh: unknown task '$TASK' (pendulum or idp)" >&2; exit 2 ;;
esac
mkdir -p "$WORK"
lscpu | grep -E "Model name|^CPU\(s\)" | sed 's/  */ /g'
grep -o -w -E "avx512_bf16|avx512f|avx2" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
for k in $MANY 1seed; do
  if [ -f "$WORK/$k/best.toml" ] && [ -d "$WORK/$k/test/report" ]; then
    echo "($k: finished before, in $WORK/$k)"
  else
    START=$(date +%s)
    $DK tune "$ROOT/benchmarks/tune/${TASK}_$k.toml" --out "$WORK/$k"
    echo "wall ($k): $(( $(date +%s) - START )) s (search and test)"
  fi
  grep -E "^\| [0-9]+ \|" "$WORK/$k/tune.md" | cut -c1-150
  $DK tune "$WORK/$k" --propose
done
# the three on the same test seeds: tuned on groups of seeds, tuned on 1 seed, the base (the group study's base runs)
mkdir -p "$WORK/compare"
ln -sfn "$(ls -td "$WORK"/$MANY/test/tuned-* | head -1)" "$WORK/compare/tuned-on-$MANY"
ln -sfn "$(ls -td "$WORK"/1seed/test/tuned-* | head -1)" "$WORK/compare/tuned-on-1seed"
ln -sfn "$WORK/$MANY/test/base" "$WORK/compare/base"
$DK report "$WORK/compare/tuned-on-$MANY" "$WORK/compare/tuned-on-1seed" "$WORK/compare/base" --out "$WORK/compare/report"
