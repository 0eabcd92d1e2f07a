"""Many seeds in one process: a group of N seeds (ddpgkit.agents.group.DDPGGroup) against the same seeds run one
after another, on Pendulum-v1 with the `pendulum` preset's hyperparameters.

Scaling (default): for each network size and N, a fresh process pinned to one core with one torch
thread trains a group of N seeds: ``--starts`` random steps, ``--warmup-updates`` untimed steps with
updates, then ``--steps`` timed steps, no evaluation. The aggregate rate is N x timed steps / seconds;
the baseline is one ordinary run (``DDPG.learn``) measured the same way, i.e. what N seeds run one after
another achieve together. Median [min, max] over ``--reps`` repetitions (sizes and N alternate).

    .venv/bin/python benchmarks/seeds.py [--sizes 64,64 256,256] [--ns 1 2 5 10 20] [--reps 3]

Whole runs (``--runs``): the issue's targets with the preset exactly as a user runs it (20k steps,
evaluations every 2000 steps): `ddpgkit train Pendulum-v1 --preset pendulum --seeds 0-9` on one core
against the same ten seeds one after another on that core, and, with both cores, the same command with
`--workers 2` (two groups of five, one process each) against Stable-Baselines3 training one seed of the
same preset (SB3 DDPG with the preset's networks, learning rates, batch, τ, γ, warm-up, Gaussian noise and
buffer), timed twice: its learn call alone without evaluations (the strict reading), and its whole process
with the preset's evaluation schedule through SB3's EvalCallback (10 deterministic episodes every 2000
steps, what the ddpgkit rows do); wall seconds of each, and the final evaluation returns.

    .venv/bin/python benchmarks/seeds.py --runs [--seeds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddpgkit.analysis.stats import iqm, stratified_bootstrap_ci  # noqa: E402

from common import machine, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import json, sys, time
mode, size, n, steps, warm, starts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), int(sys.argv[6])
import torch
from ddpgkit import DDPG, Callback, DDPGConfig
from ddpgkit.agents.group import DDPGGroup
hidden = tuple(int(x) for x in size.split(","))
first, last = starts + warm, starts + warm + steps
cfg = DDPGConfig.preset("pendulum").replace(hidden=hidden, learning_starts=starts, total_steps=last, eval_interval=0,
                                            eval_episodes=1, threads=1)
marks = {}

class Clock(Callback):
    def on_step(self, trainer):
        if trainer.step in (first, last) and trainer.step not in marks:
            marks[trainer.step] = time.perf_counter()

if mode == "single":
    DDPG("Pendulum-v1", cfg).learn(callback=Clock())
else:
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=range(n))
    group.learn_until(last, member_callbacks=[Clock()] + [None] * (n - 1))
print(json.dumps({"per_s": n * steps / (marks[last] - marks[first])}))
'''

SB3_CHILD = r'''
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
from stable_baselines3 import DDPG
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise
from ddpgkit import DDPGConfig
seed, mode = int(sys.argv[1]), sys.argv[2]
c = DDPGConfig.preset("pendulum")
start = time.perf_counter()
model = DDPG("MlpPolicy", "Pendulum-v1", buffer_size=c.buffer_size, learning_starts=c.learning_starts,
             batch_size=c.batch_size, tau=c.tau, gamma=c.gamma, learning_rate=c.actor_lr, train_freq=1,
             gradient_steps=1,
             action_noise=NormalActionNoise(np.zeros(1), c.noise_scale * 2.0 * np.ones(1)),
             policy_kwargs={"net_arch": list(c.hidden)}, seed=seed, device="cpu", verbose=0)
if mode == "evaluations":  # the preset's schedule: eval_episodes deterministic episodes every eval_interval steps
    callback = EvalCallback(make_vec_env("Pendulum-v1", n_envs=1, seed=seed + 10_000), eval_freq=c.eval_interval,
                            n_eval_episodes=c.eval_episodes, deterministic=True, verbose=0)
    model.learn(c.total_steps, callback=callback)
    final = callback.last_mean_reward
else:
    model.learn(c.total_steps)
wall = time.perf_counter() - start
if mode != "evaluations":
    final, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=c.eval_episodes)
print(json.dumps({"wall_s": wall, "final": float(final)}))
'''


def _sb3(core: int, mode: str) -> tuple[float, float, float]:
    """SB3 training seed 0 of the preset: (its learn call's seconds, the whole process's seconds, final return)."""
    t = time.perf_counter()
    p = subprocess.run(["taskset", "-c", str(core), sys.executable, "-c", SB3_CHILD, "0", mode], capture_output=True,
                       text=True, env=_env(), timeout=3600)
    whole = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"SB3 failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["wall_s"], whole, out["final"]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))


def _child(core: int, *args: str) -> float:
    cmd = ["taskset", "-c", str(core), sys.executable, "-c", CHILD, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"{args} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])["per_s"]


def _range(xs: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}, {fmt.format(max(xs))}]"


def scaling(a: argparse.Namespace) -> None:
    print(f"Pendulum-v1, `pendulum` preset (batch 256, 1 update per step) with the networks below; {a.starts} random "
          f"steps, {a.warmup_updates} untimed steps with updates, {a.steps} timed steps, no evaluation; fresh "
          f"process per measurement pinned to core {a.core}, 1 torch thread; {a.reps} repetitions; aggregate env "
          "steps/s of all seeds together, median [min, max]; 'x' = group / one run (= N seeds one after another)\n")
    header = ["networks", "one run", *(f"group N={n}" for n in a.ns), *(f"x N={n}" for n in a.ns)]
    rows = []
    for size in a.sizes:
        single: list[float] = []
        groups: dict[int, list[float]] = {n: [] for n in a.ns}
        for _ in range(a.reps):
            single.append(_child(a.core, "single", size, "1", str(a.steps), str(a.warmup_updates), str(a.starts)))
            for n in a.ns:
                groups[n].append(_child(a.core, "group", size, str(n), str(a.steps), str(a.warmup_updates),
                                        str(a.starts)))
        ratios = [_range([g / s for g, s in zip(groups[n], single)], "{:.1f}") for n in a.ns]
        rows.append([size.replace(",", "-"), _range(single), *(_range(groups[n]) for n in a.ns), *ratios])
        print(table(header, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(header, rows))


def _train(core: int | None, seeds: str, out: Path, *extra: str) -> subprocess.Popen:
    pin = ["taskset", "-c", str(core)] if core is not None else []
    cmd = [*pin, sys.executable, "-m", "ddpgkit.cli", "train", "Pendulum-v1", "--preset", "pendulum", "--seeds", seeds,
           "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())


def _wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{p.args} failed:\n{err[-3000:]}")


def _finals(root: Path) -> list[float]:
    summaries = sorted((json.loads(s.read_text()) for s in root.glob("*/summary.json")), key=lambda d: d["seed"])
    return [d["final_eval_mean"] for d in summaries]


def runs(a: argparse.Namespace) -> None:
    n = a.seeds
    rows = []
    finals_by: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.out) if a.out else Path(tmp)
        t = time.perf_counter()
        _wait([_train(a.core, f"0-{n - 1}", root / "group")])
        group_s = time.perf_counter() - t
        t = time.perf_counter()
        for s in range(n):
            _wait([_train(a.core, str(s), root / "sequential")])
        seq_s = time.perf_counter() - t
        t = time.perf_counter()
        _wait([_train(None, f"0-{n - 1}", root / "two", "--workers", "2")])  # both cores: one process each
        two_s = time.perf_counter() - t
        sb3_learn, _, sb3_final = _sb3(a.core, "learn")
        _, sb3_whole, sb3_eval_final = _sb3(a.core, "evaluations")
        for name, where, wall, cores in (("ddpgkit, one after another", "sequential", seq_s, 1),
                                         ("ddpgkit --seeds, one group", "group", group_s, 1),
                                         ("ddpgkit --seeds --workers 2", "two", two_s, 2)):
            finals = _finals(root / where)
            finals_by[name] = finals
            rows.append([name, str(len(finals)), str(cores), f"{wall:.0f}", f"{len(finals) * 20_000 / wall:.0f}",
                         f"{statistics.median(finals):.0f}", f"{sum(f > -200 for f in finals)}/{len(finals)}"])
        rows.append(["Stable-Baselines3, one seed: its learn call alone, no evaluations", "1", "1", f"{sb3_learn:.0f}",
                     f"{20_000 / sb3_learn:.0f}", f"{sb3_final:.0f}", f"{int(sb3_final > -200)}/1"])
        rows.append(["Stable-Baselines3, one seed: the whole process, the preset's evaluations (EvalCallback)",
                     "1", "1", f"{sb3_whole:.0f}", f"{20_000 / sb3_whole:.0f}", f"{sb3_eval_final:.0f}",
                     f"{int(sb3_eval_final > -200)}/1"])
    print("Pendulum-v1, `pendulum` preset, 20k steps a seed with its evaluations (10 episodes every 2000 steps); "
          "ddpgkit: whole processes timed from start to exit (imports, set-up, run-directory files included); "
          "SB3 twice: its learn call alone without evaluations, and its whole process with the same evaluation "
          "schedule\n")
    print(table(["what", "seeds", "cores", "wall s", "env steps/s (all seeds)", "median final return",
                 "final > -200"], rows))
    print(f"\ngroup of {n} on one core: {seq_s / group_s:.1f}x the aggregate rate of the seeds one after another; "
          f"--workers 2 on two cores: {two_s:.0f} s against SB3's one seed: {sb3_learn:.0f} s (learn call alone), "
          f"{sb3_whole:.0f} s (whole process with the preset's evaluations)")
    print("\nfinal returns by seed, and IQM with its 95% stratified-bootstrap interval (ddpgkit.analysis.stats):")
    for name, finals in finals_by.items():
        print(f"  {name}: {' '.join(f'{f:.1f}' for f in finals)}; IQM {stratified_bootstrap_ci(finals, iqm)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256"])
    p.add_argument("--ns", nargs="+", type=int, default=[1, 2, 5, 10, 20])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=2000, help="timed env steps per run")
    p.add_argument("--starts", type=int, default=1000, help="random steps before learning")
    p.add_argument("--warmup-updates", type=int, default=200, help="untimed steps with updates before the timing")
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--runs", action="store_true", help="the whole-run targets instead of the scaling curve")
    p.add_argument("--seeds", type=int, default=10, help="seeds of the whole-run comparison")
    p.add_argument("--out", default=None, help="keep the whole runs' directories here [default: a temporary one]")
    a = p.parse_args()
    print(f"machine: {machine()}")
    (runs if a.runs else scaling)(a)


if __name__ == "__main__":
    main()
