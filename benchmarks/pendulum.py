"""Learning quality of DDPG on Pendulum-v1 with the `pendulum` preset (20k steps per seed), run as a
`ddpgkit sweep` on a local Ray instance, then reported by `ddpgkit report`.

Prints, per seed, the final deterministic evaluation (10 episodes, the run's own evaluation seeds),
the best evaluation during training, the first step at which an evaluation reached -200, and the
training time; then the report's IQM and mean with 95% stratified-bootstrap intervals, and the
sweep's wall time. With --sequential, the same runs again one after another in this process (the
comparison of issue 10). Target (issue 3): every seed >= -200 and the mean >= -170. Each seed is its own
run (``seeds_per_task = 1``: the single-run returns that stay identical while the update's numbers do);
``--seeds-per-task 0`` trains them as one group of seeds in one worker (``ddpgkit.agents.group``), as a sweep
does by default.

    .venv/bin/python benchmarks/pendulum.py --seeds 10 [--seeds-per-task 1] [--sequential] [--out DIR]
        [--steps 20000]
        [--hidden 256,256] [--precision bf16] [--compile] [--set tau=0.005 learning_starts=1000 ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tomllib
from pathlib import Path

from ddpgkit import DDPGConfig, run_experiment
from ddpgkit.analysis.report import make_report
from ddpgkit.experiments.sweep import SweepSpec, run_sweep
from ddpgkit.storage.rundir import read_metrics, read_summary

from common import machine


def per_seed(run: Path) -> dict:
    summary = read_summary(run)
    evals = [r for r in read_metrics(run) if r["eval_mean"] is not None]
    first = next((int(r["step"]) for r in evals if r["eval_mean"] >= -200), None)
    return {"seed": summary["seed"], "final": summary["final_eval_mean"], "std": summary["final_eval_std"],
            "best": max(r["eval_mean"] for r in evals), "first": first, "train_s": summary["train_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--preset", default="pendulum")
    p.add_argument("--hidden", default=None, help="override the preset's networks, e.g. 256,256")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true", help="compile=True (torch.compile of the update)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="other DDPGConfig overrides, values in TOML syntax (tau=0.005)")
    p.add_argument("--sequential", action="store_true", help="also run the same seeds one after another")
    p.add_argument("--seeds-per-task", type=int, default=1, help="seeds a worker trains together (0: all)")
    p.add_argument("--out", default=None, help="sweep directory [default: a temporary one]")
    a = p.parse_args()
    overrides: dict = {"total_steps": a.steps}
    if a.hidden:
        overrides["hidden"] = [int(x) for x in a.hidden.split(",")]
    if a.precision:
        overrides["precision"] = a.precision
    if a.compile:
        overrides["compile"] = True
    for item in a.set:
        overrides.update(tomllib.loads(item))
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="ddpgkit-pendulum-"))
    spec = SweepSpec.from_dict({"envs": ["Pendulum-v1"], "seeds": list(range(a.seeds)), "preset": a.preset,
                                "config": overrides, "seeds_per_task": a.seeds_per_task})
    t0 = time.perf_counter()
    result = run_sweep(spec, out / "sweep")
    sweep_wall = time.perf_counter() - t0
    failed = [s for s in result.statuses if s.state == "failed"]
    if failed:
        raise SystemExit(f"{len(failed)} trials failed: {failed[0].error}")
    rows = [per_seed(s.trial.run_dir) for s in result.statuses]
    report = make_report([out / "sweep"], out / "report")
    extra = "".join(f", {k}={v}" for k, v in overrides.items() if k != "total_steps")
    print(f"DDPG on Pendulum-v1, preset '{a.preset}'{extra}, {a.steps} steps per seed, final eval over 10 episodes")
    print(f"machine: {machine()}; `ddpgkit sweep` on a local Ray instance, 1 CPU and 1 torch thread per trial")
    print()
    print("| seed | final eval return | best eval during training | first eval >= -200 at step | train time (s) |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        first = r["first"] if r["first"] is not None else "never"
        print(f"| {r['seed']} | {r['final']:.1f} ± {r['std']:.1f} | {r['best']:.1f} | {first} | {r['train_s']:.1f} |")
    finals = [r["final"] for r in rows]
    print(f"| mean | {statistics.mean(finals):.1f} | | | |")
    g = report.groups[0]
    print()
    print(f"report ({len(g.runs)} runs, 95% stratified-bootstrap CIs): final IQM {g.stats['final IQM']}, "
          f"final mean {g.stats['final mean']}; best during training IQM {g.stats['best IQM']}, "
          f"mean {g.stats['best mean']}")
    ok = min(finals) >= -200 and statistics.mean(finals) >= -170
    print(f"worst seed {min(finals):.1f}, mean {statistics.mean(finals):.1f}: target (every seed >= -200, "
          f"mean >= -170) {'met' if ok else 'NOT met'}")
    print(f"sweep wall time: {sweep_wall:.0f} s for {a.seeds} runs (Ray start and stop included); "
          f"report: {out / 'report' / 'report.md'}")
    if a.sequential:
        t0 = time.perf_counter()
        seq = []
        for trial in spec.trials(out / "sequential"):
            [r] = run_experiment("Pendulum-v1", DDPGConfig.from_dict(trial.config.to_dict()), trial.run_dir,
                                 preset=a.preset)
            seq.append(r.summary["final_eval_mean"])
        seq_wall = time.perf_counter() - t0
        same = "identical to the sweep's" if seq == finals else "DIFFERENT from the sweep's"
        print(f"the same {a.seeds} runs one after another in one process: {seq_wall:.0f} s "
              f"({seq_wall / sweep_wall:.2f}× the sweep's wall time); final returns {same}")


if __name__ == "__main__":
    main()
