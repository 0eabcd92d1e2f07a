"""ddpgkit at two git revisions, side by side: the same numbers, and the same speed?

Checks out REF (default: the previous commit) into a temporary git worktree and measures both trees
in fresh processes, alternating base / this tree, each pinned to one core with one torch thread:

* env steps/s of the training loop on Pendulum-v1 (batch 256, one update per step, 500 warm-up
  steps, Gaussian noise 0.05 of the action scale), per network size; and of a group of ``--group`` seeds
  trained together (64-64, env steps/s of all seeds together);
* the update alone on a fixed batch (µs) and one Adam step (µs), 64-64;
* a fingerprint of a short training run (SHA-256 of the four networks' final tensors and of its metrics rows
  but their wall times) with the default update, autograd's, ``policy_frequency = 2``, bf16 where the CPU has
  it, and a group of three seeds: equal fingerprints mean the two revisions compute bit-identical training.

    .venv/bin/python benchmarks/compare_revisions.py [--base HEAD~1] [--sizes 64,64 256,256 400,300]
        [--reps 3] [--steps 1500] [--group 5] [--fingerprints-only]

Works with every layout ddpgkit has had (the child script tries the old and the new import paths).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ddpgkit.runtime import cpu_has_bf16

from common import machine, spread, table

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import hashlib, os, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {0})
from ddpgkit import DDPG, DDPGConfig
try:
    from ddpgkit import Callback
except ImportError:
    from ddpgkit.train import Callback
try:
    from ddpgkit.algo.optim import adam_step
except ImportError:
    from ddpgkit.ddpg import adam_step
what, arg, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
LS = 500
if what == "loop":
    hidden = tuple(int(x) for x in arg.split(","))
    marks = {}
    class Clock(Callback):
        def on_step(self, t):
            if t.step in (LS, LS + steps):
                marks[t.step] = time.perf_counter()
    cfg = DDPGConfig(hidden=hidden, batch_size=256, learning_starts=LS, buffer_size=100_000, gamma=0.99, tau=0.005,
                     noise_scale=0.05, eval_interval=0, eval_episodes=1, total_steps=LS + steps, seed=0)
    DDPG("Pendulum-v1", cfg).learn(LS + steps, callback=Clock())  # from 0: the old absolute and new additive agree
    print(steps / (marks[LS + steps] - marks[LS]))
elif what == "grouploop":
    from ddpgkit import DDPGGroup
    n, marks = int(arg), {}
    class Clock(Callback):
        def on_step(self, t):
            if t.step in (LS, LS + steps):
                marks[t.step] = time.perf_counter()
    cfg = DDPGConfig(hidden=(64, 64), batch_size=256, learning_starts=LS, buffer_size=100_000, gamma=0.99, tau=0.005,
                     noise_scale=0.05, eval_interval=0, eval_episodes=1, total_steps=LS + steps, seed=0)
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=range(n))
    cbs = [Clock()] + [None] * (n - 1)
    try:
        group.learn_until(LS + steps, member_callbacks=cbs)
    except TypeError:  # before issue 22: one callback entry per member, positional
        group.learn_until(LS + steps, cbs)
    print(n * steps / (marks[LS + steps] - marks[LS]))
elif what == "update":
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(64, 64), batch_size=256, learning_starts=0))
    rows = torch.randn(256, agent.buffer.width, generator=torch.Generator().manual_seed(0))
    rows[:, -2:] = (rows[:, -2:] > 1.5).float()
    batch = agent.buffer.split(rows)
    for _ in range(300):
        agent.update(batch)
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(steps):
            agent.update(batch)
        best.append((time.perf_counter() - t) / steps * 1e6)
    opt = agent.learner.critic_optimizer if hasattr(agent, "learner") else agent.critic_optimizer
    adam = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(steps):
            adam_step(opt)
        adam.append((time.perf_counter() - t) / steps * 1e6)
    print(min(best), min(adam))
else:  # fingerprint of a short run's final weights: "fingerprint SEED [autograd|pf2]" or "fingerprint group"
    cfg = DDPGConfig(hidden=(32, 32), batch_size=64, learning_starts=200, total_steps=1200, eval_interval=600,
                     eval_episodes=2, noise="ou", seed=0 if arg == "group" else int(arg.split(":")[0]))
    variant = arg.split(":")[1] if ":" in arg else ""
    if variant == "autograd":
        cfg = cfg.replace(backward="autograd")
    elif variant == "pf2":
        cfg = cfg.replace(policy_frequency=2, learning_starts=201)
    elif variant.startswith("bf16"):
        cfg = cfg.replace(precision="bf16", backward="autograd" if variant.endswith("autograd") else "handwritten")
    if arg == "group":
        from ddpgkit import DDPGGroup
        agents = DDPGGroup.create("Pendulum-v1", cfg, seeds=[0, 1, 2]).learn_until(1200).members
    else:
        agents = [DDPG("Pendulum-v1", cfg).learn(1200)]
    h = hashlib.sha256()
    for agent in agents:
        for name, t in sorted(agent.model_tensors().items()):
            h.update(name.encode()); h.update(t.numpy().tobytes())
        for row in agent.trainer.history:  # the metrics rows, losses and health signals included, but not the clock
            # and not the columns a row leaves empty (None), so that a column added later (issue 25's success
            # rates, None on Pendulum) does not change the fingerprint of the same numbers
            h.update(repr(sorted((k, v) for k, v in row.items()
                                 if k not in ("steps_per_s", "wall_s") and v is not None)).encode())
    print(h.hexdigest()[:16])
'''


def run(tree: Path, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    return p.stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="HEAD~1", help="git revision to compare this working tree against")
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=1500, help="timed env steps per loop run")
    p.add_argument("--group", type=int, default=5, help="seeds of the group loop measured (0: none)")
    p.add_argument("--fingerprints-only", action="store_true", help="only the final weights, no timing")
    a = p.parse_args()
    base_rev = subprocess.run(["git", "rev-parse", "--short", a.base], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    head_rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="ddpgkit-base-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(tmp / "tree"), a.base], cwd=ROOT, check=True,
                   capture_output=True)
    trees = {"base": tmp / "tree", "this": ROOT}
    try:
        print(f"machine: {machine()}")
        print(f"base {a.base} = {base_rev}; this tree = {head_rev}{' + uncommitted changes in src/' if dirty else ''}; "
              f"fresh process per measurement, alternating base / this, 1 core, 1 torch thread\n")
        rows = []
        for size in ([] if a.fingerprints_only else a.sizes):
            res: dict[str, list[float]] = {"base": [], "this": []}
            for _ in range(a.reps):
                for name, tree in trees.items():
                    res[name].append(float(run(tree, "loop", size, str(a.steps))))
            ratio = [t / b for t, b in zip(res["this"], res["base"])]
            rows.append([size.replace(",", "-") + " env steps/s", spread(res["base"]), spread(res["this"]),
                         spread(ratio, "{:.2f}")])
            print(table(["measure", "base", "this", "this / base"], rows[-1:]).splitlines()[-1], flush=True)
        if a.group and not a.fingerprints_only:
            res = {"base": [], "this": []}
            for _ in range(a.reps):
                for name, tree in trees.items():
                    res[name].append(float(run(tree, "grouploop", str(a.group), str(a.steps))))
            ratio = [t / b for t, b in zip(res["this"], res["base"])]
            rows.append([f"group of {a.group}, 64-64, env steps/s", spread(res["base"]), spread(res["this"]),
                         spread(ratio, "{:.2f}")])
            print(table(["measure", "base", "this", "this / base"], rows[-1:]).splitlines()[-1], flush=True)
        upd: dict[str, list[tuple[float, float]]] = {"base": [], "this": []}
        for _ in range(0 if a.fingerprints_only else a.reps):
            for name, tree in trees.items():
                u, ad = run(tree, "update", "", "1000").split()
                upd[name].append((float(u), float(ad)))
        for i, label in enumerate(["64-64 update (µs)", "one Adam step (µs)"]):
            b, t = [x[i] for x in upd["base"]], [x[i] for x in upd["this"]]
            if b:
                rows.append([label, spread(b), spread(t), spread([y / x for x, y in zip(b, t)], "{:.2f}")])
        if rows:
            print()
            print(table(["measure", "base", "this", "this / base"], rows))
            print("\nvalues: median (min–max) over repetitions")
        print("\na 1200-step run, SHA-256 of its final networks and its metrics rows but wall times (OU noise; "
              "seeds 0-2 with the default update, seed 0 with backward = autograd, with policy_frequency = 2 and where "
              "the CPU has bfloat16 with precision = bf16 on both paths, and seeds 0-2 as one group):")
        bf16 = ("0:bf16", "0:bf16-autograd") if cpu_has_bf16() else ()
        for arg in ("0", "1", "2", "0:autograd", "0:pf2", *bf16, "group"):
            fp = {name: run(tree, "fingerprint", arg, "0") for name, tree in trees.items()}
            verdict = "identical" if fp["base"] == fp["this"] else "DIFFERENT"
            label = {"0:autograd": "seed 0, autograd", "0:pf2": "seed 0, policy_frequency 2", "0:bf16": "seed 0, bf16",
                     "0:bf16-autograd": "seed 0, bf16 autograd", "group": "group of seeds 0-2"}.get(arg, f"seed {arg}")
            print(f"  {label}: base {fp['base']}  this {fp['this']}  {verdict}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "tree")], cwd=ROOT, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
