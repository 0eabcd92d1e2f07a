#!/bin/bash
# The paper's TD3 on Hopper-v5 (issue 24, "done means"): an uninterrupted 3,000-step run, the same run killed with
# SIGKILL after a checkpoint, then `--resume`: the final weights (both critics too) and metrics must be identical.
#   bash benchmarks/td3_kill_resume.sh [WORKDIR]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/td3_kill_resume}
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
DK=$ROOT/.venv/bin/ddpgkit
ARGS="Hopper-v5 --preset fujimoto2018-td3 --learning-starts 1000 --steps 3000 --checkpoint-interval 1000 --eval-interval 1000 --eval-episodes 2 --seed 7"
$DK train $ARGS --out full > full.log 2>&1
$DK train $ARGS --out run > run.log 2>&1 &
PID=$!
while [ ! -f run/checkpoints/2000/manifest.json ] && [ ! -f run/checkpoints/2001/manifest.json ]; do
  ls run/checkpoints 2>/dev/null | grep -q '^2' && break; sleep 0.2; done
sleep 1
kill -9 $PID; wait $PID 2>/dev/null
echo "killed; checkpoints: $(ls run/checkpoints)"; ls run/summary.json 2>/dev/null
$DK train $ARGS --out run --resume > resume.log 2>&1; echo "resume rc=$?"
grep "final evaluation" full.log resume.log
"$ROOT/.venv/bin/python" - <<'PY'
import json, torch
from ddpgkit import DDPG
from ddpgkit.storage.rundir import read_metrics
s = {d: json.loads(open(f"{d}/summary.json").read()) for d in ("full", "run")}
a, b = (DDPG.load(f"{d}/{s[d]['checkpoint']}").model_tensors() for d in ("full", "run"))
print("weights identical:", a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), len(a), "tensors")
t = ("steps_per_s", "wall_s")
rows = [[{k: v for k, v in r.items() if k not in t} for r in read_metrics(d)] for d in ("full", "run")]
print("metrics identical:", rows[0] == rows[1], len(rows[0]), "rows")
PY
