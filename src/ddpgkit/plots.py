"""Every figure ddpgkit draws. Matplotlib with the Agg backend; each function writes one PNG.

Figures read only what they are given (a model and data, or the files of a run directory), so they
can be redrawn later from a run's files alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .fitting import Dataset, predict  # noqa: E402
from .nn.mlp import activation as make_activation  # noqa: E402

_DPI = 120


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _grid(low: float = -math.pi, high: float = math.pi, step: float = 0.01) -> torch.Tensor:
    return torch.arange(low, high, step)[..., None]  # (N, 1)


def plot_activation(path: str | Path, name: str = "relu", low: float = -1.0, high: float = 1.0) -> Path:
    """The activation g on x = arange(low, high, 0.01), as the chapter's first figure."""
    x = torch.arange(low, high, 0.01)
    y = make_activation(name)(x)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(x.numpy(), y.numpy(), color="C0")
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    ax.set(xlabel="x", ylabel=f"{name}(x)", title=f"Activation function: {name}")
    return _save(fig, path)


def plot_function(path: str | Path, model: torch.nn.Module, title: str = "Untrained network",
                  data: Dataset | None = None) -> Path:
    """A 1-input network on x = arange(-π, π, 0.01) (or the data's range), with data points if given."""
    low, high = (-math.pi, math.pi)
    if data is not None:
        low, high = min(low, data.x.min().item()), max(high, data.x.max().item() + 0.01)
    x = _grid(low, high)
    y = predict(model, x)  # (N, out_dim)
    fig, ax = plt.subplots(figsize=(6, 4))
    for j in range(y.shape[1]):
        label = "f(x; ω)" if y.shape[1] == 1 else f"f(x; ω)[{j}]"
        ax.plot(x[:, 0].numpy(), y[:, j].numpy(), color=f"C{j}", label=label)
    if data is not None:
        for j in range(data.out_dim):
            label = f"training data ({data.name})" if j == 0 else None
            ax.scatter(data.x[:, 0].numpy(), data.y[:, j].numpy(), color="red" if j == 0 else f"C{j}",
                       marker="o" if j == 0 else "x", zorder=3, label=label)
    ax.set(xlabel="x", ylabel="y", title=title)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_data(path: str | Path, data: Dataset) -> Path:
    """Scatter of the training points (first input against each output)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for j in range(data.out_dim):
        ax.scatter(data.x[:, 0].numpy(), data.y[:, j].numpy(), color="red" if j == 0 else f"C{j}",
                   label=f"y{j}")
    ax.set(xlabel="x0" if data.in_dim > 1 else "x", ylabel="y",
           title=f"Training data: {data.name}, {data.x.shape[0]} points")
    if data.out_dim > 1:
        ax.legend(loc="best")
    return _save(fig, path)


def plot_fit(path: str | Path, model: torch.nn.Module, data: Dataset, title: str = "Fitted network") -> Path:
    """The fitted network over the training points; for inputs of more than one dimension, a
    predicted-against-target plot (points on the diagonal are fitted exactly)."""
    if data.in_dim == 1:
        return plot_function(path, model, title, data)
    pred = predict(model, data.x)
    fig, ax = plt.subplots(figsize=(5, 5))
    for j in range(data.out_dim):
        ax.scatter(data.y[:, j].numpy(), pred[:, j].numpy(), s=12, color=f"C{j}", label=f"y{j}")
    lo = min(data.y.min().item(), pred.min().item())
    hi = max(data.y.max().item(), pred.max().item())
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label="exact")
    ax.set(xlabel="target y", ylabel="prediction f(x; ω)", title=title)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_loss(path: str | Path, losses: Sequence[float], title: str = "Training loss") -> Path:
    """Loss per step on a log scale."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(len(losses)), losses, color="C0")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="MSE loss L(ω; D)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _value_rows(rows: Sequence[dict]) -> list[tuple[float, float, float]]:
    return [(r["step"], r["eval_q_mean"], r["eval_mc_return"]) for r in rows
            if r.get("eval_q_mean") is not None and r.get("eval_mc_return") is not None]


def _draw_value_check(ax: plt.Axes, runs: Sequence[tuple[str, Sequence[dict]]]) -> None:
    for k, (label, rows) in enumerate(runs):
        values = _value_rows(rows)
        if not values:
            continue
        xs, qs, gs = (list(v) for v in zip(*values))
        color = f"C{k % 10}"
        name = "" if len(runs) == 1 else f"{label}: "
        ax.plot(xs, qs, color=color, marker="o", ms=3, lw=1.6, label=f"{name}critic's Q(s, μ(s))")
        ax.plot(xs, gs, color=color, ls="--", marker="s", ms=3, lw=1.2, label=f"{name}discounted return obtained")
    ax.set(xlabel="environment steps", ylabel="value (discounted return)",
           title="Over- or underestimation: Q against what happened\n(means over the evaluation episodes' states)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")


def plot_value_check(path: str | Path, runs: Sequence[tuple[str, Sequence[dict]]], title: str = "") -> Path:
    """The TD3 paper's Figure 1 for one or more runs: at every evaluation, the mean of the critic's
    Q(s_t, μ(s_t)) over the evaluation episodes' states against the mean discounted return obtained
    from them (metrics.csv's ``eval_q_mean`` and ``eval_mc_return``)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _draw_value_check(ax, runs)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_learning_curves(path: str | Path, runs: Sequence[tuple[str, Sequence[dict]]],
                         title: str = "Learning curve") -> Path:
    """Returns against environment steps for one or more runs (rows of their metrics.csv):
    training-episode returns as faint lines, deterministic evaluations as mean ± std; beside them,
    where the rows have it, the critic's estimate against the returns obtained (:func:`plot_value_check`)."""
    with_values = any(_value_rows(rows) for _, rows in runs)
    fig, axes = plt.subplots(1, 2 if with_values else 1, figsize=(13 if with_values else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    for k, (label, rows) in enumerate(runs):
        color = f"C{k % 10}"
        train = [(r["step"], r["episode_return"]) for r in rows if r.get("episode_return") is not None]
        evals = [(r["step"], r["eval_mean"], r["eval_std"] or 0.0) for r in rows if r.get("eval_mean") is not None]
        if train:
            xs, ys = zip(*train)
            ax.plot(xs, ys, color=color, alpha=0.25, lw=0.8,
                    label=f"{label}: training episodes" if len(runs) == 1 else None)
        if evals:
            xs, means, stds = (list(v) for v in zip(*evals))
            lo = [m - s for m, s in zip(means, stds)]
            hi = [m + s for m, s in zip(means, stds)]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
            ax.plot(xs, means, color=color, marker="o", ms=3, lw=1.6,
                    label=f"{label}: evaluation (mean ± std)" if len(runs) == 1 else label)
    ax.set(xlabel="environment steps", ylabel="episode return", title=title)
    ax.grid(True, alpha=0.3)
    if runs:
        ax.legend(loc="lower right", fontsize="small")
    if with_values:
        _draw_value_check(axes[0][1], runs)
    return _save(fig, path)
