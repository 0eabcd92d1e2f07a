"""Learning quality of DDPG on Pendulum-v1 with the `pendulum` preset (20k steps per seed).

Prints, per seed, the final deterministic evaluation (10 episodes, the run's own evaluation seeds),
the first step at which an evaluation reached -200, and the training time; then the mean over
seeds. Target (issue 3): every seed >= -200 and the mean >= -170.

    .venv/bin/python benchmarks/pendulum.py --seeds 5 [--workers 2] [--steps 20000]
        [--hidden 256,256] [--precision bf16] [--compile] [--set tau=0.005 learning_starts=1000 ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
import tomllib

from common import machine


def train_one(args: tuple[int, int, str, dict]) -> dict:
    seed, steps, preset, overrides = args
    import torch

    from ddpgkit import DDPG, DDPGConfig

    cfg = DDPGConfig.preset(preset, seed=seed, total_steps=steps, **overrides)
    start = time.perf_counter()
    agent = DDPG("Pendulum-v1", cfg).learn()
    wall = time.perf_counter() - start
    evals = [r for r in agent.trainer.history if r["eval_mean"] is not None]
    first = next((r["step"] for r in evals if r["eval_mean"] >= -200), None)
    mean, std = agent.trainer.last_eval
    return {"seed": seed, "final": mean, "std": std, "first_solved": first, "wall": wall,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--workers", type=int, default=2, help="processes in parallel (each uses 1 torch thread)")
    p.add_argument("--preset", default="pendulum")
    p.add_argument("--hidden", default=None, help="override the preset's networks, e.g. 256,256")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true", help="compile=True (torch.compile of the update)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="other DDPGConfig overrides, values in TOML syntax (tau=0.005)")
    a = p.parse_args()
    overrides: dict = {}
    if a.hidden:
        overrides["hidden"] = tuple(int(x) for x in a.hidden.split(","))
    if a.precision:
        overrides["precision"] = a.precision
    if a.compile:
        overrides["compile"] = True
    for item in a.set:
        overrides.update(tomllib.loads(item))
    jobs = [(s, a.steps, a.preset, overrides) for s in range(a.seeds)]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        results = pool.map(train_one, jobs)
    total = time.perf_counter() - t0
    extra = "".join(f", {k}={v}" for k, v in overrides.items())
    print(f"DDPG on Pendulum-v1, preset '{a.preset}'{extra}, {a.steps} steps per seed, final eval over 10 episodes")
    print(f"machine: {machine()} ({results[0]['threads']} thread/process, "
          f"{a.workers} processes)")
    print()
    print("| seed | final eval return | first eval >= -200 at step | train time (s) |")
    print("|---:|---:|---:|---:|")
    for r in results:
        first = r["first_solved"] if r["first_solved"] is not None else "never"
        print(f"| {r['seed']} | {r['final']:.1f} ± {r['std']:.1f} | {first} | {r['wall']:.1f} |")
    finals = [r["final"] for r in results]
    print(f"| mean | {statistics.mean(finals):.1f} | | |")
    ok = min(finals) >= -200 and statistics.mean(finals) >= -170
    print()
    print(f"worst seed {min(finals):.1f}, mean {statistics.mean(finals):.1f}: target (every seed >= -200, "
          f"mean >= -170) {'met' if ok else 'NOT met'}; {total:.0f} s in all")


if __name__ == "__main__":
    main()
