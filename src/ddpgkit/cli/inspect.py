"""``ddpgkit inspect``: what a run's actor and critic learned, over its state space."""

from __future__ import annotations

from pathlib import Path

import typer

from ..analysis.inspection import compare_critics, inspect_run, run_labels
from .app import UserError, app, lang_option, print_kv, use_lang


@app.command("inspect")
def inspect_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run directories written by `ddpgkit train`."),
    checkpoint: int | None = typer.Option(None, "--checkpoint", help="The step of the checkpoint to draw "
                                          "[default: the newest]."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the figures [default: RUN_DIR/inspect; with "
                                    "several runs each run's in OUT/RUN_NAME, the comparison in OUT, default "
                                    "./inspect]."),
    dims: str | None = typer.Option(None, "--dims", help="Two observation dimensions to draw, e.g. 0,1 (the "
                                    "others held at a visited state's values) [default for Pendulum-v1: its "
                                    "angle and angular velocity]."),
    lang: str = lang_option(),
) -> None:
    """Draw the learned policy μ(s) and value Q(s, μ(s)) as heat maps over the state space, with an
    evaluation episode on top (value_maps.png), their animation over the run's checkpoints
    (value_maps.gif), and the critic's Q against the discounted returns obtained at every evaluation
    (overestimation.png). Given several runs (DDPG's and TD3's on one task, say), each is drawn, and their
    critics against the returns side by side in one more overestimation.png."""
    use_lang(lang)
    parsed = None
    if dims is not None:
        try:
            parsed = [int(d) for d in dims.split(",")]
        except ValueError:
            raise UserError(f"--dims takes two observation dimensions such as 0,1, got {dims!r}") from None
    several = len(run_dirs) > 1
    labels = run_labels(run_dirs)
    if several:  # first: it checks every run's metrics before anything is drawn
        print_kv("wrote", str(compare_critics(run_dirs, out if out is not None else Path("inspect"))))
    for run_dir, label in zip(run_dirs, labels):
        own = out / label.replace("/", "_") if several and out is not None else out
        result = inspect_run(run_dir, checkpoint, own, parsed)
        print_kv("drew", f"{label + ': ' if several else ''}step {result.step:,} over "
                         f"{result.plane.description}")
        written = [str(result.maps)]
        if result.animation is not None:
            written.append(f"{result.animation} ({len(result.steps)} checkpoints)")
        if result.overestimation is not None:
            written.append(str(result.overestimation))
        print_kv("wrote", ", ".join(written))
