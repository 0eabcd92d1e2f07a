"""Supervised function fitting, exactly as chapter 6.2-6.3 does it.

A network y = f(x; ω), a data set D = {(x̂_i, ŷ_i)}, the mean squared error

    L(ω; D) = 1/(k·m) Σ_i ||f(x̂_i; ω) − ŷ_i||²

its gradient ∇_ω L from automatic differentiation, and Adam taking N full-batch steps of
``zero_grad(); loss.backward(); step()``.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError
from .mlp import MLP

#: The functions :func:`make_dataset` fits by name (``ddpgkit fit --target NAME``).
TARGETS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "abs": torch.abs,
}


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Dataset:
    """A data set D of (x, y) pairs: ``x`` is (N, in_dim), ``y`` is (N, out_dim), float32."""

    x: torch.Tensor
    y: torch.Tensor
    name: str = "data"

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 2 or self.x.shape[0] != self.y.shape[0]:
            raise DataError(f"x and y must be (N, d) with equal N, got {tuple(self.x.shape)} and {tuple(self.y.shape)}")
        if self.x.shape[0] == 0:
            raise DataError("the data set has no rows")
        if not (torch.isfinite(self.x).all() and torch.isfinite(self.y).all()):
            raise DataError("the data set contains NaN or inf")

    @property
    def in_dim(self) -> int:
        """Width of an input x."""
        return self.x.shape[1]

    @property
    def out_dim(self) -> int:
        """Width of a target y."""
        return self.y.shape[1]


def make_dataset(
    target: str | Callable[[torch.Tensor], torch.Tensor] = "sin",
    points: int = 20,
    low: float = -math.pi,
    high: float = math.pi,
) -> Dataset:
    """The chapter's training data: ``x_t = linspace(low, high, points)``, ``y_t = target(x_t)``.

    ``target`` is a name from :data:`TARGETS` or any callable mapping an (N, 1) tensor to (N, m).
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise DataError(f"points must be a positive integer, got {points!r}")
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise DataError(f"need finite low < high, got {low}, {high}")
    if isinstance(target, str):
        if target not in TARGETS:
            raise DataError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
        fn, name = TARGETS[target], target
    elif callable(target):
        fn, name = target, getattr(target, "__name__", "custom")
    else:
        raise DataError(f"target must be a name or a callable, got {type(target).__name__}")
    x = torch.linspace(low, high, points)[..., None]  # (N, 1)
    y = torch.as_tensor(fn(x), dtype=torch.float32)
    if y.ndim == 1:
        y = y[..., None]
    if y.shape[0] != points:
        raise DataError(f"target {name!r} returned {tuple(y.shape)} for input {tuple(x.shape)}")
    return Dataset(x, y, name)


def load_csv(path: str | Path) -> Dataset:
    """Read a data set from a CSV file with a header of columns ``x0..xn`` and ``y0..ym``.

    Every cell must be a finite number; a missing or non-numeric cell is reported with its line and
    column.
    """
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if not rows:
        raise DataError(f"{path}: empty file, expected a header x0,...,y0,...")
    header = [h.strip() for h in rows[0]]
    xcols = [i for i, h in enumerate(header) if h.startswith("x")]
    ycols = [i for i, h in enumerate(header) if h.startswith("y")]
    expected = [f"x{i}" for i in range(len(xcols))] + [f"y{i}" for i in range(len(ycols))]
    if not xcols or not ycols or sorted(header, key=_col_order) != expected or len(set(header)) != len(header):
        raise DataError(f"{path}: header must be x0..xn then y0..ym (e.g. x0,y0), got {','.join(header)}")
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    values = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {lineno} has {len(row)} cells, expected {len(header)}")
        parsed = []
        for col, cell in zip(header, row):
            try:
                v = float(cell)
            except ValueError:
                what = "missing" if not cell.strip() else f"non-numeric ({cell.strip()!r})"
                raise DataError(f"{path}: line {lineno}, column {col}: {what} value") from None
            if not math.isfinite(v):
                raise DataError(f"{path}: line {lineno}, column {col}: value is not finite")
            parsed.append(v)
        values.append(parsed)
    table = torch.tensor(values, dtype=torch.float32)  # (N, n_cols)
    xs = sorted(xcols, key=lambda i: int(header[i][1:]))
    ys = sorted(ycols, key=lambda i: int(header[i][1:]))
    return Dataset(table[:, xs], table[:, ys], path.stem)


def _col_order(h: str) -> tuple[int, int]:
    try:
        return ("xy".index(h[0]), int(h[1:]))
    except (ValueError, IndexError):
        return (2, 0)


@dataclass
class FitResult:
    """What :func:`fit` returns. ``losses[i]`` is L(ω_i; D) before step i; ``final_loss`` after the last."""

    model: MLP
    losses: list[float]
    initial_loss: float
    final_loss: float
    seconds: float
    seed: int
    steps: int


def fit(
    data: Dataset,
    *,
    steps: int = 100,
    lr: float = 1e-3,
    hidden: Sequence[int] = (256, 256),
    activation: str = "relu",
    seed: int = 0,
    lr_schedule: str = "constant",
    model: MLP | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> FitResult:
    """Fit an MLP to ``data`` by minimising the MSE with Adam over ``steps`` full-batch steps.

    With the defaults and ``make_dataset()`` this is the chapter's experiment: 20 points of sin on
    [-π, π], a 1→256→256→1 ReLU network, Adam(lr=1e-3), 100 steps. The network is built after
    ``torch.manual_seed(seed)`` inside a forked RNG, so the same seed gives the same initial weights
    (those of the chapter's ``Network`` under that seed) and identical losses, without touching the
    caller's random state. ``on_step(i, loss)`` is called after each step (for progress reporting).

    ``lr_schedule="cosine"`` decays the learning rate as lr·(1 + cos(π i / steps))/2. With the
    chapter's constant rate, Adam's steps stay of size ~lr even when the loss is ~1e-7, and the loss
    spikes back to ~1e-3 now and then (seeds 0 and 1 end 1000 steps at 2.3e-3 and 2.0e-3); the cosine
    decay removes those spikes (every seed 0-9 ends 1000 steps below 1e-5).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DataError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise DataError(f"lr must be a positive number, got {lr!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise DataError(f"unknown lr_schedule {lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model is None:
            model = MLP(data.in_dim, data.out_dim, hidden, activation)
        elif (model.in_features, model.out_features) != (data.in_dim, data.out_dim):
            raise DataError(
                f"model maps {model.in_features}->{model.out_features} but data is {data.in_dim}->{data.out_dim}"
            )
        x, y = data.x, data.y  # (N, in_dim), (N, out_dim)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
        history = torch.empty(steps)
        start = time.perf_counter()
        cosine = lr_schedule == "cosine"
        for i in range(steps):
            if cosine:
                optimizer.param_groups[0]["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * i / steps))
            loss = F.mse_loss(model(x), y)  # L(ω; D)
            optimizer.zero_grad()
            loss.backward()  # ∇_ω L(ω; D) by automatic differentiation
            optimizer.step()
            history[i] = loss.detach()
            if on_step is not None:
                on_step(i, loss)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            final = F.mse_loss(model(x), y).item()
    losses = history.tolist()
    return FitResult(model, losses, losses[0], final, seconds, seed, steps)


def predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``model`` on x (N, in_dim) without building a graph."""
    with torch.no_grad():
        return model(x)
