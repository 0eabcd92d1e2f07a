"""How far each run's critic is from the returns it obtained, per group of runs: the final evaluation's gap
Q(s, μ(s)) − G (metrics.csv's ``eval_q_gap``: the critic's mean estimate over the evaluation episodes' states
minus the mean discounted return obtained from them; > 0 overestimates), with the final return beside it.
Reads finished run directories only (the same grouping as ``ddpgkit report``: configs that differ only in the
seed), so it runs on the output of ``ddpgkit sweep`` or ``ddpgkit train --seeds``.

    .venv/bin/python benchmarks/overestimation.py DIR [DIR ...] [--curves]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ddpgkit.analysis.report import find_runs, group_runs  # noqa: E402
from ddpgkit.storage.rundir import read_metrics  # noqa: E402

from common import spread, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories, or directories holding them")
    parser.add_argument("--curves", action="store_true", help="also every run's evaluations and gaps, step by step")
    args = parser.parse_args()
    rows, curves = [], []
    runs, _ = find_runs(args.dirs)
    for group in group_runs(runs):
        gaps, finals = [], []
        for run in group.runs:
            evaluated = [r for r in read_metrics(run.path) if r.get("eval_q_gap") is not None]
            gaps.append(evaluated[-1]["eval_q_gap"])
            finals.append(evaluated[-1]["eval_mean"])
            curves.append((group.label, run.seed, ", ".join(f"{r['eval_mean']:.0f}" for r in evaluated),
                           ", ".join(f"{r['eval_q_gap']:+.0f}" for r in evaluated)))
        rows.append((group.label, len(gaps), ", ".join(f"{g:+.1f}" for g in gaps), spread(gaps, "{:+.1f}"),
                     f"{statistics.mean(gaps):+.1f}", spread(finals)))
    print(table(("group", "runs", "final Q − G per seed", "median (min–max)", "mean", "final return, median "
                 "(min–max)"), rows))
    if args.curves:
        print()
        print(table(("group", "seed", "evaluations, in order", "Q − G at each"), curves))


if __name__ == "__main__":
    main()
