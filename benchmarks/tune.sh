#!/bin/bash
# `ddpgkit tune` on Pendulum-v1 (issue 26): the same search scored on groups of five seeds and on one seed per
# trial, each finished on the same ten test seeds beside the base (the pendulum preset); then one report of the
# three on the test seeds: did one-seed tuning pick worse configurations?
#   bash benchmarks/tune.sh [WORKDIR]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/tune_bench}
DK=$ROOT/.venv/bin/ddpgkit
mkdir -p "$WORK"
lscpu | grep -E "Model name|^CPU\(s\)" | sed 's/  */ /g'
grep -o -w -E "avx512_bf16|avx512f|avx2" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
for k in 5seeds 1seed; do
  START=$(date +%s)
  $DK tune "$ROOT/benchmarks/tune/pendulum_$k.toml" --out "$WORK/$k"
  echo "wall ($k): $(( $(date +%s) - START )) s (search and test)"
  grep -E "^\| [0-9]+ \|" "$WORK/$k/tune.md" | cut -c1-150
  $DK tune "$WORK/$k" --propose
done
# the three on the same test seeds: tuned on 5-seed groups, tuned on 1 seed, the base (the 5-seed study's base runs)
mkdir -p "$WORK/compare"
ln -sfn "$(ls -td "$WORK"/5seeds/test/tuned-* | head -1)" "$WORK/compare/tuned-on-5-seeds"
ln -sfn "$(ls -td "$WORK"/1seed/test/tuned-* | head -1)" "$WORK/compare/tuned-on-1-seed"
ln -sfn "$WORK/5seeds/test/base" "$WORK/compare/base"
$DK report "$WORK/compare/tuned-on-5-seeds" "$WORK/compare/tuned-on-1-seed" "$WORK/compare/base" --out "$WORK/compare/report"
