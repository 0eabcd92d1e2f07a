"""`ddpgkit report`: runs found and grouped from their directories, statistics, every figure written."""

import json
import shutil

import numpy as np
import pytest

from ddpgkit import DDPGConfig, run_experiment
from ddpgkit.analysis.report import find_runs, group_runs, make_report
from ddpgkit.analysis.stats import iqm, stratified_bootstrap_ci
from ddpgkit.storage.rundir import read_summary

from tests.clihelp import assert_one_line_error, run_cli
from tests.pngcheck import assert_png

TINY = dict(total_steps=600, learning_starts=100, hidden=(8,), batch_size=16, buffer_size=1000, eval_interval=200,
            eval_episodes=2, checkpoint_interval=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two configs (tau) × three seeds; one of them run with other threads and checkpointing (same group)."""
    root = tmp_path_factory.mktemp("runs")
    for tau in (0.01, 0.05):
        for seed in (0, 1, 2):
            extra = {"threads": 2, "keep_checkpoints": 1} if seed == 2 else {}
            run_experiment("Pendulum-v1", DDPGConfig(**TINY, tau=tau, seed=seed, **extra),
                           root / f"tau{tau}" / f"s{seed}")
    return root


def test_groups_differ_only_in_config_not_in_seed_or_threads(runs):
    found, skipped = find_runs([runs])
    assert len(found) == 6 and not skipped
    groups = group_runs(found)
    assert [g.label for g in groups] == ["Pendulum-v1 tau=0.01", "Pendulum-v1 tau=0.05"]
    assert [[r.seed for r in g.runs] for g in groups] == [[0, 1, 2], [0, 1, 2]]
    r = groups[0].runs[0]
    assert r.final == read_summary(r.path)["final_eval_mean"] and r.best >= r.final
    assert sorted(r.curve) == [200, 400, 600]


def test_report_files_statistics_and_figures(runs, tmp_path):
    rep = make_report([runs], tmp_path / "report", reps=2000)
    for name in ("final_and_best.png", "learning_curves.png", "probability_of_improvement.png"):
        assert_png(tmp_path / "report" / name)
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    g = data["groups"][0]
    assert g["final"] == [r.final for r in rep.groups[0].runs]
    expected = stratified_bootstrap_ci(np.array(g["final"]), iqm, 2000, seed=0)
    assert g["stats"]["final IQM"] == {"value": expected.value, "low": expected.low, "high": expected.high}
    assert g["stats"]["best IQM"]["value"] == iqm(g["best"])
    assert [c["step"] for c in g["curve"]] == [200, 400, 600]
    pairs = {(p["x"], p["y"]): p["value"] for p in data["probability_of_improvement"]}
    assert pairs[("Pendulum-v1 tau=0.01", "Pendulum-v1 tau=0.05")] == pytest.approx(
        1 - pairs[("Pendulum-v1 tau=0.05", "Pendulum-v1 tau=0.01")])
    md = (tmp_path / "report" / "report.md").read_text()
    assert "best IQM (max over evals)" in md and "![learning_curves](learning_curves.png)" in md


def test_unfinished_runs_are_skipped_and_named(runs, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(runs / "tau0.01", copy)
    (copy / "s1" / "summary.json").unlink()  # as a run still training
    r = run_cli(capsys, "report", copy, "--reps", "500")
    assert r.code == 0, r.err
    assert "s1: not finished" in r.err and "Pendulum-v1 (n=2)" in r.out
    assert (copy / "report" / "report.md").is_file()


def test_a_repeated_config_and_seed_is_one_sample(runs, tmp_path):
    """Two directories of one config and seed (the same test seeds trained by two tune studies) count once."""
    copy = tmp_path / "copy"
    shutil.copytree(runs / "tau0.01" / "s1", copy / "s1")
    rep = make_report([runs, copy], tmp_path / "report", reps=500)
    assert [[r.seed for r in g.runs] for g in rep.groups] == [[0, 1, 2], [0, 1, 2]]
    assert [s for s in rep.skipped if "the same env, config and seed as" in s and "counted once" in s] == [
        f"{copy / 's1'}: the same env, config and seed as {runs / 'tau0.01' / 's1'} (counted once)"]  # first by path


def test_report_errors_one_line(tmp_path, capsys):
    assert_one_line_error(run_cli(capsys, "report", tmp_path / "none"), "no such directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli(capsys, "report", empty), "no finished runs found")
    assert_one_line_error(run_cli(capsys, "report", empty, "--reps", "5"), "--reps must be >= 100")


def test_long_group_labels_fit_the_probability_of_improvement_figure(tmp_path):
    """A sweep's labels name every varied value: the figure wraps them and widens, without matplotlib's
    'tight layout not applied' warning."""
    import warnings

    from ddpgkit.analysis.report import _improvement_figure
    from ddpgkit.analysis.stats import Estimate

    long = "Hopper-v5 n_critics=2 policy_frequency=2 target_noise=0.2 n_step=3 learning_starts=1000"
    other = long.replace("n_critics=2", "n_critics=1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = _improvement_figure(tmp_path / "p.png", [(long, other, Estimate(0.4, 0.1, 0.8)),
                                                         (other, long, Estimate(0.6, 0.2, 0.9))])
    assert_png(path)
