"""Every figure ddpgkit draws; each function writes one PNG (figures of their own, without pyplot:
:mod:`ddpgkit.analysis.figure`).

Figures read only what they are given (a model and data, or the files of a run directory), so they
can be redrawn later from a run's files alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..nn.fitting import Dataset, predict
from ..nn.mlp import activation as make_activation
from .figure import subplots
from .language import JAPANESE_FONT, text, use_japanese_font, use_language  # noqa: F401  (the last three: here as before)

_DPI = 120


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    return path


def _grid(low: float = -math.pi, high: float = math.pi, step: float = 0.01) -> torch.Tensor:
    return torch.arange(low, high, step)[..., None]  # (N, 1)


def plot_activation(path: str | Path, name: str = "relu", low: float = -1.0, high: float = 1.0) -> Path:
    """The activation g on x = arange(low, high, 0.01), as the chapter's first figure."""
    x = torch.arange(low, high, 0.01)
    y = make_activation(name)(x)
    fig, ax = subplots(figsize=(5, 3.5))
    ax.plot(x.numpy(), y.numpy(), color="C0")
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    ax.set(xlabel="x", ylabel=f"{name}(x)", title=text("Activation function: {name}", name=name))
    return _save(fig, path)


def plot_function(path: str | Path, model: torch.nn.Module, title: str | None = None,
                  data: Dataset | None = None) -> Path:
    """A 1-input network on x = arange(-π, π, 0.01) (or the data's range), with data points if given; the
    title defaults to "Untrained network" (in the figures' language, :mod:`ddpgkit.analysis.language`)."""
    low, high = (-math.pi, math.pi)
    if data is not None:
        low, high = min(low, data.x.min().item()), max(high, data.x.max().item() + 0.01)
    x = _grid(low, high)
    y = predict(model, x)  # (N, out_dim)
    fig, ax = subplots(figsize=(6, 4))
    for j in range(y.shape[1]):
        label = "f(x; ω)" if y.shape[1] == 1 else f"f(x; ω)[{j}]"
        ax.plot(x[:, 0].numpy(), y[:, j].numpy(), color=f"C{j}", label=label)
    if data is not None:
        for j in range(data.out_dim):
            label = text("training data ({name})", name=data.name) if j == 0 else None
            ax.scatter(data.x[:, 0].numpy(), data.y[:, j].numpy(), color="red" if j == 0 else f"C{j}",
                       marker="o" if j == 0 else "x", zorder=3, label=label)
    ax.set(xlabel="x", ylabel="y", title=text("Untrained network") if title is None else title)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_data(path: str | Path, data: Dataset) -> Path:
    """Scatter of the training points (first input against each output)."""
    fig, ax = subplots(figsize=(6, 4))
    for j in range(data.out_dim):
        ax.scatter(data.x[:, 0].numpy(), data.y[:, j].numpy(), color="red" if j == 0 else f"C{j}",
                   label=f"y{j}")
    ax.set(xlabel="x0" if data.in_dim > 1 else "x", ylabel="y",
           title=text("Training data: {name}, {n} points", name=data.name, n=data.x.shape[0]))
    if data.out_dim > 1:
        ax.legend(loc="best")
    return _save(fig, path)


def plot_fit(path: str | Path, model: torch.nn.Module, data: Dataset, title: str | None = None) -> Path:
    """The fitted network over the training points; for inputs of more than one dimension, a
    predicted-against-target plot (points on the diagonal are fitted exactly)."""
    if data.in_dim == 1:
        return plot_function(path, model, text("Fitted network") if title is None else title, data)
    pred = predict(model, data.x)
    fig, ax = subplots(figsize=(5, 5))
    for j in range(data.out_dim):
        ax.scatter(data.y[:, j].numpy(), pred[:, j].numpy(), s=12, color=f"C{j}", label=f"y{j}")
    lo = min(data.y.min().item(), pred.min().item())
    hi = max(data.y.max().item(), pred.max().item())
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label=text("exact"))
    ax.set(xlabel=text("target y"), ylabel=text("prediction f(x; ω)"),
           title=text("Fitted network") if title is None else title)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_loss(path: str | Path, losses: Sequence[float], title: str | None = None) -> Path:
    """Loss per step on a log scale."""
    fig, ax = subplots(figsize=(6, 4))
    ax.plot(range(len(losses)), losses, color="C0")
    ax.set_yscale("log")
    ax.set(xlabel=text("step"), ylabel=text("MSE loss L(ω; D)"),
           title=text("Training loss") if title is None else title)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _value_rows(rows: Sequence[dict]) -> list[tuple[float, float, float]]:
    return [(r["step"], r["eval_q_mean"], r["eval_mc_return"]) for r in rows
            if r.get("eval_q_mean") is not None and r.get("eval_mc_return") is not None]


