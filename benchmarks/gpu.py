"""ddpgkit on a CUDA GPU: updates/s on a fixed batch and training env steps/s on Pendulum-v1 (the
hyperparameters of throughput.py), per network size, precision and compile switch.

    python benchmarks/gpu.py [--sizes 64,64 256,256 400,300] [--reps 3]

Only for machines with a CUDA GPU; the numbers in benchmarks/README.md came from a lent H100.
"""

from __future__ import annotations

import argparse
import time

import torch

from common import spread, table
from throughput import ddpgkit_steps_per_s

B = 256


def updates_per_s(hidden: tuple[int, ...], precision: str, compiled: bool, reps: int) -> tuple[list[float], float]:
    from ddpgkit import DDPG, DDPGConfig

    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, batch_size=B, learning_starts=0, device="cuda",
                                           precision=precision, compile=compiled))
    rows = torch.randn(B, agent.buffer.width, generator=torch.Generator().manual_seed(0))
    rows[:, -2:] = (rows[:, -2:] > 1.5).float()
    batch = agent.buffer.split(rows.to(agent.device))
    t0 = time.perf_counter()
    agent.update(batch)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    rates = []
    for _ in range(reps):
        for _ in range(20):
            agent.update(batch)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(500):
            agent.update(batch)
        torch.cuda.synchronize()
        rates.append(500 / (time.perf_counter() - t0))
    return rates, first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"])
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here")
    print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}\n")
    rows = []
    for size in a.sizes:
        hidden = tuple(int(x) for x in size.split(","))
        for precision, compiled in (("fp32", False), ("bf16", False), ("fp32", True)):
            rates, first = updates_per_s(hidden, precision, compiled, a.reps)
            loop = ddpgkit_steps_per_s(hidden, 1500, 0, precision, compiled, device="cuda")
            rows.append([size.replace(",", "-"), precision, "yes" if compiled else "no", spread(rates), f"{loop:.0f}",
                         f"{first:.1f}"])
            print(table(["networks", "precision", "compile", "updates/s alone", "env steps/s", "first update (s)"],
                        rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(["networks", "precision", "compile", "updates/s alone", "env steps/s", "first update (s)"], rows))


if __name__ == "__main__":
    main()
