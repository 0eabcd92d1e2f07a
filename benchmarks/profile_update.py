"""Where the time of one DDPG update goes: torch's profiler over many updates on a fixed batch,
grouped into matrix products, the optimiser, element-wise work and the rest (dispatch, autograd
bookkeeping, Python), in microseconds per update.

    .venv/bin/python benchmarks/profile_update.py [--sizes 64,64 256,256] [--updates 300]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from common import machine, table

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"}
OPTIM = {"aten::_fused_adam_", "aten::_foreach_lerp_"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256"])
    p.add_argument("--updates", type=int, default=300)
    a = p.parse_args()
    from ddpgkit import DDPG, DDPGConfig
    from ddpgkit.runtime import configure_torch

    configure_torch(1)
    print(f"machine: {machine()}; 1 thread, batch 256\n")
    rows = []
    for size in a.sizes:
        hidden = tuple(int(x) for x in size.split(","))
        agent = DDPG("Pendulum-v1", DDPGConfig(hidden=hidden, batch_size=256, learning_starts=0))
        batch = agent.buffer.split(torch.randn(256, agent.buffer.width, generator=torch.Generator().manual_seed(0)))
        for _ in range(30):
            agent.update(batch)
        t0 = time.perf_counter()
        for _ in range(a.updates):
            agent.update(batch)
        wall = (time.perf_counter() - t0) / a.updates * 1e6
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(a.updates):
                agent.update(batch)
        groups: dict[str, float] = defaultdict(float)
        for ev in prof.key_averages():
            name = ev.key
            if name in MATMUL:
                groups["matrix products"] += ev.self_cpu_time_total
            elif name in OPTIM:
                groups["Adam + soft update (fused kernels)"] += ev.self_cpu_time_total
            elif name.startswith("aten::"):
                groups["other kernels (element-wise, copies, reductions)"] += ev.self_cpu_time_total
        kernels = sum(groups.values()) / a.updates
        share = {k: v / a.updates for k, v in groups.items()}
        for k, v in sorted(share.items(), key=lambda kv: -kv[1]):
            rows.append([size.replace(",", "-"), k, f"{v:.0f}", f"{100 * v / wall:.0f}%"])
        rest = max(wall - kernels, 0.0)
        rows.append([size.replace(",", "-"), "dispatch, autograd, Python (the rest)", f"{rest:.0f}",
                     f"{100 * rest / wall:.0f}%"])
        rows.append([size.replace(",", "-"), "**one update, unprofiled wall time**", f"{wall:.0f}", "100%"])
    print(table(["networks", "where", "µs per update", "share"], rows))
    print("\nkernel times are self CPU times under the profiler (which adds a little overhead of its own)")


if __name__ == "__main__":
    main()
