"""Reports over many runs, from run directories alone (no Ray, no torch: config.toml, summary.json and
metrics.csv are read as plain files).

Runs that share their env and config except the seed form a group (settings that do not change what
is learned — device, threads, checkpointing — are ignored). For each group:

* final return (the run's last evaluation, as in summary.json): interquartile mean and mean, each with a
  95% stratified-bootstrap confidence interval (:mod:`ddpgkit.analysis.stats`);
* best evaluation during training (the highest evaluation a run reached, which published DDPG
  numbers sometimes report instead of the final one), the same two statistics, labelled as such;
* the IQM learning curve over evaluation steps with its 95% confidence band;
* between two groups of the same env, the probability that a run of one ends above a run of the other;
* of goal envs (whose episodes report ``info["is_success"]``): the final success rate's IQM and mean with their
  intervals, and the IQM success-rate curve.

:func:`make_report` writes ``report.md``, ``report.json`` and PNG figures into a directory.
"""

from __future__ import annotations

import json
import math
import textwrap
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import RunError
from ..storage.atomic import atomic_write_json, atomic_write_text, ensure_writable_dir
from ..storage.rundir import CONFIG, METRICS, SUMMARY, config_table, read_metrics, read_summary
from .figure import subplots
from .language import text
from .stats import Estimate, iqm, mean, probability_of_improvement_ci, stratified_bootstrap_ci

#: Config keys that do not change what is learned; runs differing only in these are one group.
IGNORED_KEYS = ("seed", "device", "threads", "checkpoint_interval", "keep_checkpoints")


@dataclass
class RunRecord:
    """One finished run, as its files describe it; or one that diverged (``diverged``: the step; ``final`` NaN)."""

    path: Path
    env_id: str
    config: dict[str, Any]
    seed: int
    final: float
    best: float
    curve: dict[int, float]  # evaluation step -> mean evaluation return
    diverged: int | None = None
    success: float | None = None  # the final evaluation's success rate (goal envs), else None
    success_curve: dict[int, float] = field(default_factory=dict)  # evaluation step -> success rate


@dataclass
class Group:
    """Runs that share env and config except the seed."""

    env_id: str
    config: dict[str, Any]
    runs: list[RunRecord]
    label: str = ""
    diverged: list[RunRecord] = field(default_factory=list)  # counted as failures beside the statistics
    stats: dict[str, Estimate] = field(default_factory=dict)
    curve_steps: list[int] = field(default_factory=list)
    curve: list[Estimate] = field(default_factory=list)
    success_curve: list[Estimate] = field(default_factory=list)  # over curve_steps, where every run reports success


@dataclass
class Report:
    groups: list[Group]
    improvements: list[tuple[str, str, Estimate]]  # (group X, group Y, P(X > Y) on final return)
    skipped: list[str]
    files: list[Path]


