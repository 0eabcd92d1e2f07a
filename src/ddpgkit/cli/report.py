"""``ddpgkit report``: statistics over many runs, from their run directories alone (:mod:`ddpgkit.analysis.report`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..analysis.report import make_report
from .app import UserError, app, lang_option, out, print_kv, use_lang, warn


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories, or directories holding them (a sweep)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Where report.md, report.json and the figures go "
                                        "[default: DIR/report for one directory, else ./report]."),
    reps: int = typer.Option(10_000, help="Bootstrap resamples for the confidence intervals."),
    lang: str = lang_option(),
) -> None:
    """IQM and mean of final and best returns with 95% stratified-bootstrap confidence intervals,
    IQM learning curves, and probabilities of improvement, per group of runs that differ only in seed."""
    use_lang(lang)
    if reps < 100:
        raise UserError(f"--reps must be >= 100, got {reps}")
    target = out_dir if out_dir is not None else (run_dirs[0] / "report" if len(run_dirs) == 1 else Path("report"))
    result = make_report(run_dirs, target, reps=reps)
    for reason in result.skipped:
        warn(f"skipped {reason}")
    for g in result.groups:
        s = g.stats
        diverged = f", {len(g.diverged)} diverged (counted as failures, not in the statistics)" if g.diverged else ""
        if not g.runs:
            out.print(f"{g.label} (n=0{diverged}): no finished run", markup=False)
            continue
        out.print(f"{g.label} (n={len(g.runs)}{diverged}): final IQM {s['final IQM']}, mean {s['final mean']}; "
                  f"best during training IQM {s['best IQM']}, mean {s['best mean']}", markup=False)
        if "success IQM" in s:
            out.print(f"{g.label}: final success rate IQM {s['success IQM']}, mean {s['success mean']}", markup=False)
    for x, y, e in result.improvements:
        out.print(f"P({x} > {y}) = {e.value:.2f} [{e.low:.2f}, {e.high:.2f}]", markup=False)
    print_kv("wrote", ", ".join(str(f) for f in result.files))
