"""The chapter's experiment as one call: fit an MLP to data with MSE and Adam, draw the chapter's
figures and write metrics.json — what ``ddpgkit fit`` does, callable from Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..analysis.language import text
from ..analysis.plots import plot_activation, plot_data, plot_fit, plot_function, plot_loss
from ..nn.fitting import Dataset, FitResult, fit, load_csv, make_dataset
from ..nn.mlp import MLP
from ..runtime import torch_settings
from ..storage.atomic import atomic_write_json, ensure_writable_dir


@dataclass
class FitReport:
    """What :func:`run_fit` produced: the data, the fit, every figure written and metrics.json's content."""

    dataset: Dataset
    result: FitResult
    figures: list[Path]
    metrics_path: Path
    metrics: dict[str, Any]

    @property
    def model(self) -> MLP:
        """The fitted network."""
        return self.result.model


def run_fit(out_dir: str | Path = "runs/fit", *, target: str = "sin", points: int = 20, data: str | Path | None = None,
            steps: int = 100, lr: float = 1e-3, lr_schedule: str = "constant", hidden: Sequence[int] = (256, 256),
            activation: str = "relu", seed: int = 0, threads: int = 1,
            on_step: Callable[[int, torch.Tensor], None] | None = None) -> FitReport:
    """Fit and draw, as chapter 6 does: data (``target`` on ``points`` points of [-π, π], or the CSV file
    ``data``), a network built from ``seed``, ``steps`` full-batch Adam steps; figures (activation,
    data, untrained network for 1-D input, fit, loss) and metrics.json in ``out_dir``."""
    dataset = load_csv(data) if data is not None else make_dataset(target, points)
    out = ensure_writable_dir(out_dir)
    with torch_settings(threads):  # torch's threads and denormal setting as they were afterwards
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MLP(dataset.in_dim, dataset.out_dim, tuple(hidden), activation)
        figures = [plot_activation(out / "activation.png", activation), plot_data(out / "data.png", dataset)]
        if dataset.in_dim == 1:
            figures.append(plot_function(out / "untrained.png", model, text("Untrained network")))
        result = fit(dataset, steps=steps, lr=lr, seed=seed, lr_schedule=lr_schedule, model=model, on_step=on_step)
        figures.append(plot_fit(out / "fit.png", result.model, dataset,
                                text("Fitted network after {steps} steps", steps=steps)))
        figures.append(plot_loss(out / "loss.png", result.losses))
    metrics = {
        "initial_loss": result.initial_loss, "final_loss": result.final_loss, "steps": steps,
        "seconds": result.seconds, "seed": seed, "lr": lr, "lr_schedule": lr_schedule, "hidden": list(hidden),
        "activation": activation, "data": str(data) if data is not None else target, "points": dataset.x.shape[0],
    }
    metrics_path = atomic_write_json(out / "metrics.json", metrics)
    return FitReport(dataset, result, figures, metrics_path, metrics)
