"""``ddpgkit export``: a run's policy as one ONNX or TorchScript graph with its JSON contract
(:mod:`ddpgkit.agents.export`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..agents.ddpg import DDPG
from ..agents.export import FORMATS, SUFFIXES
from ..errors import RunError
from ..storage.rundir import best_checkpoint_dir, latest_checkpoint
from .app import UserError, app, print_kv


def checkpoint_of(run_dir: Path, which: str) -> Path:
    """The checkpoint ``which`` names in a run directory: ``best``, ``latest`` or a step (RunError in one line)."""
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    if which == "latest":
        return latest_checkpoint(run_dir)
    if which == "best":
        best = best_checkpoint_dir(run_dir)
        if not best.is_dir():
            raise RunError(f"{run_dir}: has no best checkpoint (evaluations keep one in checkpoints/best)")
        return best
    if not which.isdigit():
        raise UserError(f"--checkpoint must be best, latest or a step, got {which!r}")
    step = run_dir / "checkpoints" / which
    if not step.is_dir():
        raise RunError(f"{run_dir}: has no checkpoint at step {which}")
    return step


@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `ddpgkit train`."),
    checkpoint: str = typer.Option("latest", help="best, latest or a step."),
    format: str = typer.Option("onnx", "--format", help=f"{' or '.join(FORMATS)}."),
    out_file: Path | None = typer.Option(None, "--out", help="The policy file [default: RUN/policy.onnx, or .pt "
                                         "for torchscript]; its contract goes beside it as .json."),
) -> None:
    """Export the trained policy — observation to action, normalization and action bounds inside — as ONNX or
    TorchScript, with a JSON contract of its spaces, versions and checkpoint."""
    if format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    ckpt = checkpoint_of(run_dir, checkpoint)
    agent = DDPG.load(ckpt, training_state=False)
    target = out_file if out_file is not None else run_dir / f"policy{SUFFIXES[format]}"
    try:
        path, meta = agent.export(target, format, ckpt)
    finally:
        agent.close()
    print_kv("checkpoint", f"{ckpt} (step {agent.num_timesteps:,})")
    print_kv("wrote", f"{path}, {meta}")
