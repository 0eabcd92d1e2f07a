"""Wall-clock seconds, process start included, until the deterministic evaluation (10 episodes,
every 1000 steps) first reaches -200 on Pendulum-v1.

Three contenders, one torch thread each, run one after another as separate processes:
  ddpgkit     the `pendulum` preset (64-64, 500 warm-up steps, γ 0.98, Adam 1e-3, Gaussian 0.1·scale)
  sb3-fast    Stable-Baselines3 DDPG tuned for speed: 64-64, learning_starts 1000, γ 0.98, lr 1e-3,
              Gaussian σ 0.1, batch 256
  sb3-zoo     Stable-Baselines3 DDPG with rl-baselines3-zoo's Pendulum-v1 recipe: 400-300,
              learning_starts 10000, γ 0.98, lr 1e-3, Gaussian σ 0.1, buffer 200000, 20k steps

    .venv/bin/python benchmarks/time_to_solve.py [--seeds 5] [--only ddpgkit sb3-fast sb3-zoo]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import machine, spread, table

CONTENDERS = ("ddpgkit", "sb3-fast", "sb3-zoo")
MAX_STEPS = 20_000


def child(kind: str, seed: int) -> None:
    """Train until solved; print 'SOLVED <unix time> <step>' or 'UNSOLVED'."""
    import torch

    torch.set_num_threads(1)
    if kind == "ddpgkit":
        from ddpgkit import DDPG, Callback, DDPGConfig

        class Stop(Callback):
            solved = False

            def on_eval(self, trainer, returns):
                if returns.mean() >= -200 and not self.solved:
                    self.solved = True
                    print(f"SOLVED {time.time()} {trainer.step}", flush=True)

            def on_step(self, trainer):
                return not self.solved

        cfg = DDPGConfig.preset("pendulum", seed=seed, eval_interval=1000, eval_episodes=10, total_steps=MAX_STEPS)
        stop = Stop()
        DDPG("Pendulum-v1", cfg).learn(callback=stop)
        if not stop.solved:
            print("UNSOLVED", flush=True)
        return

    import numpy as np
    from stable_baselines3 import DDPG as SB3DDPG
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise

    if kind == "sb3-fast":
        kw = dict(policy_kwargs={"net_arch": [64, 64]}, learning_starts=1000, buffer_size=200_000)
    else:
        kw = dict(policy_kwargs={"net_arch": [400, 300]}, learning_starts=10_000, buffer_size=200_000)
    model = SB3DDPG("MlpPolicy", "Pendulum-v1", gamma=0.98, learning_rate=1e-3, batch_size=256, train_freq=1,
                    gradient_steps=1, action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)), seed=seed,
                    device="cpu", verbose=0, **kw)

    class Report(StopTrainingOnRewardThreshold):
        def _on_step(self) -> bool:
            keep_going = super()._on_step()
            if not keep_going:
                print(f"SOLVED {time.time()} {self.num_timesteps}", flush=True)
            return keep_going

    eval_env = make_vec_env("Pendulum-v1", n_envs=1, seed=seed + 10_000)
    cb = EvalCallback(eval_env, callback_on_new_best=Report(reward_threshold=-200, verbose=0), eval_freq=1000,
                      n_eval_episodes=10, deterministic=True, verbose=0)
    model.learn(MAX_STEPS, callback=cb)
    if not cb.callback_on_new_best.parent or cb.best_mean_reward < -200:
        print("UNSOLVED", flush=True)


def run(kind: str, seed: int) -> tuple[float | None, int | None]:
    start = time.time()
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--seed", str(seed)], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("SOLVED"):
            _, t, step = line.split()
            return float(t) - start, int(step)
    return None, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--only", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    p.add_argument("--child", choices=CONTENDERS)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.child:
        child(a.child, a.seed)
        return
    print(f"machine: {machine()}\n")
    results: dict[str, list[tuple[float | None, int | None]]] = {k: [] for k in a.only}
    for seed in range(a.seeds):
        for kind in a.only:
            results[kind].append(run(kind, seed))
            t, s = results[kind][-1]
            print(f"seed {seed} {kind}: " + (f"{t:.1f} s, solved at step {s}" if t is not None else "not solved"),
                  flush=True)
    rows = []
    for kind, rs in results.items():
        times = [t for t, _ in rs if t is not None]
        steps = [s for _, s in rs if s is not None]
        rows.append([kind, f"{len(times)}/{len(rs)}", spread(times, "{:.1f}") if times else "—",
                     spread(steps, "{:.0f}") if steps else "—",
                     ", ".join(f"{t:.1f}" if t is not None else "—" for t, _ in rs)])
    print()
    print(table(["contender", "solved", "seconds to -200: median (min–max)", "steps", "per seed (s)"], rows))


if __name__ == "__main__":
    main()
