"""The chapter's 100-step fit through ddpgkit.fit against the plain PyTorch loop written as in the
chapter: same seed, same data, same thread count, alternating A B.

    .venv/bin/python benchmarks/fit.py [--reps 20] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn, optim

from common import machine, set_threads, spread, table


class Network(nn.Module):  # the chapter's class
    def __init__(self) -> None:
        super().__init__()
        self.linear0 = nn.Linear(1, 256)
        self.relu0 = nn.ReLU()
        self.linear1 = nn.Linear(256, 256)
        self.relu1 = nn.ReLU()
        self.linear2 = nn.Linear(256, 1)

    def forward(self, x):
        h0 = self.relu0(self.linear0(x))
        h1 = self.relu1(self.linear1(h0))
        return self.linear2(h1)


def plain(steps: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    f = Network()
    x_t = torch.linspace(-torch.pi, torch.pi, 20)[..., None]
    y_t = torch.sin(x_t)
    optimizer = optim.Adam(f.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.mse_loss(f(x_t), y_t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0, loss.item()


def ours(steps: int, seed: int) -> tuple[float, float]:
    from ddpgkit import fit, make_dataset

    r = fit(make_dataset(), steps=steps, seed=seed)
    return r.seconds, r.losses[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--steps", type=int, default=100)
    a = p.parse_args()
    print(f"machine: {machine()}\n")
    rows = []
    for threads in (1, 2):
        set_threads(threads)
        torch.set_flush_denormal(True)
        ts_plain, ts_ours = [], []
        for rep in range(a.reps):
            tp, lp = plain(a.steps, rep)
            to, lo = ours(a.steps, rep)
            assert abs(lp - lo) <= 1e-4 * max(abs(lp), 1e-6) + 1e-7, (lp, lo)  # the same experiment
            ts_plain.append(tp * 1000)
            ts_ours.append(to * 1000)
        ratio = [o / q for o, q in zip(ts_ours, ts_plain)]
        rows.append([threads, spread(ts_plain, "{:.1f}"), spread(ts_ours, "{:.1f}"), spread(ratio, "{:.3f}")])
    print(table(["threads", "plain loop (ms)", "ddpgkit.fit (ms)", "ddpgkit / plain"], rows))
    print(f"\n{a.steps} steps, median (min–max) over {a.reps} seeds, the losses of both agree on every seed")


if __name__ == "__main__":
    main()
