"""Training throughput on Pendulum-v1: ddpgkit against Stable-Baselines3's DDPG, same hyperparameters.

Both run 256-256 (or the sizes given) ReLU networks, batch 256, Adam 1e-3, γ 0.99, τ 0.005, one
update per env step with the actor updated every step, Gaussian noise σ = 0.1 (absolute), with the
same torch thread count, alternating A B A B in one process. Only the steps after learning_starts
are timed. The 'update alone' row is ddpgkit's update on a fixed random batch: its ceiling, so the
loop's overhead shows.

    .venv/bin/python benchmarks/throughput.py [--sizes 64,64 256,256 400,300] [--threads 1 2]
        [--reps 3] [--steps 2000] [--busy]

Needs the optional benchmark dependency: pip install stable-baselines3.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import busy_core, machine, set_threads, spread, table

LEARNING_STARTS = 500


def ddpgkit_steps_per_s(hidden: tuple[int, ...], steps: int, seed: int, precision: str = "fp32",
                        compile: bool = False, device: str = "cpu") -> float:
    from ddpgkit import DDPG, Callback, DDPGConfig

    cfg = DDPGConfig(hidden=hidden, batch_size=256, actor_lr=1e-3, critic_lr=1e-3, gamma=0.99, tau=0.005,
                     learning_starts=LEARNING_STARTS, total_steps=LEARNING_STARTS + 1 + steps, noise="gaussian",
                     noise_scale=0.05, buffer_size=100_000, eval_interval=0, eval_episodes=1, threads=0, seed=seed,
                     precision=precision, compile=compile, device=device)
    marks: dict[int, float] = {}
    first, last = LEARNING_STARTS + 1, LEARNING_STARTS + 1 + steps  # from after the first update (compiles)

    class Clock(Callback):
        def on_step(self, trainer):
            if trainer.step in (first, last):
                marks[trainer.step] = time.perf_counter()

    DDPG("Pendulum-v1", cfg).learn(callback=Clock())
    return steps / (marks[last] - marks[first])


def sb3_steps_per_s(hidden: tuple[int, ...], steps: int, seed: int) -> float:
    from stable_baselines3 import DDPG as SB3DDPG
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    marks: dict[int, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps in (LEARNING_STARTS, LEARNING_STARTS + steps):
                marks[self.num_timesteps] = time.perf_counter()
            return True

    model = SB3DDPG("MlpPolicy", "Pendulum-v1", learning_rate=1e-3, buffer_size=100_000,
                    learning_starts=LEARNING_STARTS, batch_size=256, tau=0.005, gamma=0.99, train_freq=1,
                    gradient_steps=1, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
                    policy_kwargs={"net_arch": list(hidden)}, seed=seed, device="cpu", verbose=0)
    model.learn(LEARNING_STARTS + steps, callback=Clock())
    return steps / (marks[LEARNING_STARTS + steps] - marks[LEARNING_STARTS])


def update_alone_per_s(hidden: tuple[int, ...], updates: int, precision: str = "fp32", compile: bool = False) -> float:
    from ddpgkit import DDPG, DDPGConfig

    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, batch_size=256, learning_starts=0, threads=0,
                                           precision=precision, compile=compile))
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(256, agent.buffer.width, generator=g)
    rows[:, -2:] = (rows[:, -2:] > 1.5).float()
    batch = agent.buffer.split(rows)
    for _ in range(50):
        agent.update(batch)
    t0 = time.perf_counter()
    for _ in range(updates):
        agent.update(batch)
    return updates / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=2000, help="timed env steps per run (after learning_starts)")
    p.add_argument("--busy", action="store_true", help="keep a second process spinning on the other core")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="ddpgkit's precision switch")
    p.add_argument("--compile", action="store_true", help="ddpgkit's compile switch (compile time not counted: "
                   "the timed steps start after the warm-up; see compile.py for it)")
    a = p.parse_args()
    print(f"machine: {machine()}")
    print(f"Pendulum-v1, batch 256, 1 update per step, {a.steps} timed steps after {LEARNING_STARTS} warm-up steps, "
          f"{a.reps} repetitions alternating A B; {'a busy process on the other core' if a.busy else 'quiet machine'}; "
          f"ddpgkit precision {a.precision}{', compiled' if a.compile else ''} (SB3 fp32, eager)")
    print()
    rows = []
    with busy_core(a.busy):
        for size in a.sizes:
            hidden = tuple(int(x) for x in size.split(","))
            for threads in a.threads:
                set_threads(threads)
                ours, theirs, ceiling = [], [], []
                for rep in range(a.reps):
                    ours.append(ddpgkit_steps_per_s(hidden, a.steps, rep, a.precision, a.compile))
                    theirs.append(sb3_steps_per_s(hidden, a.steps, rep))
                    ceiling.append(update_alone_per_s(hidden, a.steps // 2, a.precision, a.compile))
                ratio = [o / t for o, t in zip(ours, theirs)]
                overhead = [c / o - 1 for c, o in zip(ceiling, ours)]
                rows.append([size.replace(",", "-"), threads, spread(theirs), spread(ours), spread(ratio, "{:.2f}×"),
                             spread(ceiling), spread([100 * x for x in overhead], "{:.0f}%")])
                print(table(["networks", "threads", "SB3 steps/s", "ddpgkit steps/s", "ddpgkit / SB3",
                             "ddpgkit update alone /s", "loop overhead"], rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(["networks", "threads", "SB3 steps/s", "ddpgkit steps/s", "ddpgkit / SB3",
                 "ddpgkit update alone /s", "loop overhead"], rows))
    print("\nvalues: median (min–max) over repetitions; loop overhead = update-alone rate / loop rate − 1")


if __name__ == "__main__":
    main()
