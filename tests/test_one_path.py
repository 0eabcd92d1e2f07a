"""One path (issue 22): a single run is a group of one, one config rule, one "finished", one refusal."""

import json
import tomllib

import pytest
import torch

from ddpgkit import (
    Callback,
    DDPGConfig,
    DDPGGroup,
    prepare_experiment,
    resolve_config,
    resume_experiment,
    run_experiment,
)
from ddpgkit.config.hyperparams import ENV_HYPERPARAMS
from ddpgkit.config.resolve import warmup_note
from ddpgkit.errors import ConfigError, RunError, RunFinished
from ddpgkit.experiments.sweep import SweepSpec
from ddpgkit.storage.rundir import check_run_dirs, read_metrics, run_finished

from tests.clihelp import assert_one_line_error, run_cli

TINY = dict(total_steps=400, learning_starts=100, hidden=(16, 16), batch_size=32, buffer_size=1000, eval_interval=200,
            eval_episodes=2, checkpoint_interval=200)
FLAGS = ["--steps", "400", "--learning-starts", "100", "--hidden", "16,16", "--batch-size", "32", "--buffer-size",
         "1000", "--eval-interval", "200", "--eval-episodes", "2", "--checkpoint-interval", "200"]
TIMING = {"steps_per_s", "wall_s", "train_s"}


def _model(run):
    from safetensors.torch import load_file

    summary = json.loads((run / "summary.json").read_text())
    return load_file(run / summary["checkpoint"] / "model.safetensors")


def _rows(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


def test_train_seed_and_train_seeds_of_one_seed_are_the_same_run(tmp_path, capsys):
    one, group = tmp_path / "seed", tmp_path / "seeds"
    assert run_cli(capsys, "train", "Pendulum-v1", *FLAGS, "--seed", "3", "--out", one).code == 0
    r = run_cli(capsys, "train", "Pendulum-v1", *FLAGS, "--seeds", "3", "--out", group)
    assert r.code == 0, r.err
    assert "run directory: " in r.out and "seed 3" in r.out  # printed as one run, not as a group
    twin = group / "Pendulum-v1-s3"
    assert (one / "config.toml").read_text() == (twin / "config.toml").read_text()
    assert _rows(one) == _rows(twin)
    mine, theirs = _model(one), _model(twin)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (one, twin))
    assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    assert a["group_seeds"] is None


def test_a_group_of_one_trains_as_its_member_alone():
    cfg = DDPGConfig(**TINY, seed=5)
    from ddpgkit import DDPG

    alone = DDPG("Pendulum-v1", cfg).learn(300)
    group = DDPGGroup.create("Pendulum-v1", cfg, seeds=[5])
    assert group.learner is group.members[0].learner  # no stacking: one agent's (B, ·) update
    group.learn(300)
    ours, ref = group.members[0].model_tensors(), alone.model_tensors()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    assert [r["critic_loss"] for r in group.members[0].trainer.history] == [r["critic_loss"] for r in
                                                                            alone.trainer.history]


def test_a_group_callback_sees_every_member_as_ddpg_learn_callbacks_see_their_agent():
    class Rows(Callback):
        def __init__(self):
            self.rows = {}

        def on_metrics(self, trainer, row):
            self.rows.setdefault(trainer.agent.config.seed, []).append(row)

    seen = Rows()
    group = DDPGGroup.create("Pendulum-v1", DDPGConfig(**TINY), seeds=[0, 1]).learn(300, callback=seen)
    assert sorted(seen.rows) == [0, 1]
    for m in group.members:
        assert seen.rows[m.config.seed] == m.trainer.history


