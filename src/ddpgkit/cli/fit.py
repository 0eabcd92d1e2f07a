"""``ddpgkit fit``: the chapter's fit and figures (:func:`ddpgkit.experiments.chapter.run_fit`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from ..experiments.chapter import run_fit
from ..nn.fitting import LR_SCHEDULES, TARGETS
from ..nn.mlp import ACTIVATIONS, count_parameters
from .app import UserError, app, lang_option, out, parse_hidden, use_lang
from .progress import progress_bar


@app.command()
def fit(
    target: str = typer.Option("sin", help=f"Function to fit: {', '.join(TARGETS)}."),
    points: int = typer.Option(20, help="Number of training points, evenly spaced on [-π, π]."),
    steps: int = typer.Option(100, help="Full-batch Adam steps."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    lr_schedule: str = typer.Option("constant", help="constant (the chapter's) or cosine (decays to 0; "
                                    "avoids Adam's late loss spikes on long fits)."),
    hidden: str = typer.Option("256,256", help="Hidden layer sizes, comma-separated."),
    activation: str = typer.Option("relu", help=f"Hidden activation: {', '.join(ACTIVATIONS)}."),
    seed: int = typer.Option(0, help="Seed of the initial weights."),
    data: Path | None = typer.Option(None, "--data", help="CSV file with columns x0..xn,y0..ym "
                                        "(replaces --target and --points)."),
    out_dir: Path = typer.Option(Path("runs/fit"), "--out", help="Directory for figures and metrics.json."),
    threads: int = typer.Option(1, help="torch intra-op threads (0: torch's default)."),
    lang: str = lang_option(),
) -> None:
    """Fit an MLP to data with MSE and Adam, as chapter 6 does, and draw its figures.

    With no flags it reproduces the chapter: 20 points of sin on [-π, π], a 1→256→256→1 ReLU
    network, Adam with lr 1e-3, 100 steps, seed 0.
    """
    use_lang(lang)
    if steps < 1:
        raise UserError(f"--steps must be a positive integer, got {steps}")
    if points < 1:
        raise UserError(f"--points must be a positive integer, got {points}")
    if not (math.isfinite(lr) and lr > 0):
        raise UserError(f"--lr must be a positive number, got {lr}")
    if activation not in ACTIVATIONS:
        raise UserError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if data is None and target not in TARGETS:
        raise UserError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
    if lr_schedule not in LR_SCHEDULES:
        raise UserError(f"unknown --lr-schedule {lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
    if threads < 0:
        raise UserError(f"--threads must be >= 0, got {threads}")
    sizes = parse_hidden(hidden)
    with progress_bar("info") as progress:
        task = progress.add_task("fit", total=steps, info="") if steps >= 1000 else None

        def on_step(i: int, loss: Any) -> None:  # loss: a 0-d torch tensor
            if task is not None and (i % 50 == 0 or i == steps - 1):
                progress.update(task, completed=i + 1, info=f"loss {loss.item():.3e}")

        report = run_fit(out_dir, target=target, points=points, data=data, steps=steps, lr=lr, lr_schedule=lr_schedule,
                         hidden=sizes, activation=activation, seed=seed, threads=threads, on_step=on_step)
    result = report.result
    out.print(report.model)
    out.print(f"parameters: {count_parameters(report.model):,}")
    out.print(f"initial loss: {result.initial_loss:.4f}")
    out.print(f"final loss after {steps} steps: {result.final_loss:.3e}  ({result.seconds:.3f} s)")
    out.print(f"figures: {', '.join(str(f) for f in report.figures)}")
    out.print(f"metrics: {report.metrics_path}")