def _draw_value_check(ax: Axes, runs: Sequence[tuple[str, Sequence[dict]]]) -> None:
    for k, (label, rows) in enumerate(runs):
        values = _value_rows(rows)
        if not values:
            continue
        xs, qs, gs = (list(v) for v in zip(*values))
        color = f"C{k % 10}"
        name = "" if len(runs) == 1 else f"{label}: "
        ax.plot(xs, qs, color=color, marker="o", ms=3, lw=1.6, label=name + text("critic's Q(s, μ(s))"))
        ax.plot(xs, gs, color=color, ls="--", marker="s", ms=3, lw=1.2, label=name + text("discounted return obtained"))
    ax.set(xlabel=text("environment steps"), ylabel=text("value (discounted return)"),
           title=text("The critic's Q against the returns obtained\n(means over the evaluation episodes' states)"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")


def plot_value_check(path: str | Path, runs: Sequence[tuple[str, Sequence[dict]]], title: str = "") -> Path:
    """The TD3 paper's Figure 1 for one or more runs: at every evaluation, the mean of the critic's
    Q(s_t, μ(s_t)) over the evaluation episodes' states against the mean discounted return obtained
    from them (metrics.csv's ``eval_q_mean`` and ``eval_mc_return``). Several runs (DDPG's and TD3's, say)
    are drawn side by side on one value scale, each panel titled with its run and its last gap Q − G."""
    drawn = [(label, rows) for label, rows in runs if _value_rows(rows)] or list(runs[:1])
    fig, axes = subplots(1, len(drawn), figsize=(7 if len(drawn) == 1 else 5.5 * len(drawn), 4.5), squeeze=False,
                         sharey=True)
    if len(drawn) == 1:
        _draw_value_check(axes[0][0], drawn)
        if title:  # one title: the caller's, in place of the panel's own
            axes[0][0].set_title(f"{title}\n" + text("(means over the evaluation episodes' states)"))
    for k, (label, rows) in enumerate(drawn if len(drawn) > 1 else []):
        ax = axes[0][k]
        _draw_value_check(ax, [(label, rows)])
        _, q, g = _value_rows(rows)[-1]
        ax.set_title(f"{label}\n" + text("last evaluation: Q − G = {gap}", gap=f"{q - g:+.1f}"), fontsize="medium")
        if k:
            ax.set_ylabel("")
    if title and len(drawn) > 1:
        fig.suptitle(title)
    return _save(fig, path)


def plot_learning_curves(path: str | Path, runs: Sequence[tuple[str, Sequence[dict]]],
                         title: str | None = None) -> Path:
    """Returns against environment steps for one or more runs (rows of their metrics.csv):
    training-episode returns as faint lines, deterministic evaluations as mean ± std; beside them,
    where the rows have it, the critic's estimate against the returns obtained (:func:`plot_value_check`)."""
    with_values = any(_value_rows(rows) for _, rows in runs)
    fig, axes = subplots(1, 2 if with_values else 1, figsize=(13 if with_values else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    for k, (label, rows) in enumerate(runs):
        color = f"C{k % 10}"
        train = [(r["step"], r["episode_return"]) for r in rows if r.get("episode_return") is not None]
        evals = [(r["step"], r["eval_mean"], r["eval_std"] or 0.0) for r in rows if r.get("eval_mean") is not None]
        if train:
            xs, ys = zip(*train)
            ax.plot(xs, ys, color=color, alpha=0.25, lw=0.8,
                    label=text("{label}: training episodes", label=label) if len(runs) == 1 else None)
        if evals:
            xs, means, stds = (list(v) for v in zip(*evals))
            lo = [m - s for m, s in zip(means, stds)]
            hi = [m + s for m, s in zip(means, stds)]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, lw=0)
            ax.plot(xs, means, color=color, marker="o", ms=3, lw=1.6,
                    label=text("{label}: evaluation (mean ± std)", label=label) if len(runs) == 1 else label)
    ax.set(xlabel=text("environment steps"), ylabel=text("episode return"),
           title=text("Learning curve") if title is None else title)
    ax.grid(True, alpha=0.3)
    if runs:
        ax.legend(loc="lower right", fontsize="small")
    if with_values:
        _draw_value_check(axes[0][1], runs)
    return _save(fig, path)


# the panels of plot_health: (title, y label, log scale, [(column, line label, line style)]); the linear panels of
# shares and of the noise's size start at 0 (ZERO_BASED), so that sampling noise around 0.2 does not fill the axis
_HEALTH_PANELS = (
    ("Gradient norms", "‖∇‖₂ (all layers)", True,
     [("critic_grad_norm", "critic ‖∇φ L‖", "-"), ("actor_grad_norm", "actor ‖∇θ L_μ‖", "--")]),
    ("TD error |δ| = |Q(s, a) − y|", "|δ|", True,
     [("td_error_mean", "mean", "-"), ("td_error_max", "max", "--")]),
    ("Q(s, a) on the training batches", "Q", False,
     [("q_max", "max", "--"), ("q_mean", "mean", "-"), ("q_min", "min", ":")]),
    ("Saturation", "share", False,
     [("tanh_saturated", "μ's pre-tanh outputs with tanh' < 0.01", "-"),
      ("action_at_bound", "exploration actions at a bound", "--")]),
    ("Exploration noise", "RMS of the noise drawn (action units)", False, [("noise_rms", "noise RMS", "-")]),
    ("Losses", "loss", True, [("critic_loss", "critic L(φ)", "-")]),
)

_ZERO_BASED = ("Saturation", "Exploration noise")


def plot_health(path: str | Path, runs: Sequence[tuple[str, Sequence[dict]]], title: str | None = None) -> Path:
    """The health signals of one or more runs' metrics rows (:mod:`ddpgkit.algo.health`) against
    environment steps, one panel a question: are the gradients alive, does the critic fit its targets,
    where do its values go, are the actor's outputs pinned, how much does it explore. Rows without a
    signal (warm-up, evaluation rows) are skipped; runs written before the signals existed draw only
    their losses and Q."""
    fig, axes = subplots(2, 3, figsize=(15, 8), squeeze=False)
    for ax, (panel, ylabel, log, lines) in zip(axes.flat, _HEALTH_PANELS):
        drawn = False
        for k, (label, rows) in enumerate(runs):
            for column, name, style in lines:
                points = [(r["step"], r[column]) for r in rows if r.get(column) is not None]
                if log:
                    points = [(x, y) for x, y in points if y > 0]
                if not points:
                    continue
                xs, ys = zip(*points)
                ax.plot(xs, ys, color=f"C{k % 10}", ls=style, lw=1.2,
                        label=text(name) if len(runs) == 1 else f"{label}: {text(name)}")
                drawn = True
        if log and drawn:
            ax.set_yscale("log")
        if panel in _ZERO_BASED and drawn:
            ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.05) if panel == "Saturation" else None)
        ax.set(xlabel=text("environment steps"), ylabel=text(ylabel), title=text(panel))
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, text("not in these metrics"), ha="center", va="center", transform=ax.transAxes,
                    color="0.5")
    fig.suptitle(text("Training health") if title is None else title)
    return _save(fig, path)
