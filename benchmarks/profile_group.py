"""Where the time of a group's update goes (ddpgkit.agents.group.DDPGGroup, issue 12).

Two tables, one thread, the `pendulum` preset's update with the networks of --hidden:

1. the update's wall time (median of --reps × 30 updates on a fixed batch) for N stacked agents and batch
   size B, and its cost per agent-row, (time - time at the smallest N·B) / (N·B - smallest N·B): if
   that slope stays flat while N·B grows past what fits the core's L2 cache, the update is paced by
   work per element, not by a cache cliff;
2. the update's operations at one N (recorded with a TorchDispatchMode during one update), each re-run
   alone on the same tensors (warm caches, no Python in between): which kernels the time is made of,
   and how far the sum of the parts is from the whole (the difference: operands out of cache when
   they run in sequence, and the Python and dispatch between the ~200 calls).

    .venv/bin/python benchmarks/profile_group.py [--hidden 64,64] [--ns 1 5 10] [--batches 32 64 128 256]
        [--n 10] [--reps 5]

With ``--loop``, instead: where a group's env step goes in training (the `pendulum` preset, --steps steps
with its evaluations every 2000 steps, one group of N seeds per N): the update, the evaluations, the batched
exploration action (forward pass and every member's noise), and the rest (the N env steps, buffer writes,
bookkeeping), each timed by wrapping the group's methods.

    .venv/bin/python benchmarks/profile_group.py --loop [--ns 1 5 10] [--steps 4000]

With ``--fixed-cost``: what an update costs besides arithmetic, for one agent (``DDPG``, the default
two-dimensional path, bit-identical to autograd) and for groups of each N in --ns: the ATen calls of one
update and the update's time at batch 2, where there is next to no arithmetic (the cost of the calls
themselves: dispatch, allocation, the Python around them), against batch 256.

    .venv/bin/python benchmarks/profile_group.py --fixed-cost [--ns 1 5 10]

With ``--orientations``: the stacked products whose orientation ddpgkit.nn.backward picks by shape, each
timed alone both ways at --n agents, batch 256 (the layer with one output, the first layer's weight
gradient, ∂Q/∂a from the critic's first layer).

    .venv/bin/python benchmarks/profile_group.py --orientations [--n 10]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode  # torch's documented __torch_dispatch__ base (private path)

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.agents.group import DDPGGroup
from ddpgkit.data.buffer import Batch
from ddpgkit.runtime import configure_torch
from ddpgkit.training import loop

from common import machine, table


def make_group(n: int, hidden: tuple[int, ...]) -> DDPGGroup:
    cfg = DDPGConfig.preset("pendulum").replace(threads=1, hidden=hidden, health_interval=0)
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=range(n))
    rng = np.random.default_rng(0)
    for m in group.members:
        for _ in range(1000):
            m.buffer.add(rng.standard_normal(3).astype(np.float32), rng.uniform(-2, 2, 1).astype(np.float32),
                         float(-rng.uniform(0, 16)), rng.standard_normal(3).astype(np.float32), False, False)
    return group


def make_single(hidden: tuple[int, ...]) -> DDPG:
    """One agent (the default, two-dimensional update path) with the buffer :func:`make_group` gives each member."""
    cfg = DDPGConfig.preset("pendulum").replace(threads=1, hidden=hidden, health_interval=0)
    agent = DDPG("Pendulum-v1", cfg)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        agent.buffer.add(rng.standard_normal(3).astype(np.float32), rng.uniform(-2, 2, 1).astype(np.float32),
                         float(-rng.uniform(0, 16)), rng.standard_normal(3).astype(np.float32), False, False)
    return agent


def _sample(agent: DDPG | DDPGGroup, batch_size: int) -> Batch:
    return agent.sample(batch_size) if isinstance(agent, DDPGGroup) else agent.buffer.sample(batch_size)


def update_us(group: DDPG | DDPGGroup, batch_size: int, reps: int, calls: int = 30) -> float:
    batch = _sample(group, batch_size)
    for _ in range(5):
        group.update(batch)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(calls):
            group.update(batch)
        times.append((time.perf_counter() - t) / calls * 1e6)
    return statistics.median(times)


class _Record(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        kwargs = kwargs or {}
        self.calls.append((func, args, kwargs))
        return func(*args, **kwargs)


def _recorded(agent: DDPG | DDPGGroup, batch: Batch) -> list[tuple]:
    """The ATen calls of one update, with their arguments (the update runs once more to record them)."""
    for _ in range(10):
        agent.update(batch)
    rec = _Record()
    with rec:
        agent.update(batch)
    return rec.calls


def fixed_cost(agent: DDPG | DDPGGroup, reps: int) -> list[str]:
    """One row of the --fixed-cost table (module doc)."""
    small, full = update_us(agent, 2, reps), update_us(agent, 256, reps)
    calls = _recorded(agent, _sample(agent, 256))
    name = f"group of {len(agent.members)}" if isinstance(agent, DDPGGroup) else "one agent (2D path)"
    return [name, str(len(calls)), f"{small:.0f}", f"{full:.0f}", f"{100 * small / full:.0f}%"]


def op_table(group: DDPGGroup, batch_size: int, reps: int) -> tuple[list[list[str]], float, float]:
    batch = group.sample(batch_size)
    whole = update_us(group, batch_size, reps)
    calls = _recorded(group, batch)
    totals: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    for func, args, kwargs in calls:
        for _ in range(3):
            func(*args, **kwargs)
        t = time.perf_counter()
        for _ in range(20):
            func(*args, **kwargs)
        dt = (time.perf_counter() - t) / 20 * 1e6
        shapes = " ".join("x".join(map(str, a.shape)) for a in args if isinstance(a, torch.Tensor) and a.ndim > 1)
        key = (str(func).removeprefix("aten."), shapes)
        totals[key] += dt
        counts[key] += 1
    parts = sum(totals.values())
    rows = [[name, shapes, str(counts[(name, shapes)]), f"{us:.0f}", f"{100 * us / parts:.0f}%"]
            for (name, shapes), us in totals.most_common(15)]
    return rows, parts, whole


def loop_split(n: int, hidden: tuple[int, ...], steps: int) -> list[str]:
    """One group of n seeds trained ``steps`` steps, its wall time split by part (module doc)."""
    cfg = DDPGConfig.preset("pendulum").replace(total_steps=steps, threads=1, hidden=hidden)
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=range(n))
    spent = {"update": 0.0, "evaluations": 0.0, "explore": 0.0}

    def timed(part, fn):
        def call(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[part] += time.perf_counter() - t
            return out
        return call

    group._update_step = timed("update", group._update_step)
    group.explore = timed("explore", group.explore)
    evaluate = loop.Trainer._evaluate
    loop.Trainer._evaluate = timed("evaluations", evaluate)
    try:
        t = time.perf_counter()
        group.learn_until(steps)
        wall = time.perf_counter() - t
    finally:
        loop.Trainer._evaluate = evaluate
    rest = wall - sum(spent.values())
    per_step = [f"{1e6 * v / steps:.0f} ({100 * v / wall:.0f}%)" for v in (*spent.values(), rest)]
    return [str(n), f"{1e6 * wall / steps:.0f}", *per_step, f"{1e6 * wall / steps / n:.0f}"]


def _alone_us(fn, reps: int, calls: int = 200) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t) / calls * 1e6)
    return statistics.median(times)


def orientations(n: int, hidden: int, reps: int) -> list[list[str]]:
    """Each shape-picked product of a stacked update, the plain way and the way ddpgkit computes it."""
    b = 256
    x = torch.rand(n, b, hidden)  # a hidden layer's activations (N, B, H)
    w_out, b_out = torch.randn(n, 1, hidden), torch.randn(n, 1)  # a one-output layer
    g = torch.rand(n, b, hidden)  # dL/dh of a first layer (N, B, H)
    obs_act = torch.rand(n, b, 4)  # its input: observation and action
    w_in = torch.randn(n, hidden, 4)
    cases = [
        ("one-output layer, W x + b", lambda: torch.baddbmm(b_out.unsqueeze(1), x, w_out.mT),
         lambda: torch.baddbmm(b_out.unsqueeze(-1), w_out, x.mT).view(n, b, 1)),
        ("first layer's dL/dW (4 inputs)", lambda: g.mT.matmul(obs_act),
         lambda: obs_act.mT.matmul(g).mT.contiguous()),
        ("∂Q/∂a: the action's column of dL/dx", lambda: g.matmul(w_in[..., 3:]),
         lambda: w_in[..., 3:].mT.contiguous().matmul(g.mT).mT),
    ]
    rows = []
    for name, plain, picked in cases:
        assert torch.allclose(plain(), picked(), rtol=1e-5, atol=1e-5)
        a, c = _alone_us(plain, reps), _alone_us(picked, reps)
        rows.append([name, f"{a:.0f}", f"{c:.0f}", f"{a / c:.1f}x"])
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", default="64,64")
    p.add_argument("--ns", nargs="+", type=int, default=[1, 5, 10])
    p.add_argument("--batches", nargs="+", type=int, default=[32, 64, 128, 256])
    p.add_argument("--n", type=int, default=10, help="N of the operation table")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--loop", action="store_true", help="split a training step instead (module doc)")
    p.add_argument("--steps", type=int, default=4000, help="--loop: steps of each group's run")
    p.add_argument("--orientations", action="store_true", help="the shape-picked products, both ways (module doc)")
    p.add_argument("--fixed-cost", action="store_true", help="what an update costs besides arithmetic (module doc)")
    a = p.parse_args()
    configure_torch(1)  # as training runs: one thread, denormals flushed
    hidden = tuple(int(x) for x in a.hidden.split(","))
    print(f"machine: {machine()}")
    if a.orientations:
        print(f"N = {a.n}, B = 256, hidden width {hidden[0]}, one thread; µs per call alone, median of {a.reps}\n")
        print(table(["product", "plain (bmm as written)", "as ddpgkit computes it", "speed-up"],
                    orientations(a.n, hidden[0], a.reps)))
        return
    if a.fixed_cost:
        print(f"networks {a.hidden.replace(',', '-')}, one thread, the `pendulum` preset's update on a fixed batch; "
              f"µs per update, median of {a.reps} x 30\n")
        agents: list[DDPG | DDPGGroup] = [make_single(hidden)] + [make_group(n, hidden) for n in a.ns]
        print(table(["agents", "ATen calls", "update, B = 2", "update, B = 256", "B = 2 / B = 256"],
                    [fixed_cost(x, a.reps) for x in agents]))
        return
    if a.loop:
        print(f"Pendulum-v1, `pendulum` preset with networks {a.hidden.replace(',', '-')}, {a.steps} steps (500 "
              "random), evaluations every 2000 steps; one thread; µs per env step of the group (share of the "
              "wall time)\n")
        rows = [loop_split(n, hidden, a.steps) for n in a.ns]
        print(table(["N", "one group step", "update", "evaluations", "explore", "rest: env steps, buffers, "
                     "bookkeeping", "per seed-step"], rows))
        return
    print(f"networks {a.hidden.replace(',', '-')}, one thread, the `pendulum` preset's update on a fixed batch; "
          f"median of {a.reps} x 30 updates\n")
    groups = {n: make_group(n, hidden) for n in sorted(set(a.ns) | {a.n})}
    cells: dict[tuple[int, int], list[float]] = collections.defaultdict(list)
    for _ in range(a.reps):  # sizes alternate, so a slow phase of the machine spreads over all of them
        for n in a.ns:
            for b in a.batches:
                cells[(n, b)].append(update_us(groups[n], b, 1))
    base_n, base_b = min(a.ns), min(a.batches)
    base = statistics.median(cells[(base_n, base_b)])
    rows = []
    for n in a.ns:
        for b in a.batches:
            us = statistics.median(cells[(n, b)])
            rows.append([str(n), str(b), str(n * b), f"{us:.0f}",
                         f"{(us - base) / (n * b - base_n * base_b):.2f}" if n * b > base_n * base_b else "-"])
    print(table(["N", "B", "N·B", "update µs", "µs per added agent-row"], rows))
    ops, parts, whole = op_table(groups[a.n], max(a.batches), a.reps)
    print(f"\nN = {a.n}, B = {max(a.batches)}: the update's operations, each re-run alone on its own tensors "
          "(the 15 largest)\n")
    print(table(["operation", "operand shapes", "calls", "µs alone", "share of the parts"], ops))
    print(f"\nsum of the parts alone: {parts:.0f} µs; the whole update: {whole:.0f} µs "
          f"({whole / parts:.2f}x the parts)")


if __name__ == "__main__":
    main()
