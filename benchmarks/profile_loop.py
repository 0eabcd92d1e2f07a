"""Where the time of one training-loop step goes, inside the loop and alone.

Trains ddpgkit on Pendulum-v1 (the throughput benchmark's hyperparameters) with the agent's parts
wrapped in timers — acting (``explore``), ``env.step``, ``buffer.add``, ``buffer.sample`` and the
update — and prints their mean cost per env step inside the loop next to the cost of the same call
repeated alone (warm caches). The difference between the two columns is what interleaving costs:
each part runs after the others have pushed its code and data out of the CPU's caches.

    .venv/bin/python benchmarks/profile_loop.py [--sizes 64,64 256,256] [--steps 2000]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter

from common import machine, table

LEARNING_STARTS = 500


def alone(fn, n: int) -> float:
    for _ in range(20):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def profile(hidden: tuple[int, ...], steps: int) -> list[list[str]]:
    """Table rows: each part's µs per env step inside the loop, and per call alone."""
    from ddpgkit import DDPG, DDPGConfig
    from ddpgkit.errors import NoLearningWarning

    cfg = DDPGConfig(hidden=hidden, batch_size=256, gamma=0.99, tau=0.005, learning_starts=LEARNING_STARTS,
                     noise_scale=0.05, buffer_size=100_000, eval_interval=0, eval_episodes=1, seed=0,
                     total_steps=LEARNING_STARTS + steps)
    agent = DDPG("Pendulum-v1", cfg)
    with warnings.catch_warnings():  # this first call only fills the buffer, on purpose
        warnings.simplefilter("ignore", NoLearningWarning)
        agent.learn(LEARNING_STARTS)
    spent: Counter[str] = Counter()
    parts = {"explore (act)": (agent, "explore"), "env.step": (agent.env, "step"),
             "buffer.add": (agent.buffer, "add"), "buffer.sample": (agent.buffer, "sample"),
             "update": (agent, "update")}
    for label, (obj, name) in parts.items():
        fn = getattr(obj, name)

        def timed(*args, _fn=fn, _label=label, **kwargs):
            t0 = time.perf_counter()
            out = _fn(*args, **kwargs)
            spent[_label] += time.perf_counter() - t0
            return out

        setattr(obj, name, timed)
    t0 = time.perf_counter()
    agent.learn(steps)  # `steps` more env steps (the final evaluation acts through `act`, not timed here)
    total = time.perf_counter() - t0
    for obj, name in parts.values():
        delattr(obj, name)  # back to the class's methods
    obs, _ = agent.env.reset(seed=0)
    action = agent.explore(obs)
    batch = agent.buffer.sample(256)
    n = 1000 if hidden[0] <= 64 else 200
    solo = {
        "explore (act)": alone(lambda: agent.explore(obs), n),
        "env.step": alone(lambda: agent.env.step(action)[3] and agent.env.reset(), n),
        "buffer.add": alone(lambda: agent.buffer.add(obs, action, 0.0, obs, False, False), n),
        "buffer.sample": alone(lambda: agent.buffer.sample(256), n),
        "update": alone(lambda: agent.update(batch), n),
    }
    rows = [[label, f"{spent[label] / steps * 1e6:.0f}", f"{solo[label]:.0f}"] for label in parts]
    rest = total - sum(spent.values())
    rows.append(["the loop itself (counters, checks, callbacks)", f"{rest / steps * 1e6:.0f}", ""])
    rows.append(["one env step", f"{total / steps * 1e6:.0f}", f"{sum(solo.values()):.0f}"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256"])
    p.add_argument("--steps", type=int, default=2000)
    a = p.parse_args()
    from ddpgkit.runtime import configure_torch

    configure_torch(1)
    print(f"machine: {machine()}; 1 thread, batch 256, Pendulum-v1, {a.steps} steps after {LEARNING_STARTS} "
          "warm-up steps\n")
    for size in a.sizes:
        print(f"networks {size.replace(',', '-')}")
        print(table(["part", "µs per step, in the loop", "µs per call, alone"],
                    profile(tuple(int(x) for x in size.split(",")), a.steps)))
        print()
    print("in the loop: wall time per env step of each part (the final evaluation episode included); alone: the same "
          "call repeated with warm caches")


if __name__ == "__main__":
    main()
