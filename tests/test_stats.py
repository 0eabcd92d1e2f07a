"""The report's statistics against hand-computed cases and against rliable itself (a test-only
dependency) on fixed data."""

import numpy as np
import pytest

from ddpgkit.analysis.stats import (
    iqm,
    mean,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)

RNG = np.random.default_rng(7)
SCORES = RNG.normal(-150, 40, size=(10, 1))  # 10 seeds of one task
MULTI = RNG.normal(0, 1, size=(7, 3)) * np.array([1.0, 10.0, 100.0])  # 7 runs x 3 tasks


def test_iqm_by_hand():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # cut 2 at each end: mean of 3, 4, 5, 6
    assert iqm([10, 1, 9, 2, 8, 3, 7, 4, 6, 5]) == pytest.approx(5.5)  # n = 10: cut 2 -> 3..8
    assert iqm([[1, 100], [2, 200], [3, 300], [4, 400]]) == pytest.approx((3 + 4 + 100 + 200) / 4)  # pooled
    assert iqm([5.0]) == 5.0 and mean([1, 2, 6]) == 3.0
    with pytest.raises(ValueError, match="finite"):
        iqm([1.0, float("nan")])


def test_probability_of_improvement_by_hand():
    assert probability_of_improvement([1, 2, 3], [2]) == pytest.approx(0.5)  # 0 + tie 0.5 + 1, over 3 pairs
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0
    assert probability_of_improvement([[1, 5], [2, 6]], [[3, 0], [4, 0]]) == pytest.approx(0.5)  # 0 and 1, averaged
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(np.zeros((2, 2)), np.zeros((2, 3)))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    a = stratified_bootstrap_ci(SCORES, iqm, reps=2000, seed=3)
    b = stratified_bootstrap_ci(SCORES, iqm, reps=2000, seed=3)
    assert a == b and a.low <= a.value <= a.high and a.low < a.high
    const = stratified_bootstrap_ci(np.full((5, 2), 3.0), mean, reps=500)
    assert (const.value, const.low, const.high) == (3.0, 3.0, 3.0)


def test_bootstrap_resamples_within_each_task():
    """Stratified: a task whose runs all score 100 stays at 100 in every resample, so the mean's interval
    of [all-0 task, all-100 task] is the single point 50 (an unstratified resample of all scores would
    mix them)."""
    scores = np.stack([np.zeros(6), np.full(6, 100.0)], axis=1)
    e = stratified_bootstrap_ci(scores, mean, reps=500)
    assert (e.low, e.value, e.high) == (50.0, 50.0, 50.0)


def test_custom_statistic_equals_the_vectorised_path():
    fast = stratified_bootstrap_ci(MULTI, iqm, reps=300, seed=1)
    slow = stratified_bootstrap_ci(MULTI, lambda s: iqm(s), reps=300, seed=1)
    assert fast.value == slow.value
    assert fast.low == pytest.approx(slow.low) and fast.high == pytest.approx(slow.high)


rliable = pytest.importorskip("rliable", reason="rliable is the test-only reference (pip install -e '.[dev]')")


def test_point_estimates_equal_rliables():
    from rliable import metrics

    assert iqm(MULTI) == pytest.approx(metrics.aggregate_iqm(MULTI), rel=1e-12)
    assert iqm(SCORES) == pytest.approx(metrics.aggregate_iqm(SCORES), rel=1e-12)
    assert mean(MULTI) == pytest.approx(np.mean(MULTI), rel=1e-12)
    y = MULTI + RNG.normal(0.3, 1.0, size=MULTI.shape)
    y[0, 0] = MULTI[0, 0]  # a tie
    assert probability_of_improvement(MULTI, y) == pytest.approx(metrics.probability_of_improvement(MULTI, y),
                                                                 rel=1e-12)
    assert probability_of_improvement(SCORES, SCORES) == metrics.probability_of_improvement(SCORES, SCORES) == 0.5


@pytest.mark.parametrize("data", ["one task", "three tasks"])
def test_confidence_intervals_agree_with_rliables(data):
    """Both draw their own resamples (rliable through arch), so the intervals agree to the bootstrap's
    own noise: with 20,000 resamples the percentiles move by well under 3% of the interval's width."""
    from rliable import library, metrics

    scores = SCORES if data == "one task" else MULTI
    points, intervals = library.get_interval_estimates({"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]),
                                                       reps=20_000)
    ours = stratified_bootstrap_ci(scores, iqm, reps=20_000, seed=0)
    low, high = intervals["x"][:, 0]
    width = high - low
    assert ours.value == pytest.approx(points["x"][0])
    assert abs(ours.low - low) < 0.03 * width and abs(ours.high - high) < 0.03 * width


def test_probability_of_improvement_interval_agrees_with_rliables():
    from rliable import library, metrics

    x, y = SCORES, SCORES + 15.0 + RNG.normal(0, 20, size=SCORES.shape)
    _, intervals = library.get_interval_estimates({"xy": (x, y)}, metrics.probability_of_improvement, reps=3000)
    ours = probability_of_improvement_ci(x, y, reps=3000, seed=0)
    low, high = intervals["xy"][:, 0]
    assert abs(ours.low - low) < 0.04 and abs(ours.high - high) < 0.04