def test_the_config_rule_base_then_file_then_values(tmp_path):
    entry = ENV_HYPERPARAMS["Pendulum-v1"].values  # the table's entry: learning_starts 500, gamma 0.98
    plain = resolve_config("Pendulum-v1")
    assert plain.config.gamma == entry["gamma"] and plain.notes == ()
    assert plain.origin["defaults"] == "table:Pendulum-v1"
    assert resolve_config("Pendulum-v1", preset="fujimoto2018").config.gamma == 0.99  # a preset beats the table
    file = tmp_path / "c.toml"
    file.write_text("[ddpg]\ngamma = 0.9\ntau = 0.02\n")
    both = resolve_config("Pendulum-v1", file=file, values={"tau": 0.03})
    assert (both.config.gamma, both.config.tau) == (0.9, 0.03)  # the file over the base, the values over the file
    # a run too short for the base's warm-up: adapted, said and recorded in one sentence
    short = resolve_config("Pendulum-v1", values={"total_steps": 300})
    note = warmup_note(500, 300, 30)
    assert note.startswith("learning_starts 500 would leave no step to learn in a run of 300: "
                           "learning starts at step 30")
    assert short.config.learning_starts == 30 and short.notes == (note,) and short.origin["adapted"] == note
    file.write_text("total_steps = 300\n")  # shortened by the file: the same rule
    assert resolve_config("Pendulum-v1", file=file).notes == (note,)
    with pytest.raises(ConfigError, match="learning_starts must be below total_steps"):  # a chosen warm-up is kept
        resolve_config("Pendulum-v1", values={"total_steps": 300, "learning_starts": 400})
    with pytest.raises(ConfigError, match="unknown key 'tua'; did you mean 'tau'"):
        resolve_config("Pendulum-v1", values={"tua": 0.1})


def test_a_sweep_and_the_python_api_resolve_a_config_as_train_does(tmp_path):
    spec = SweepSpec.from_dict({"envs": ["Pendulum-v1"], "seeds": [0, 1], "config": {"total_steps": 300}})
    trials = spec.trials(tmp_path)
    expected = resolve_config("Pendulum-v1", values={"total_steps": 300, "seed": 1})
    assert trials[1].config == expected.config and trials[1].notes == expected.notes != ()
    assert trials[1].origin == expected.origin
    exp = prepare_experiment("Pendulum-v1", resolve_config("Pendulum-v1", values={"total_steps": 300}),
                             tmp_path / "py")
    assert exp.origin["adapted"] == expected.notes[0] and exp.agents[0].config.learning_starts == 30
    assert tomllib.loads(exp.agents[0].config.to_toml(exp.origin))["origin"]["adapted"] == expected.notes[0]


def test_finished_means_the_summary_says_so_and_a_run_stopped_before_it_is_finished_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert not run_finished(run)
    [done] = run_experiment("Pendulum-v1", DDPGConfig(**TINY), run)
    assert run_finished(run) and run_finished(run, 400) and not run_finished(run, 600)
    with pytest.raises(RunFinished, match="already has 400 steps"):
        resume_experiment(run)
    assert_one_line_error(run_cli(capsys, "resume", run), "already has 400 steps")
    # killed after the final checkpoint, before summary.json: not finished; resuming finishes it without training
    (run / "summary.json").unlink()
    assert not run_finished(run)
    [again] = resume_experiment(run).run()
    assert again.summary["steps"] == 400 and run_finished(run)
    assert again.summary["final_eval_mean"] == done.summary["final_eval_mean"]
    ours, ref = again.agent.model_tensors(), done.agent.model_tensors()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    with pytest.raises(RunError, match="already has 400 steps"):  # fewer steps than trained: refused
        resume_experiment(run, total_steps=200)


def test_one_refusal_of_existing_runs(tmp_path):
    run = tmp_path / "run"
    run_experiment("Pendulum-v1", DDPGConfig(**TINY), run)
    with pytest.raises(ConfigError, match="resume and overwrite exclude each other"):
        check_run_dirs([tmp_path / "new"], resume=True, overwrite=True)
    with pytest.raises(RunError, match="already holds a run"):
        check_run_dirs([tmp_path / "new", run])
    check_run_dirs([run], resume=True)
    check_run_dirs([run], overwrite=True)
    for seeds in ([0], [0, 1]):  # a single run and a group refuse in the same words
        with pytest.raises(RunError, match="already holds a run"):
            prepare_experiment("Pendulum-v1", DDPGConfig(**TINY), [run, tmp_path / "other"][:len(seeds)], seeds=seeds)
