"""What the health signals (issue 13) cost an update.

One process, one torch thread, batch 256 on a fixed batch of Pendulum-v1's shapes: DDPG.update with
``health_interval`` 0 (never measured), 10 (the default) and 1 (every update), the three agents
measured in turn, ``--reps`` rounds of ``--updates`` updates each; median and range of µs per update.
The three agents start from the same weights and take the same steps, so every round measures the
same work apart from the signals.

    .venv/bin/python benchmarks/health_cost.py [--sizes 64,64 256,256] [--reps 15] [--updates 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.runtime import configure_torch

from common import machine, spread, table

INTERVALS = (0, 10, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256"])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--updates", type=int, default=300)
    a = p.parse_args()
    configure_torch(1)
    print(machine())
    rows = []
    for size in a.sizes:
        hidden = tuple(int(h) for h in size.split(","))
        agents = {k: DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, health_interval=k), seed=0) for k in INTERVALS}
        rows_t = torch.randn(256, agents[0].buffer.width, generator=torch.Generator().manual_seed(0))
        rows_t[:, -2:] = 0.0
        batch = agents[0].buffer.split(rows_t)
        times: dict[int, list[float]] = {k: [] for k in INTERVALS}
        for _ in range(a.reps):
            for k, agent in agents.items():
                for _ in range(20):
                    agent.update(batch)
                t0 = time.perf_counter()
                for _ in range(a.updates):
                    agent.update(batch)
                times[k].append((time.perf_counter() - t0) / a.updates * 1e6)
        base = statistics.median(times[0])
        for k in INTERVALS:
            med = statistics.median(times[k])
            rows.append([size, k if k else "0 (never)", spread(times[k]), f"{med / base:.3f}"])
    print(table(["networks", "health_interval", "µs per update, median (min–max)", "/ never"], rows))


if __name__ == "__main__":
    main()