def _read_config(run: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads((run / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise RunError(f"{run / CONFIG}: cannot read: {e}") from None
    return config_table(data)


def read_run(run: str | Path) -> RunRecord:
    """A finished run directory as a :class:`RunRecord` (RunError if it is not one)."""
    run = Path(run)
    summary = read_summary(run)
    config = _read_config(run)
    rows = read_metrics(run)
    curve = {int(r["step"]): float(r["eval_mean"]) for r in rows if r.get("eval_mean") is not None}
    success_curve = {int(r["step"]): float(r["eval_success_rate"]) for r in rows
                     if r.get("eval_mean") is not None and r.get("eval_success_rate") is not None}
    if summary.get("status") == "diverged":
        step = summary.get("diverged_at")
        return RunRecord(run, str(summary.get("env_id")), config, int(config.get("seed", summary.get("seed", 0))),
                         math.nan, max(curve.values()) if curve else math.nan, curve,
                         diverged=step if isinstance(step, int) else -1)
    final = summary.get("final_eval_mean")
    if not isinstance(final, (int, float)) or not math.isfinite(final) or not curve:
        raise RunError(f"{run}: has no final evaluation")
    success = summary.get("final_eval_success_rate")
    success = float(success) if isinstance(success, (int, float)) and math.isfinite(success) else None
    return RunRecord(run, str(summary.get("env_id")), config, int(config.get("seed", summary.get("seed", 0))),
                     float(final), max(curve.values()), curve, success=success, success_curve=success_curve)


def find_runs(paths: Iterable[str | Path]) -> tuple[list[RunRecord], list[str]]:
    """Every finished run in ``paths`` (run directories, or directories holding them at any depth,
    such as a sweep directory), and why any directory with a config.toml was skipped."""
    runs, skipped, seen = [], [], set()
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"{path}: no such directory")
        candidates = [path] if (path / CONFIG).is_file() else sorted(p.parent for p in path.rglob(CONFIG))
        for run in candidates:
            key = run.resolve()
            if key in seen:
                continue
            seen.add(key)
            if not (run / SUMMARY).is_file() or not (run / METRICS).is_file():
                skipped.append(f"{run}: not finished (no summary.json)")
                continue
            try:
                runs.append(read_run(run))
            except RunError as e:
                skipped.append(str(e))
    return runs, skipped


def drop_repeats(runs: Sequence[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """The runs with each (env, config, seed) once — the first by path — and a line for every repeat: two run
    directories of one config and one seed (the same test seeds trained by two tune studies, a run copied) are
    one sample, not two; counted twice they would narrow every interval."""
    kept: list[RunRecord] = []
    repeats: list[str] = []
    first: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: str(r.path)):
        config = {k: v for k, v in run.config.items() if k not in IGNORED_KEYS}
        key = json.dumps([run.env_id, config, run.seed], sort_keys=True)
        if key in first:
            repeats.append(f"{run.path}: the same env, config and seed as {first[key].path} (counted once)")
        else:
            first[key] = run
            kept.append(run)
    return kept, repeats


def group_runs(runs: Sequence[RunRecord]) -> list[Group]:
    """Groups of runs with the same env and config except :data:`IGNORED_KEYS`, labelled by what
    differs between groups (the env alone when nothing else does)."""
    groups: dict[str, Group] = {}
    for run in runs:
        config = {k: v for k, v in run.config.items() if k not in IGNORED_KEYS}
        key = json.dumps([run.env_id, config], sort_keys=True)
        group = groups.setdefault(key, Group(run.env_id, config, []))
        (group.diverged if run.diverged is not None else group.runs).append(run)
    out = sorted(groups.values(), key=lambda g: json.dumps([g.env_id, g.config], sort_keys=True))
    differing = sorted({k for g in out for k in g.config if any(h.config.get(k) != g.config.get(k) for h in out)})
    for g in out:
        parts = [g.env_id] + [f"{k}={_short(g.config.get(k))}" for k in differing]
        g.label = " ".join(parts)
        g.runs.sort(key=lambda r: r.seed)
        g.diverged.sort(key=lambda r: r.seed)
    return out


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "-".join(map(str, v))
    return str(v)


def analyse(groups: list[Group], reps: int = 10_000, seed: int = 0) -> list[tuple[str, str, Estimate]]:
    """Fill each group's statistics and IQM curve; return P(X > Y) for every ordered pair of groups on
    the same env."""
    for g in groups:
        if not g.runs:  # every run of the group diverged: nothing to estimate
            continue
        final = np.array([r.final for r in g.runs])
        best = np.array([r.best for r in g.runs])
        g.stats = {
            "final IQM": stratified_bootstrap_ci(final, iqm, reps, seed=seed),
            "final mean": stratified_bootstrap_ci(final, mean, reps, seed=seed),
            "best IQM": stratified_bootstrap_ci(best, iqm, reps, seed=seed),
            "best mean": stratified_bootstrap_ci(best, mean, reps, seed=seed),
        }
        if all(r.success is not None for r in g.runs):  # a goal env's: the success rates too
            rates = np.array([r.success for r in g.runs])
            g.stats["success IQM"] = stratified_bootstrap_ci(rates, iqm, reps, seed=seed)
            g.stats["success mean"] = stratified_bootstrap_ci(rates, mean, reps, seed=seed)
        steps = sorted(set.intersection(*(set(r.curve) for r in g.runs)))
        g.curve_steps = steps
        g.curve = [stratified_bootstrap_ci([r.curve[s] for r in g.runs], iqm, min(reps, 2_000), seed=seed)
                   for s in steps]
        if all(set(steps) <= set(r.success_curve) for r in g.runs) and "success IQM" in g.stats:
            g.success_curve = [stratified_bootstrap_ci([r.success_curve[s] for r in g.runs], iqm, min(reps, 2_000),
                                                       seed=seed) for s in steps]
    pairs = []
    for x in groups:
        for y in groups:
            if x is not y and x.env_id == y.env_id and x.runs and y.runs:
                est = probability_of_improvement_ci([r.final for r in x.runs], [r.final for r in y.runs],
                                                    min(reps, 2_000), seed=seed)
                pairs.append((x.label, y.label, est))
    return pairs


def _interval_figure(path: Path, groups: list[Group]) -> Path:
    groups = [g for g in groups if g.stats]
    keys = ["final IQM", "final mean", "best IQM", "best mean"]
    # one return scale for the four panels (each its own would stretch every interval across its axis), few ticks
    fig, axes = subplots(1, len(keys), figsize=(3.2 * len(keys), 0.6 * len(groups) + 1.6), sharey=True, sharex=True)
    for ax, key in zip(axes, keys):
        for i, g in enumerate(groups):
            e = g.stats[key]
            ax.plot([e.low, e.high], [i, i], color=f"C{i}", linewidth=6, alpha=0.5, solid_capstyle="butt")
            ax.plot([e.value], [i], marker="|", color="black", markersize=14)
        ax.set_title(text(key + (" (max over evaluations)" if key.startswith("best") else "")), fontsize=9)
        ax.set_xlabel(text("return"))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(groups)), [f"{g.label} (n={len(g.runs)})" for g in groups], fontsize=8)
    fig.suptitle(text("Final and best evaluation returns: estimate and 95% stratified-bootstrap CI"))
    fig.tight_layout()
    return _save(fig, path)


def _curve_figure(path: Path, groups: list[Group]) -> Path:
    envs = sorted({g.env_id for g in groups})
    rows = 2 if any(g.success_curve for g in groups) else 1  # goal envs: the success rates below the returns
    fig, axes = subplots(rows, len(envs), figsize=(6 * len(envs), 4 * rows), squeeze=False)
    for row, (what, unit) in enumerate([("curve", "evaluation return"), ("success_curve", "success rate")][:rows]):
        for ax, env in zip(axes[row], envs):
            for i, g in enumerate(x for x in groups if x.env_id == env):
                curve = getattr(g, what)
                if not g.curve_steps or not curve:
                    continue
                ax.plot(g.curve_steps, [e.value for e in curve], color=f"C{i}", label=f"{g.label} (n={len(g.runs)})")
                ax.fill_between(g.curve_steps, [e.low for e in curve], [e.high for e in curve], color=f"C{i}",
                                alpha=0.25)
            ax.set_title(text("{env}: IQM of evaluation returns, 95% CI band" if what == "curve" else
                              "{env}: IQM of evaluation success rates, 95% CI band", env=env))
            ax.set_xlabel(text("environment steps"))
            ax.set_ylabel(text(unit))
            if what == "success_curve":  # a rate: its whole range, so that 0.93 does not look like a collapse
                ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _improvement_figure(path: Path, pairs: list[tuple[str, str, Estimate]]) -> Path:
    # long group labels (a sweep's varied values) are wrapped, and the figure widened, so that they fit
    labels = ["\n".join(textwrap.wrap(f"P({x} > {y})", 60)) for x, y, _ in pairs]
    lines = sum(label.count("\n") + 1 for label in labels)
    width = 4 + 0.065 * max((len(line) for label in labels for line in label.splitlines()), default=10)
    fig, ax = subplots(figsize=(max(7.0, width), 0.25 * lines + 0.3 * len(pairs) + 1.4))
    for i, (_, _, e) in enumerate(pairs):
        ax.plot([e.low, e.high], [i, i], linewidth=6, alpha=0.5, color="C0", solid_capstyle="butt")
        ax.plot([e.value], [i], marker="|", color="black", markersize=14)
    ax.set_yticks(range(len(pairs)), labels, fontsize=8)
    ax.axvline(0.5, color="grey", linestyle="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel(text("probability of improvement (final return), 95% CI"))
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def _markdown(groups: list[Group], pairs: list[tuple[str, str, Estimate]], skipped: list[str], reps: int,
              figures: list[Path]) -> str:
    lines = ["# ddpgkit report", "",
             f"{sum(len(g.runs) for g in groups)} finished runs in {len(groups)} group(s) (same env and config except "
             f"the seed). Estimates with 95% stratified-bootstrap confidence intervals ({reps:,} resamples, "
             "percentile method). *Final*: the run's last evaluation (summary.json). *Best*: the highest "
             "evaluation during training (max over evaluations) — an optimistic number, reported by some papers. "
             "Runs that *diverged* (an update turned non-finite; summary.json's status) are counted as failures "
             "in their own column, not left out: the statistics are over the runs that finished.",
             "", "| group | runs | diverged | final IQM | final mean | best IQM (max over evals) | "
             "best mean (max over evals) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for g in groups:
        s = g.stats
        if not s:
            lines.append(f"| {g.label} | {len(g.runs)} | {len(g.diverged)} | — | — | — | — |")
            continue
        lines.append(f"| {g.label} | {len(g.runs)} | {len(g.diverged)} | {s['final IQM']} | {s['final mean']} | "
                     f"{s['best IQM']} | {s['best mean']} |")
    goal = [g for g in groups if "success IQM" in g.stats]
    if goal:
        lines += ["", "Success rates of the final evaluations (goal envs: the share of episodes whose last step "
                  "reported `is_success`):", "", "| group | runs | success IQM | success mean |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {g.label} | {len(g.runs)} | {g.stats['success IQM']} | {g.stats['success mean']} |" for g in goal]
    if pairs:
        lines += ["", "Probability of improvement on the final return, P(X > Y):", "", "| X | Y | P(X > Y) |",
                  "|---|---|---:|"]
        lines += [f"| {x} | {y} | {e.value:.2f} [{e.low:.2f}, {e.high:.2f}] |" for x, y, e in pairs]
    lines += ["", "Runs:", "", "| group | seed | final | best | run directory |", "|---|---:|---:|---:|---|"]
    for g in groups:
        lines += [f"| {g.label} | {r.seed} | {r.final:.1f} | {r.best:.1f} | {r.path} |" for r in g.runs]
        lines += [f"| {g.label} | {r.seed} | diverged at step {r.diverged:,} | — | {r.path} |" for r in g.diverged]
    lines += [""] + [f"![{f.stem}]({f.name})" for f in figures]
    if skipped:
        lines += ["", "Skipped:", ""] + [f"* {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def make_report(paths: Iterable[str | Path], out_dir: str | Path, reps: int = 10_000, seed: int = 0) -> Report:
    """Find the finished runs in ``paths``, group and analyse them, and write report.md, report.json and
    the figures (final_and_best.png, learning_curves.png, probability_of_improvement.png when two
    groups share an env) into ``out_dir``."""
    runs, skipped = find_runs(paths)
    if not runs:
        raise RunError("no finished runs found" + (f" ({skipped[0]})" if skipped else ""))
    if all(r.diverged is not None for r in runs):
        raise RunError(f"every run found diverged ({len(runs)}); there is nothing to estimate")
    if reps < 100:
        raise ValueError(f"reps must be >= 100, got {reps}")
    runs, repeats = drop_repeats(runs)
    skipped = skipped + repeats
    groups = group_runs(runs)
    pairs = analyse(groups, reps, seed)
    out = ensure_writable_dir(out_dir)
    figures = [_interval_figure(out / "final_and_best.png", groups), _curve_figure(out / "learning_curves.png", groups)]
    if pairs:
        figures.append(_improvement_figure(out / "probability_of_improvement.png", pairs))
    md = atomic_write_text(out / "report.md", _markdown(groups, pairs, skipped, reps, figures))
    data = {
        "reps": reps, "confidence": 0.95, "method": "stratified bootstrap, percentile",
        "groups": [{"label": g.label, "env_id": g.env_id, "config": g.config, "runs": [str(r.path) for r in g.runs],
                    "seeds": [r.seed for r in g.runs], "final": [r.final for r in g.runs],
                    "best": [r.best for r in g.runs], "success": [r.success for r in g.runs],
                    "diverged": [{"run": str(r.path), "seed": r.seed, "step": r.diverged} for r in g.diverged],
                    "stats": {k: vars(e) for k, e in g.stats.items()},
                    "curve": [{"step": s, **vars(e)} for s, e in zip(g.curve_steps, g.curve)],
                    "success_curve": [{"step": s, **vars(e)} for s, e in zip(g.curve_steps, g.success_curve)]}
                   for g in groups],
        "probability_of_improvement": [{"x": x, "y": y, **vars(e)} for x, y, e in pairs],
        "skipped": skipped,
    }
    js = atomic_write_json(out / "report.json", data)
    return Report(groups, pairs, skipped, [md, js, *figures])
