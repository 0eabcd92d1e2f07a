"""``ddpgkit plot``: learning curves and health signals of one or more runs, from their metrics.csv files."""

from __future__ import annotations

from pathlib import Path

import typer

from ..analysis.language import text
from ..analysis.plots import plot_health, plot_learning_curves, plot_value_check
from ..storage.rundir import CURVE, HEALTH, read_metrics
from .app import UserError, app, lang_option, print_kv, use_lang


@app.command()
def plot(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run directories."),
    out_file: Path | None = typer.Option(None, "--out", help="PNG to write [default: RUN_DIR/learning_curve.png "
                                         "for one run, learning_curves.png for several]."),
    title: str | None = typer.Option(None, help="Figure title [default: Learning curve, in --lang's language]."),
    health: bool = typer.Option(True, "--health/--no-health", help="Also draw the health signals (gradient norms, "
                                "TD error, Q range, saturation, noise) as health.png beside the curves."),
    lang: str = lang_option(),
) -> None:
    """Draw the learning curves of one run or overlay several, and their health signals, from their
    metrics.csv files. Several runs whose evaluations measured the critic (DDPG's and TD3's, say) also get
    overestimation.png: each run's Q(s, μ(s)) against the discounted return obtained, side by side."""
    use_lang(lang)
    runs = [(str(d), read_metrics(d)) for d in run_dirs]
    target = out_file or (run_dirs[0] / CURVE if len(run_dirs) == 1 else Path("learning_curves.png"))
    if target.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, got {target}")
    health_target = target.with_name(HEALTH if len(run_dirs) == 1 else "health_signals.png")
    if health and health_target == target:
        raise UserError(f"--out {target} is the health figure's name; choose another name, or --no-health")
    values_target = target.with_name("overestimation.png")
    if len(run_dirs) > 1 and values_target == target:
        raise UserError(f"--out {target} is the overestimation figure's name; choose another name")
    plot_learning_curves(target, runs, title)
    print_kv("wrote", str(target))
    if health:
        several = len(run_dirs) > 1 and title is not None
        plot_health(health_target, runs, text("Training health: {title}", title=title) if several else None)
        print_kv("wrote", str(health_target))
    measured = [(label, rows) for label, rows in runs if any(r.get("eval_q_mean") is not None for r in rows)]
    if len(run_dirs) > 1 and len(measured) > 1:
        plot_value_check(values_target, measured, text("The critics against the returns obtained"))
        print_kv("wrote", str(values_target))
