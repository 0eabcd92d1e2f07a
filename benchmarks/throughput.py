"""Training throughput on Pendulum-v1: ddpgkit against SBX (JAX) and Stable-Baselines3, same hyperparameters.

The protocol of issue 12: H-H ReLU networks, batch 256, Adam 1e-3 for both networks, γ 0.99, τ 0.005,
one update per env step (the actor every step), Gaussian noise σ 0.1, a 100k buffer; 1000 random steps,
then ``--warmup-updates`` untimed steps (so that JIT compilation — SBX's XLA, ddpgkit's optional
``--compile`` — is excluded), then ``--steps`` timed steps. Every run is a fresh process pinned to one
core with one intra-op thread for torch and for XLA (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``); the libraries alternate within each repetition. The 'update
alone' column is ddpgkit's update on a fixed random batch, in the same kind of process: the ceiling
the loop approaches.

    .venv/bin/python benchmarks/throughput.py [--sizes 64,64 256,256 400,300] [--reps 3]
        [--steps 3000] [--libs ddpgkit sbx sb3] [--core 0] [--busy] [--precision fp32|bf16] [--compile]

Needs the benchmark-only dependencies: pip install -c constraints.txt stable-baselines3 sbx-rl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import busy_core, machine, table  # noqa: E402

LEARNING_STARTS = 1000
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

CHILD = r'''
import json, os, sys, time
lib, size, seed, steps, warm, starts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), int(sys.argv[6])
precision, compile_ = sys.argv[7], sys.argv[8] == "1"
hidden = tuple(int(x) for x in size.split(","))
import numpy as np
import torch
torch.set_num_threads(1)
first, last = starts + warm, starts + warm + steps
marks = {}
if lib == "ddpgkit":
    from ddpgkit import DDPG, Callback, DDPGConfig
    cfg = DDPGConfig(hidden=hidden, batch_size=256, actor_lr=1e-3, critic_lr=1e-3, gamma=0.99, tau=0.005,
                     learning_starts=starts, total_steps=last, noise="gaussian", noise_scale=0.05,  # 0.05 x scale 2
                     buffer_size=100_000, eval_interval=0, eval_episodes=1, threads=1, seed=seed,
                     precision=precision, compile=compile_)

    class Clock(Callback):
        def on_step(self, trainer):
            if trainer.step in (first, last):
                marks[trainer.step] = time.perf_counter()

    DDPG("Pendulum-v1", cfg).learn(callback=Clock())
elif lib in ("sb3", "sbx"):
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise
    if lib == "sb3":
        from stable_baselines3 import DDPG as Algo
        rates = {"learning_rate": 1e-3}
    else:
        from sbx import DDPG as Algo
        rates = {"learning_rate": 1e-3, "qf_learning_rate": 1e-3}

    class Clock(BaseCallback):
        def _on_step(self):
            if self.num_timesteps in (first, last):
                marks[self.num_timesteps] = time.perf_counter()
            return True

    model = Algo("MlpPolicy", "Pendulum-v1", buffer_size=100_000, learning_starts=starts, batch_size=256,
                 tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1,
                 action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
                 policy_kwargs={"net_arch": list(hidden)}, seed=seed, device="cpu", verbose=0, **rates)
    model.learn(last, callback=Clock())
else:  # ddpgkit's update alone, on a fixed random batch
    from ddpgkit import DDPG, DDPGConfig
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, batch_size=256, learning_starts=0, threads=1,
                                           precision=precision, compile=compile_))
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(256, agent.buffer.width, generator=g)
    rows[:, -2:] = (rows[:, -2:] > 1.5).float()
    batch = agent.buffer.split(rows)
    for _ in range(warm):
        agent.update(batch)
    marks[first] = time.perf_counter()
    for _ in range(steps):
        agent.update(batch)
    marks[last] = time.perf_counter()
print(json.dumps({"per_s": steps / (marks[last] - marks[first])}))
'''


def measure(lib: str, size: str, seed: int, a: argparse.Namespace) -> float:
    env = dict(os.environ, XLA_FLAGS=XLA_FLAGS, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    cmd = ["taskset", "-c", str(a.core), sys.executable, "-c", CHILD, lib, size, str(seed), str(a.steps),
           str(a.warmup_updates), str(LEARNING_STARTS), a.precision, "1" if a.compile else "0"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"{lib} {size} seed {seed} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])["per_s"]


def peer_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("stable-baselines3", "sbx-rl", "jax", "jaxlib"):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} not installed")
    return ", ".join(out)


def ddpgkit_steps_per_s(hidden: tuple[int, ...], steps: int, seed: int, precision: str = "fp32",
                        compile: bool = False, device: str = "cpu") -> float:
    """In this process (gpu.py's measurement): env steps/s after LEARNING_STARTS and one update."""
    import time

    from ddpgkit import DDPG, Callback, DDPGConfig

    cfg = DDPGConfig(hidden=hidden, batch_size=256, actor_lr=1e-3, critic_lr=1e-3, gamma=0.99, tau=0.005,
                     learning_starts=LEARNING_STARTS, total_steps=LEARNING_STARTS + 1 + steps, noise="gaussian",
                     noise_scale=0.05, buffer_size=100_000, eval_interval=0, eval_episodes=1, threads=0, seed=seed,
                     precision=precision, compile=compile, device=device)
    marks: dict[int, float] = {}
    first, last = LEARNING_STARTS + 1, LEARNING_STARTS + 1 + steps

    class Clock(Callback):
        def on_step(self, trainer):
            if trainer.step in (first, last):
                marks[trainer.step] = time.perf_counter()

    DDPG("Pendulum-v1", cfg).learn(callback=Clock())
    return steps / (marks[last] - marks[first])


NAMES = {"ddpgkit": "ddpgkit", "sbx": "SBX (JAX)", "sb3": "SB3", "update": "ddpgkit update alone"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"])
    p.add_argument("--libs", nargs="+", default=["ddpgkit", "sbx", "sb3", "update"], choices=list(NAMES))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=3000, help="timed env steps per run")
    p.add_argument("--warmup-updates", type=int, default=300, help="untimed steps with updates before the timing")
    p.add_argument("--core", type=int, default=0, help="the core every run is pinned to")
    p.add_argument("--busy", action="store_true", help="keep a second process spinning on the other core")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="ddpgkit's precision switch")
    p.add_argument("--compile", action="store_true", help="ddpgkit's compile switch (compile time not counted)")
    a = p.parse_args()
    print(f"machine: {machine()}")
    print(f"peers: {peer_versions()}")
    print(f"Pendulum-v1, batch 256, 1 update per step; {LEARNING_STARTS} random steps, {a.warmup_updates} untimed "
          f"steps with updates, {a.steps} timed steps; fresh process per run pinned to core {a.core}, 1 thread "
          f"(torch and XLA); {a.reps} repetitions alternating {' '.join(a.libs)}; "
          f"{'a busy process on the other core' if a.busy else 'the other core idle'}; ddpgkit {a.precision}"
          f"{', compiled' if a.compile else ''}; env steps/s (update alone: updates/s), median [min, max]\n")
    header = ["networks", *(NAMES[lib] for lib in a.libs)]
    if "ddpgkit" in a.libs and "sbx" in a.libs:
        header.append("ddpgkit / SBX")
    if "ddpgkit" in a.libs and "sb3" in a.libs:
        header.append("ddpgkit / SB3")
    rows = []
    with busy_core(a.busy):
        for size in a.sizes:
            res: dict[str, list[float]] = {lib: [] for lib in a.libs}
            for rep in range(a.reps):
                for lib in a.libs:
                    res[lib].append(measure(lib, size, rep, a))
            row = [size.replace(",", "-"), *(_range(res[lib]) for lib in a.libs)]
            for other in ("sbx", "sb3"):
                if "ddpgkit" in a.libs and other in a.libs:
                    row.append(_range([x / y for x, y in zip(res["ddpgkit"], res[other])], "{:.2f}"))
            rows.append(row)
            print(table(header, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(header, rows))


def _range(xs: list[float], fmt: str = "{:.0f}") -> str:
    """'median [min, max]', the issue's format."""
    return f"{fmt.format(statistics.median(xs))} [{fmt.format(min(xs))}, {fmt.format(max(xs))}]"


if __name__ == "__main__":
    main()
