#!/bin/bash
# DDPG + HER on Gymnasium-Robotics' FetchReach-v4 (issue 25, part 5): the HER paper's DDPG (preset
# andrychowicz2017-her: OpenAI baselines' her config) on 5 seeds trained together in one process, evaluated every
# 500 steps on 10 episodes, then `ddpgkit report` (IQM and 95% CI of the success rate, and its curve).
#   bash benchmarks/fetch_reach.sh [WORKDIR] [STEPS] [ENV]     (defaults: /tmp/fetch_reach 10000 FetchReach-v4)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/fetch_reach}
STEPS=${2:-10000}
ENV=${3:-FetchReach-v4}
DK=$ROOT/.venv/bin/ddpgkit
mkdir -p "$WORK"
lscpu | grep -E "Model name|^CPU\(s\)" | sed 's/  */ /g'
grep -o -w -E "avx512_bf16|avx512f|avx2" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
"$ROOT/.venv/bin/python" -c "import ddpgkit, torch, mujoco, gymnasium, gymnasium_robotics as g; print('ddpgkit', ddpgkit.__version__, 'torch', torch.__version__, 'mujoco', mujoco.__version__, 'gymnasium', gymnasium.__version__, 'gymnasium-robotics', g.__version__)"
START=$(date +%s)
$DK train "$ENV" --preset andrychowicz2017-her --seeds 0-4 --steps "$STEPS" --eval-interval 500 --eval-episodes 10 \
  --checkpoint-interval 0 --out "$WORK/runs" --overwrite
echo "wall: $(( $(date +%s) - START )) s for 5 seeds x $STEPS steps in one process"
$DK report "$WORK/runs" --out "$WORK/report"
"$ROOT/.venv/bin/python" - "$WORK" <<'PY'
import json, sys
rep = json.load(open(f"{sys.argv[1]}/report/report.json"))
for g in rep["groups"]:
    print("success-rate IQM curve (step: IQM [95% CI]):")
    for p in g["success_curve"]:
        print(f"  {p['step']:>6}: {p['value']:.2f} [{p['low']:.2f}, {p['high']:.2f}]")
    first = {}
    for run in g["runs"]:
        from ddpgkit.storage.rundir import read_metrics
        rows = [r for r in read_metrics(run) if r.get("eval_success_rate") is not None]
        hit = next((int(r["step"]) for r in rows if r["eval_success_rate"] >= 0.9), None)
        first[run.rsplit("/", 1)[-1]] = hit
    print("first evaluation with success >= 0.9, per run:", first)
PY
