"""``ddpgkit sweep``: a grid of runs on Ray (:mod:`ddpgkit.experiments.sweep`), with one progress display."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from ..experiments.sweep import SweepSpec, TrialStatus, run_sweep
from .app import UserError, app, err, out, print_kv


def _table(statuses: list[TrialStatus]) -> Table:
    states = ("done", "skipped", "running", "pending", "failed", "diverged")
    counts = {k: sum(s.state == k for s in statuses) for k in states}
    rate = sum(s.steps_per_s or 0.0 for s in statuses if s.state == "running")
    finished = counts["done"] + counts["skipped"]
    table = Table(title=f"sweep: {finished}/{len(statuses)} done, {counts['running']} running, "
                        f"{counts['pending']} pending, {counts['failed']} failed, {counts['diverged']} diverged; "
                        f"{rate:.0f} env steps/s")
    for col in ("trial", "state", "steps", "steps/s", "latest eval"):
        table.add_column(col)
    for s in statuses:
        if s.state in ("running", "failed", "diverged"):
            table.add_row(s.trial.name, s.state if s.state != "failed" else f"failed: {s.error}", f"{s.steps:,}",
                          f"{s.steps_per_s:.0f}" if s.steps_per_s else "",
                          f"{s.last_eval:.1f}" if s.last_eval is not None else "")
    return table


@app.command()
def sweep(
    spec_file: Path = typer.Argument(..., help="The sweep's TOML spec (envs, seeds, [config], [grid]; "
                                     "docs/guide/seeds.md)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Sweep directory [default: runs/sweeps/SPEC_NAME]."),
    address: str | None = typer.Option(None, "--address", help="Join the Ray cluster at HOST:PORT (with its token "
                                       "from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) instead of "
                                       "starting a local instance."),
    cpus_per_trial: float | None = typer.Option(None, help="CPUs per trial [default: the spec's, else 1]."),
    gpus_per_trial: float | None = typer.Option(None, help="GPUs per trial, a fraction allowed [default: the "
                                                "spec's, else 0]."),
    num_cpus: int | None = typer.Option(None, help="CPUs of the local Ray instance [default: all cores]."),
) -> None:
    """Run a grid of env ids × seeds × config values on Ray; each trial is an ordinary run directory.

    Run it again to skip finished trials and resume unfinished ones. Prints one results table at the
    end and writes it as results.csv and results.md in the sweep directory.
    """
    spec = SweepSpec.load(spec_file)
    if cpus_per_trial is not None:
        if cpus_per_trial <= 0:
            raise UserError(f"--cpus-per-trial must be > 0, got {cpus_per_trial}")
        spec.cpus_per_trial = cpus_per_trial
    if gpus_per_trial is not None:
        if gpus_per_trial < 0:
            raise UserError(f"--gpus-per-trial must be >= 0, got {gpus_per_trial}")
        spec.gpus_per_trial = gpus_per_trial
    if num_cpus is not None and num_cpus < 1:
        raise UserError(f"--num-cpus must be >= 1, got {num_cpus}")
    target = out_dir if out_dir is not None else Path("runs") / "sweeps" / spec_file.stem
    trials = spec.trials(target)
    n = len(trials)
    for note in dict.fromkeys(note for t in trials for note in t.notes):  # each distinct note once
        print_kv("note", note)
    print_kv("sweep", f"{n} trials ({len(spec.envs)} env(s) × {n // len(spec.envs) // len(spec.seeds)} config(s) × "
             f"{len(spec.seeds)} seed(s)) on {'Ray at ' + address if address else 'a local Ray instance'}")
    print_kv("sweep directory", str(target))
    with Live(_table([]), console=err, refresh_per_second=2, transient=True, auto_refresh=False) as live:
        def show(statuses: list[TrialStatus]) -> None:
            if err.is_terminal:
                live.update(_table(statuses), refresh=True)

        result = run_sweep(spec, target, address=address, num_cpus=num_cpus, on_progress=show)
    out.print((result.out / "results.md").read_text(), markup=False, end="")
    print_kv("wrote", ", ".join(str(f) for f in result.files))
    if result.failed:
        raise UserError(f"{len(result.failed)} of {len(result.statuses)} trials failed; see results.md "
                        f"(first: {result.failed[0].trial.name}: {result.failed[0].error})")
