"""``ddpgkit tune`` (issue 26): specs refused in one line; a real study (Optuna, a local Ray instance) whose trials
are groups of seeds, its objective the IQM written out from the runs' own summaries, its best configuration written
as files `train --config` and `sweep` read and tested on seeds the search never saw; the same spec, the same study;
a driver killed mid-study and the same command continuing it, every trial counted once."""

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ddpgkit import DDPGConfig
from ddpgkit.experiments.sweep import SweepSpec
from ddpgkit.experiments.tune import TuneError, TuneSpec, run_tune
from ddpgkit.storage.rundir import read_summary

from tests.clihelp import assert_one_line_error, run_cli
from tests.test_sweep import DDPGKIT_BIN, kill_sessions

pytest.importorskip("optuna")

SPEC = {"envs": ["Pendulum-v1"], "preset": "pendulum", "trials": 4, "budget": 1200, "tune_seeds": "0-1",
        "test_seeds": "10-11", "pruner": "median",
        "config": {"eval_interval": 400, "eval_episodes": 2, "learning_starts": 200, "hidden": [16, 16],
                   "checkpoint_interval": 400},
        "space": {"tau": {"low": 0.001, "high": 0.05, "log": True}, "batch_size": {"choices": [32, 64]}}}


def toml(data: dict) -> str:
    def value(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")

    top = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [f"\n[{k}]\n" + "\n".join(f"{json.dumps(x) if '/' in x else x} = {value(y)}" for x, y in v.items())
              for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"


@pytest.mark.parametrize("changes,match", [
    ({"budjet": 10}, "unknown key 'budjet'; did you mean 'budget'"),
    ({"test_seeds": "1-3"}, "test_seeds must not include tuning seeds"),
    ({"space": {"tau": {"low": 0.1, "high": 0.01}}}, r"\[space\] tau: needs numbers low < high"),
    ({"space": {"tau": {"low": 0.0, "high": 0.1, "log": True}}}, "a log scale needs low > 0"),
    ({"space": {"tua": {"choices": [1]}}}, "unknown DDPGConfig field 'tua'; did you mean 'tau'"),
    ({"space": {"eval_interval": {"choices": [100]}}}, "eval_interval is both fixed in"),
    ({"envs": ["Pendulum-v1", "MountainCarContinuous-v0"]}, r"\[normalize\] needs 'Pendulum-v1'"),
    ({"objective": "best"}, "objective must be one of final, auc"),
    ({"trials": 0}, "trials must be an integer >= 1"),
    ({"space": {"batch_size": {"choices": [64, 100000000]}}}, "batch_size must not exceed buffer_size"),
])
def test_bad_specs_are_named(changes, match):
    with pytest.raises(TuneError, match=match):
        TuneSpec.from_dict({**SPEC, **changes})


def test_a_bad_spec_is_one_line_from_the_command(tmp_path, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text(toml({**SPEC, "test_seeds": "0-3"}))
    assert_one_line_error(run_cli(capsys, "tune", spec, "--out", tmp_path / "t"), "must not include tuning seeds")
    assert_one_line_error(run_cli(capsys, "tune", tmp_path, "--finish"), "not a tune directory")


def test_a_study_of_groups_of_seeds_finds_tests_and_proposes(tmp_path, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text(toml(SPEC))
    out = tmp_path / "tune"
    r = run_cli(capsys, "tune", spec, "--out", out)
    assert r.code == 0, r.err
    trials = json.loads((out / "trials.json").read_text())
    assert sorted(map(int, trials)) == [0, 1, 2, 3]
    assert all(t["state"] in ("complete", "pruned") for t in trials.values())
    for number, t in trials.items():  # the objective: the IQM (of two: their mean) of the runs' final evaluations
        if t["state"] == "complete":
            finals = [read_summary(out / "trials" / f"{int(number):04d}" / f"Pendulum-v1-s{s}")["final_eval_mean"]
                      for s in (0, 1)]
            assert t["value"] == pytest.approx(np.mean(finals), rel=1e-9)
            assert t["low"] <= t["value"] <= t["high"]
    best = max(({**t, "number": int(n)} for n, t in trials.items() if t["state"] == "complete"),
               key=lambda t: t["value"])
    tuned = DDPGConfig.load(out / "best.toml")  # what `ddpgkit train --config` reads
    assert tuned.tau == best["params"]["tau"] and tuned.batch_size == best["params"]["batch_size"]
    assert (tuned.total_steps, tuned.hidden, tuned.gamma) == (1200, (16, 16), 0.98)  # budget, [config], the preset
    sweep = SweepSpec.load(out / "test_sweep.toml")  # and what `ddpgkit sweep` reads
    assert sweep.seeds == [10, 11] and sweep.config["tau"] == tuned.tau and sweep.preset == "pendulum"
    report = json.loads((out / "test" / "report" / "report.json").read_text())
    assert sorted(sorted(g["seeds"]) for g in report["groups"]) == [[10, 11], [10, 11]]  # the test seeds only
    assert {Path(g["runs"][0]).parent.name for g in report["groups"]} == {f"tuned-{best['number']:04d}", "base"}
    assert len(report["probability_of_improvement"]) == 2
    md = (out / "tune.md").read_text()
    assert "Parameter importances" in md and "| 3 |" in md and (out / "objective.png").is_file()
    assert (out / "params.png").is_file() and "P(" in r.out
    r = run_cli(capsys, "tune", out, "--propose")
    assert r.code == 0 and r.out.startswith('"Pendulum-v1": EnvEntry(dict(')
    assert "measured here on test seeds 10-11" in r.out
    assert f"tau={tuned.tau!r}" in r.out and "learning_starts=200" in r.out and "hidden=(16, 16)" in r.out
    # the table's training length (the preset's), not the study's budget; no evaluation or checkpoint settings
    assert f"total_steps={DDPGConfig.preset('pendulum').total_steps}" in r.out and "tuned at 1,200 steps" in r.out
    assert "eval_" not in r.out.split("\n")[0] and "checkpoint_interval" not in r.out


def test_the_same_spec_gives_the_same_study(tmp_path):
    spec = TuneSpec.from_dict({**SPEC, "trials": 3, "parallel": 1})
    a = run_tune(spec, tmp_path / "a", finish_after=False)
    b = run_tune(spec, tmp_path / "b", finish_after=False)
    assert [(s.params, s.state, s.value) for s in a.trials] == [(s.params, s.state, s.value) for s in b.trials]
    assert len({s.params["tau"] for s in a.trials}) == 3


def _steps(run: Path) -> list[int]:
    ckpts = run / "checkpoints"
    return [int(p.name) for p in ckpts.iterdir() if p.name.isdigit()] if ckpts.is_dir() else []


def test_a_killed_driver_then_the_same_command_continues_the_study(tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text(toml({**SPEC, "trials": 3, "budget": 4000, "pruner": "none", "parallel": 1}))
    out = tmp_path / "tune"
    proc = subprocess.Popen([str(DDPGKIT_BIN), "tune", str(spec), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "trials" / "0000" / "Pendulum-v1-s0"
    deadline = time.time() + 240
    while time.time() < deadline and max(_steps(first), default=0) < 800:  # trial 0 in flight, checkpointed
        time.sleep(0.05)
    assert max(_steps(first), default=0) >= 800, "trial 0 wrote no checkpoint in 240 s"
    # kill -9 the driver and, at the same moment, what it started: a worker left running after its driver could
    # finish trial 0 before it is stopped (seen in CI), and the resumed trial is what this test is about
    kill_sessions({proc.pid})
    proc.wait()
    assert not (first / "summary.json").exists() and not (out / "tune.md").exists()
    r = subprocess.run([str(DDPGKIT_BIN), "tune", str(spec), "--out", str(out)], capture_output=True, text=True,
                       timeout=400, start_new_session=True)
    assert r.returncode == 0, r.stderr
    trials = json.loads((out / "trials.json").read_text())
    assert sorted(map(int, trials)) == [0, 1, 2] and all(t["state"] == "complete" for t in trials.values())
    assert read_summary(first)["resumed"] is True and read_summary(first)["steps"] == 4000  # from its checkpoint
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001", "0002"]  # none counted twice
    assert len({t["params"]["tau"] for t in trials.values()}) == 3  # the continued study did not propose trial 0 again


def test_the_readme_tune_spec_is_a_valid_spec(tmp_path):
    import re

    guide = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "tuning.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```toml\n(.*?)```", guide, flags=re.S) if "tune_seeds" in b)
    path = tmp_path / "pendulum-tune.toml"
    path.write_text(block)
    spec = TuneSpec.load(path)
    assert (spec.trials, spec.budget, spec.tune_seeds, spec.test_seeds[0]) == (12, 10000, [0, 1, 2, 3, 4], 100)
    assert [p.name for p in spec.space] == ["tau", "actor_lr", "batch_size", "hidden"]
    assert spec.configs({"hidden": [256, 256]}, [0])["Pendulum-v1"][0].hidden == (256, 256)


def test_a_trial_left_running_is_rebuilt_as_an_optuna_trial_and_the_guard_holds(tmp_path):
    """The guard around Optuna's private ``FrozenTrial._trial_id`` (running_trial): a trial a stopped driver left
    running comes back as a Trial that reports to the pruner; without the id, None (told by number instead)."""
    import optuna

    from ddpgkit.experiments.tune import open_study, running_trial

    spec = TuneSpec.from_dict(SPEC)
    study = open_study(spec, tmp_path)
    asked = study.ask({"tau": optuna.distributions.FloatDistribution(0.001, 0.05, log=True)})
    again = open_study(spec, tmp_path)  # a new driver: the study from its journal
    [frozen] = again.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    trial = running_trial(again, frozen)
    assert trial.number == asked.number and trial.params == asked.params
    trial.report(-500.0, 600)
    again.tell(trial, -400.0)
    assert again.trials[0].intermediate_values == {600: -500.0} and again.trials[0].value == -400.0

    class WithoutId:
        number = 0

    assert running_trial(again, WithoutId()) is None


def _fake_run(run: Path, evals: dict[int, float], final: float) -> None:
    """A run directory as a finished run leaves it: metrics.csv with its evaluations and summary.json."""
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("step,eval_mean\n" + "".join(f"{s},{v}\n" for s, v in evals.items()))
    (run / "summary.json").write_text(json.dumps({"status": "finished", "final_eval_mean": final}))


def test_several_envs_are_scored_on_one_scale(tmp_path):
    from ddpgkit.experiments.tune import curve, objective_value

    spec = TuneSpec.from_dict({**SPEC, "envs": ["Pendulum-v1", "MountainCarContinuous-v0"], "tune_seeds": "0-3",
                               "normalize": {"Pendulum-v1": [-1500, -100], "MountainCarContinuous-v0": [-100, 100]},
                               "objective": "final"})
    finals = {"Pendulum-v1": [-200.0, -300.0, -250.0, -1000.0], "MountainCarContinuous-v0": [90.0, 80.0, -5.0, 95.0]}
    payloads = []
    for env, values in finals.items():
        runs = []
        for seed, final in enumerate(values):
            _fake_run(tmp_path / env / f"s{seed}", {400: final - 10, 800: final}, final)
            runs.append({"run_dir": str(tmp_path / env / f"s{seed}")})
        payloads.append({"env_id": env, "trials": runs})
    # IQM of four values: the mean of the middle two (rliable's 25% trimmed mean)
    pend = (-300.0 + -250.0) / 2
    car = (80.0 + 90.0) / 2
    expected = np.mean([(pend + 1500) / 1400, (car + 100) / 200])
    value, _, _ = objective_value(spec, payloads)
    assert value == pytest.approx(expected)
    c = curve(spec, payloads)
    assert sorted(c) == [400, 800] and c[800] == pytest.approx(expected)
    auc = TuneSpec.from_dict({**SPEC, "envs": spec.envs, "tune_seeds": "0-3", "objective": "auc",
                              "normalize": {"Pendulum-v1": [-1500, -100], "MountainCarContinuous-v0": [-100, 100]}})
    assert objective_value(auc, payloads)[0] == pytest.approx(np.mean([c[400], c[800]]))


def test_a_trial_worse_than_the_median_is_pruned_at_the_step_it_reached(tmp_path):
    """On the one-step Mirror task a critic learning rate of 1e-8 learns nothing (return ≈ −0.88) where 1e-3 solves it
    (≈ −0.01). With the sampler's seed 2 the first three trials draw 1e-3 and the fourth 1e-8 (measured): the median
    pruner, past its warm-up (a quarter of the 1,500 steps), stops the fourth at its first judged evaluation, and
    the study goes on to its fifth trial."""
    spec = TuneSpec.from_dict({
        "envs": ["ddpgkit/Mirror-v0"], "trials": 5, "budget": 1500, "tune_seeds": "0-1", "test_seeds": "10-11",
        "pruner": "median", "seed": 2, "parallel": 1,
        "config": {"eval_interval": 300, "eval_episodes": 5, "learning_starts": 200, "hidden": [16, 16], "gamma": 0.0,
                   "batch_size": 32, "noise_scale": 0.2},
        "space": {"critic_lr": {"choices": [1e-3, 1e-8]}}})
    result = run_tune(spec, tmp_path / "t", finish_after=False)
    states = [(s.params["critic_lr"], s.state, s.step) for s in result.trials]
    assert states == [(1e-3, "complete", 1500)] * 3 + [(1e-8, "pruned", 600), (1e-3, "complete", 1500)]
    assert all(s.value == pytest.approx(-0.009, abs=0.005) for s in result.trials if s.state == "complete")
    trials = json.loads((tmp_path / "t" / "trials.json").read_text())
    assert trials["3"]["state"] == "pruned" and trials["3"]["step"] == 600
    run = tmp_path / "t" / "trials" / "0003" / "ddpgkit_Mirror-v0-s0"
    assert not (run / "summary.json").exists()  # stopped where it was judged
