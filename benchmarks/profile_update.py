"""Where the time of one DDPG update goes.

Two measurements per network size, batch 256, one thread:
  * the update's wall time (ddpgkit's DDPG.update on a fixed batch), and
  * the same update's matrix products alone: every forward product, weight gradient and input
    gradient that the update computes, run as bare torch.mm calls on matrices of the same shapes.
The difference is everything else: element-wise kernels (activations, their derivatives, the loss,
bias gradients), copies, Adam, the soft update, and the dispatch and autograd bookkeeping of a few
hundred small operations. (torch.profiler was tried and dropped: its own per-op cost doubles the
update's time and distorts exactly the small operations that matter here.)

    .venv/bin/python benchmarks/profile_update.py [--sizes 64,64 256,256 400,300]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import machine, table

B = 256


def products(obs: int, act: int, hidden: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(M, K, N) of every matrix product in one DDPG update (critic step, then actor step)."""
    actor = [obs, *hidden, act]
    critic = [obs + act, *hidden, 1]

    def fwd(sizes):
        return [(B, i, o) for i, o in zip(sizes[:-1], sizes[1:])]

    def grad_w(sizes):  # dW = dyᵀ x
        return [(o, B, i) for i, o in zip(sizes[:-1], sizes[1:])]

    def grad_x(sizes, first: bool):  # dx = dy W, for every layer whose input needs a gradient
        layers = list(zip(sizes[:-1], sizes[1:]))
        return [(B, o, i) for n, (i, o) in enumerate(layers) if n > 0 or first]

    critic_step = fwd(actor) + fwd(critic) + fwd(critic) + grad_w(critic) + grad_x(critic, False)
    actor_step = fwd(actor) + fwd(critic) + grad_x(critic, True) + grad_w(actor) + grad_x(actor, False)
    return critic_step + actor_step


def time_it(fn, seconds: float = 1.0) -> float:
    for _ in range(20):
        fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"])
    a = p.parse_args()
    from ddpgkit import DDPG, DDPGConfig
    from ddpgkit.runtime import configure_torch

    configure_torch(1)
    print(f"machine: {machine()}; 1 thread, batch {B}, Pendulum-v1 (obs 3, action 1)\n")
    rows = []
    for size in a.sizes:
        hidden = tuple(int(x) for x in size.split(","))
        agent = DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, batch_size=B, learning_starts=0))
        batch = agent.buffer.split(torch.randn(B, agent.buffer.width, generator=torch.Generator().manual_seed(0)))
        update = time_it(lambda agent=agent, batch=batch: agent.update(batch), 2.0)
        shapes = products(agent.obs_dim, agent.act_dim, hidden)
        mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]

        def all_products(mats=mats):
            for x, w in mats:
                torch.mm(x, w)

        mm = time_it(all_products, 2.0)
        flops = sum(2 * m * k * n for m, k, n in shapes)
        rows.append([size.replace(",", "-"), f"{update:.0f}", len(shapes), f"{mm:.0f}", f"{100 * mm / update:.0f}%",
                     f"{update - mm:.0f}", f"{flops / mm / 1e3:.0f}"])
    print(table(["networks", "update (µs)", "matrix products", "their time (µs)", "share", "everything else (µs)",
                 "GFLOP/s in the products"], rows))


if __name__ == "__main__":
    main()
