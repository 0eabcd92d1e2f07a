"""``ddpgkit tune``: a hyperparameter search whose every trial is a group of seeds (:mod:`ddpgkit.experiments.tune`),
with one progress display."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from ..experiments.tune import TrialState, TuneSpec, finish, load_tune_dir, propose_entry, run_tune
from .app import UserError, app, err, out, print_kv


def _table(states: list[TrialState], total: int) -> Table:
    counts = {k: sum(s.state == k for s in states) for k in ("complete", "running", "pruned", "failed")}
    done = [s for s in states if s.state == "complete" and s.value is not None]
    best = max(done, key=lambda s: s.value) if done else None
    ci = f" [{best.low:.4g}, {best.high:.4g}]" if best and best.low is not None and best.low != best.high else ""
    title = (f"tune: {counts['complete']}/{total} done, {counts['running']} running, {counts['pruned']} pruned, "
             f"{counts['failed']} failed" + (f"; best trial {best.number}: {best.value:.4g}{ci}" if best else ""))
    table = Table(title=title)
    for col in ("trial", "state", "step", "objective"):
        table.add_column(col)
    for s in states[-12:]:
        table.add_row(str(s.number), s.state if s.state != "failed" else f"failed: {s.error}", f"{s.step:,}",
                      "" if s.value is None else f"{s.value:.4g}")
    return table


@app.command()
def tune(
    spec_or_dir: Path = typer.Argument(..., help="The tune spec (TOML: envs, budget, tune_seeds, test_seeds, trials, "
                                       "[space]; docs/guide/tuning.md), or a tune directory with --finish / "
                                       "--propose."),
    out_dir: Path | None = typer.Option(None, "--out", help="Tune directory [default: runs/tune/SPEC_NAME]."),
    address: str | None = typer.Option(None, "--address", help="Join the Ray cluster at HOST:PORT (with its token) "
                                       "instead of starting a local instance, as `ddpgkit sweep` does."),
    trials: int | None = typer.Option(None, "--trials", help="Trials in the study [default: the spec's]."),
    finish_only: bool = typer.Option(False, "--finish", help="On a tune directory: test the best configuration so "
                                     "far on the test seeds beside the base, and write the report and tune.md."),
    propose: bool = typer.Option(False, "--propose", help="On a finished tune directory: print the tuned values as a "
                                 "hyperparameter-table entry, with the test report's numbers."),
    num_cpus: int | None = typer.Option(None, help="CPUs of the local Ray instance [default: all cores]."),
) -> None:
    """Search hyperparameters with Optuna, every trial a group of seeds; then test the best on other seeds.

    Run the same command again to continue a study (finished trials kept, trials in flight resumed)."""
    if num_cpus is not None and num_cpus < 1:
        raise UserError(f"--num-cpus must be >= 1, got {num_cpus}")
    if trials is not None and trials < 1:
        raise UserError(f"--trials must be >= 1, got {trials}")
    if propose:
        out.print(propose_entry(spec_or_dir), markup=False)
        return
    if finish_only:
        spec, _ = load_tune_dir(spec_or_dir)
        result = finish(spec, spec_or_dir, address=address, num_cpus=num_cpus)
    else:
        if spec_or_dir.is_dir():
            spec, raw = load_tune_dir(spec_or_dir)
            target = out_dir if out_dir is not None else spec_or_dir
        else:
            spec = TuneSpec.load(spec_or_dir)
            raw = TuneSpec.raw(spec_or_dir)
            target = out_dir if out_dir is not None else Path("runs") / "tune" / spec_or_dir.stem
        if trials is not None:
            spec.trials, raw["trials"] = trials, trials
        seeds = f"{len(spec.tune_seeds)} seed{'s' if len(spec.tune_seeds) > 1 else ''}"
        print_kv("tune", f"{spec.trials} trials of {seeds} each on {', '.join(spec.envs)}, "
                 f"{spec.budget:,} steps; test seeds {len(spec.test_seeds)}; on "
                 f"{'Ray at ' + address if address else 'a local Ray instance'}")
        print_kv("tune directory", str(target))
        with Live(_table([], spec.trials), console=err, refresh_per_second=2, transient=True,
                  auto_refresh=False) as live:
            def show(states: list[TrialState]) -> None:
                if err.is_terminal:
                    live.update(_table(states, spec.trials), refresh=True)

            result = run_tune(spec, target, raw, address=address, num_cpus=num_cpus, on_progress=show)
    if result.best is not None:
        print_kv("best", f"trial {result.best.number}: {result.best.value:.4g}")
    if result.report is not None:
        for g in result.report.groups:
            if g.stats:
                out.print(f"{g.label} (n={len(g.runs)}): final IQM {g.stats['final IQM']}, mean "
                          f"{g.stats['final mean']}", markup=False)
        for x, y, e in result.report.improvements:
            out.print(f"P({x} > {y}) = {e.value:.2f} [{e.low:.2f}, {e.high:.2f}]", markup=False)
    print_kv("wrote", ", ".join(str(f) for f in result.files))
