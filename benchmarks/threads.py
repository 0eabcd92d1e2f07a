"""The thread policy, measured: DDPG updates/s and the chapter's 100-step fit with 1 and 2 torch
threads, on a quiet machine and with a second busy process on the other core.

    .venv/bin/python benchmarks/threads.py [--reps 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import busy_core, machine, set_threads, spread, table


def updates_per_s(hidden: tuple[int, ...], seconds: float = 1.5) -> float:
    from ddpgkit import DDPG, DDPGConfig

    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, batch_size=256, learning_starts=0, threads=0))
    rows = torch.randn(256, agent.buffer.width, generator=torch.Generator().manual_seed(0))
    batch = agent.buffer.split(rows)
    for _ in range(10):
        agent.update(batch)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        agent.update(batch)
        n += 1
    return n / (time.perf_counter() - t0)


def fit_seconds() -> float:
    from ddpgkit import fit, make_dataset

    return fit(make_dataset(), steps=100, seed=0).seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_flush_denormal(True)
    print(f"machine: {machine()}\n")
    rows = []
    for busy in (False, True):
        with busy_core(busy):
            for threads in (1, 2):
                set_threads(threads)
                u64, u256, fits = [], [], []
                for _ in range(a.reps):
                    u64.append(updates_per_s((64, 64)))
                    u256.append(updates_per_s((256, 256)))
                    fits.append(fit_seconds() * 1000)
                rows.append(["busy" if busy else "quiet", threads, spread(u64), spread(u256), spread(fits, "{:.0f}")])
                print(table(["machine", "threads", "updates/s 64-64", "updates/s 256-256", "100-step fit (ms)"],
                            rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(["machine", "threads", "updates/s 64-64", "updates/s 256-256", "100-step fit (ms)"], rows))
    print(f"\nmedian (min–max) over {a.reps} repetitions; busy = a second process spinning on the other core")


if __name__ == "__main__":
    main()
