"""Statistics for results over many seeds, as Agarwal et al. (2021, "Deep RL at the edge of the
statistical precipice") define them and their library rliable computes them. numpy only.

Scores are a (runs, tasks) matrix: one row per run (seed), one column per task (env). Here:

* :func:`iqm` — the interquartile mean: the mean of the middle 50% of all scores, pooled over runs
  and tasks (``scipy.stats.trim_mean(scores, 0.25, axis=None)``: ⌊0.25·n⌋ scores cut at each end).
* :func:`stratified_bootstrap_ci` — a 95% percentile confidence interval of any such statistic:
  resample the runs of each task with replacement (stratified by task), recompute the statistic, and
  take the 2.5% and 97.5% percentiles of the resampled values (rliable's default,
  ``get_interval_estimates``).
* :func:`probability_of_improvement` — P(X > Y): for each task the probability that a random run of
  X scores above a random run of Y (ties count half; the Mann-Whitney U statistic over n·m), averaged
  over tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Statistic = Callable[[np.ndarray], float]


def _matrix(scores: np.ndarray | list) -> np.ndarray:
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]  # one task
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (runs, tasks) matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("scores must be finite")
    return a


def iqm(scores: np.ndarray | list) -> float:
    """Interquartile mean of all scores (runs × tasks pooled): the mean after cutting ⌊n/4⌋ scores at
    each end of the sorted n scores."""
    flat = np.sort(_matrix(scores), axis=None)
    cut = int(0.25 * flat.size)
    return float(flat[cut:flat.size - cut].mean())


def mean(scores: np.ndarray | list) -> float:
    """Mean of all scores."""
    return float(_matrix(scores).mean())


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM of each bootstrap sample: samples (reps, runs, tasks) -> (reps,)."""
    flat = np.sort(samples.reshape(samples.shape[0], -1), axis=1)
    n = flat.shape[1]
    cut = int(0.25 * n)
    return flat[:, cut:n - cut].mean(axis=1)


def _mean_rows(samples: np.ndarray) -> np.ndarray:
    return samples.reshape(samples.shape[0], -1).mean(axis=1)


_VECTORISED: dict[Callable, Callable[[np.ndarray], np.ndarray]] = {iqm: _iqm_rows, mean: _mean_rows}


def _resample_indices(rng: np.random.Generator, runs: int, tasks: int, reps: int) -> np.ndarray:
    """(reps, runs, tasks) run indices: each task's runs resampled with replacement, independently."""
    return rng.integers(0, runs, size=(reps, runs, tasks))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.1f} [{self.low:.1f}, {self.high:.1f}]"


def stratified_bootstrap_ci(scores: np.ndarray | list, statistic: Statistic = iqm, reps: int = 10_000,
                            confidence: float = 0.95, seed: int = 0) -> Estimate:
    """``statistic`` of ``scores`` (runs, tasks) with a percentile confidence interval from ``reps``
    stratified bootstrap resamples (seeded: the same inputs give the same interval)."""
    a = _matrix(scores)
    runs, tasks = a.shape
    rng = np.random.default_rng(seed)
    idx = _resample_indices(rng, runs, tasks, reps)
    samples = np.take_along_axis(a[None, :, :].repeat(reps, axis=0), idx, axis=1)  # (reps, runs, tasks)
    fast = _VECTORISED.get(statistic)
    values = fast(samples) if fast is not None else np.array([statistic(s) for s in samples])
    alpha = (1.0 - confidence) / 2
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return Estimate(statistic(a), float(low), float(high))


def probability_of_improvement(x: np.ndarray | list, y: np.ndarray | list) -> float:
    """P(X > Y), averaged over tasks: x (n, tasks) and y (m, tasks) scores of two algorithms."""
    a, b = _matrix(x), _matrix(y)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y need the same tasks, got {a.shape[1]} and {b.shape[1]}")
    greater = (a[:, None, :] > b[None, :, :]).mean(axis=(0, 1))
    ties = (a[:, None, :] == b[None, :, :]).mean(axis=(0, 1))
    return float((greater + 0.5 * ties).mean())


def probability_of_improvement_ci(x: np.ndarray | list, y: np.ndarray | list, reps: int = 2_000,
                                  confidence: float = 0.95, seed: int = 0) -> Estimate:
    """:func:`probability_of_improvement` with a percentile interval: the runs of X and of Y are
    resampled independently, each stratified by task."""
    a, b = _matrix(x), _matrix(y)
    rng = np.random.default_rng(seed)
    values = np.empty(reps)
    for r in range(reps):
        ia = rng.integers(0, a.shape[0], size=a.shape)
        ib = rng.integers(0, b.shape[0], size=b.shape)
        values[r] = probability_of_improvement(np.take_along_axis(a, ia, 0), np.take_along_axis(b, ib, 0))
    alpha = (1.0 - confidence) / 2
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return Estimate(probability_of_improvement(a, b), float(low), float(high))
