"""What ``compile=True`` (torch.compile of the hand-written update) buys, and what compiling costs.

Per network size and precision: ddpgkit's update with and without the switch on a fixed batch
(updates/s, median and range over alternating repetitions), the compile time (the first update of
the compiled agent, with an empty inductor cache unless --warm-cache), and how many updates the
compiled agent needs to win that time back.

    .venv/bin/python benchmarks/compile.py [--sizes 64,64 256,256 400,300] [--precisions fp32 bf16] [--reps 3]

Needs a C++ compiler (torch inductor generates C++ on the CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from common import machine, spread, table

B = 256


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["64,64", "256,256", "400,300"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warm-cache", action="store_true", help="keep torch's inductor cache (compile times drop)")
    a = p.parse_args()
    if not a.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ddpgkit-inductor-")
    import torch

    from ddpgkit import DDPG, DDPGConfig
    from ddpgkit.runtime import configure_torch

    configure_torch(1)
    print(f"machine: {machine()}; 1 thread, batch {B}, Pendulum-v1; "
          f"{'warm' if a.warm_cache else 'empty'} inductor cache\n")
    rows = []
    for size in a.sizes:
        hidden = tuple(int(x) for x in size.split(","))
        for precision in a.precisions:
            if precision == "bf16" and hidden[0] <= 64:
                continue  # bf16 does not pay at this size (benchmarks/README.md)
            agents = {}
            for compiled in (False, True):
                cfg = DDPGConfig(hidden=hidden, batch_size=B, learning_starts=0, precision=precision,
                                 compile=compiled)
                agents[compiled] = DDPG("Pendulum-v1", cfg)
            rows_ = torch.randn(B, agents[False].buffer.width, generator=torch.Generator().manual_seed(0))
            rows_[:, -2:] = (rows_[:, -2:] > 1.5).float()
            batch = agents[False].buffer.split(rows_)
            agents[False].update(batch)
            t0 = time.perf_counter()
            agents[True].update(batch)
            compile_s = time.perf_counter() - t0
            n = 1000 if hidden[0] <= 64 else 150
            rates: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(a.reps):
                for compiled, agent in agents.items():
                    for _ in range(10):
                        agent.update(batch)
                    t0 = time.perf_counter()
                    for _ in range(n):
                        agent.update(batch)
                    rates[compiled].append(n / (time.perf_counter() - t0))
            gain = [c / e for c, e in zip(rates[True], rates[False])]
            saved = 1 / statistics.median(rates[False]) - 1 / statistics.median(rates[True])  # s per update
            repay = f"{compile_s / saved:,.0f}" if saved > 0 else "never"
            rows.append([size.replace(",", "-"), precision, spread(rates[False]), spread(rates[True]),
                         spread(gain, "{:.2f}×"), f"{compile_s:.1f}", repay])
            print(table(["networks", "precision", "eager updates/s", "compiled updates/s", "compiled / eager",
                         "compile time (s)", "updates to repay it"], rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(["networks", "precision", "eager updates/s", "compiled updates/s", "compiled / eager",
                 "compile time (s)", "updates to repay it"], rows))
    print("\nmedian (min–max) over alternating repetitions; compile time = the compiled agent's first update")


if __name__ == "__main__":
    main()
