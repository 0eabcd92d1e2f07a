"""run_experiment: the life of a training run as a library call, equal to `ddpgkit train`."""

import hashlib
import json

import pytest

from ddpgkit import DDPG, Callback, DDPGConfig, prepare_experiment, resume_experiment, run_experiment
from ddpgkit.config.hyperparams import defaults_for
from ddpgkit.config.resolve import origin_of
from ddpgkit.errors import ConfigError, RunError
from ddpgkit.storage.rundir import list_checkpoints, read_metrics

from tests.clihelp import run_subprocess

CONFIG = dict(total_steps=600, learning_starts=100, hidden=(32, 32), batch_size=32, buffer_size=2000,
              eval_interval=200, eval_episodes=2, checkpoint_interval=200, keep_checkpoints=5, seed=3, noise="ou")
FLAGS = ["--steps", "600", "--learning-starts", "100", "--hidden", "32,32", "--batch-size", "32",
         "--buffer-size", "2000",
         "--eval-interval", "200", "--eval-episodes", "2", "--checkpoint-interval", "200", "--keep-checkpoints", "5",
         "--seed", "3", "--noise", "ou"]
TIMING = {"steps_per_s", "wall_s", "train_s"}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_experiment_writes_what_ddpgkit_train_writes(tmp_path):
    cli_run, lib_run = tmp_path / "cli", tmp_path / "lib"
    r = run_subprocess("train", "Pendulum-v1", *FLAGS, "--out", cli_run)
    assert r.code == 0, r.err
    # what the CLI does: the env's entry in the hyperparameter table, the flags over it, the origin recorded
    base = defaults_for("Pendulum-v1")
    [result] = run_experiment("Pendulum-v1", base.config.replace(**CONFIG), lib_run, origin=origin_of(base))

    assert result.run_dir == lib_run and result.checkpoint == lib_run / "checkpoints" / "600"
    assert sorted(p.name for p in cli_run.iterdir()) == sorted(p.name for p in lib_run.iterdir())
    assert (cli_run / "config.toml").read_text() == (lib_run / "config.toml").read_text()
    strip = [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(cli_run)]
    assert strip == [{k: v for k, v in row.items() if k not in TIMING} for row in read_metrics(lib_run)]
    summaries = [json.loads((d / "summary.json").read_text()) for d in (cli_run, lib_run)]
    assert summaries[1] == result.summary
    assert [{k: v for k, v in s.items() if k not in TIMING} for s in summaries][0] == \
        {k: v for k, v in summaries[1].items() if k not in TIMING}
    # the same checkpoints, byte for byte: four networks, optimisers, buffer, every generator
    assert [p.name for p in list_checkpoints(cli_run)] == [p.name for p in list_checkpoints(lib_run)] == \
        ["600", "400", "200"]
    for a, b in zip(list_checkpoints(cli_run), list_checkpoints(lib_run)):
        for name in ("model.safetensors", "training.safetensors"):
            assert digest(a / name) == digest(b / name)


class InodeAtEnd(Callback):
    """Records the final periodic checkpoint's manifest (inode, mtime) when the loop ends."""

    def __init__(self, path):
        self.path, self.seen = path, None

    def on_training_end(self, trainer):
        st = self.path.stat()
        self.seen = (st.st_ino, st.st_mtime_ns)


def test_the_final_checkpoint_is_not_written_twice(tmp_path):
    """Pendulum episodes are 200 steps: the periodic checkpoint due at 400 is taken at step 400, which is
    also the final state. The final save must reuse it, not write the whole buffer again."""
    cfg = DDPGConfig(**{**CONFIG, "total_steps": 400})
    manifest = tmp_path / "run" / "checkpoints" / "400" / "manifest.json"
    probe = InodeAtEnd(manifest)
    [result] = run_experiment("Pendulum-v1", cfg, tmp_path / "run", callbacks=probe)
    st = manifest.stat()
    assert probe.seen == (st.st_ino, st.st_mtime_ns)  # untouched after the loop ended
    assert [step for step, _ in result.saved] == [200, 400]
    assert result.checkpoint == manifest.parent


def test_resume_and_extend_from_python(tmp_path):
    run = tmp_path / "run"
    [full] = run_experiment("Pendulum-v1", DDPGConfig(**CONFIG), run)
    with pytest.raises(ConfigError, match="gamma differs"):
        prepare_experiment("Pendulum-v1", DDPGConfig(**CONFIG, gamma=0.9), run, resume=True)
    with pytest.raises(RunError, match="already holds a run"):
        prepare_experiment("Pendulum-v1", DDPGConfig(**CONFIG), run)
    with pytest.raises(RunError, match="already has 600 steps"):
        resume_experiment(run)
    exp = resume_experiment(run, total_steps=800)
    assert exp.resumed_from == run / "checkpoints" / "600" and exp.agents[0].num_timesteps == 600
    [longer] = exp.run()
    assert longer.summary["steps"] == 800 and longer.summary["resumed"] is True
    assert len(read_metrics(run)) > len(full.agent.trainer.history)


def test_default_config_and_run_dir_from_a_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = prepare_experiment("ddpgkit/Mirror-v0", preset="pendulum")
    assert [d.as_posix() for d in exp.run_dirs] == ["runs/ddpgkit_Mirror-v0-s0"]
    assert exp.agents[0].config == DDPGConfig.preset("pendulum") and exp.preset == "pendulum"


def test_the_best_evaluation_is_kept_beside_the_latest(tmp_path, capsys):
    from ddpgkit import DDPG
    from ddpgkit.storage.rundir import read_metrics

    from tests.clihelp import run_cli

    cfg = DDPGConfig(**{**CONFIG, "total_steps": 1400, "eval_interval": 200})
    [result] = run_experiment("Pendulum-v1", cfg, tmp_path / "run")
    evals = [(r["step"], r["eval_mean"]) for r in read_metrics(tmp_path / "run") if r["eval_mean"] is not None]
    best_step, best_mean = max(evals, key=lambda e: e[1])
    s = result.summary
    assert (s["best_step"], s["best_eval_mean"]) == (best_step, best_mean)
    assert s["best_checkpoint"] == "checkpoints/best" and s["final_eval_mean"] == evals[-1][1]
    best = DDPG.load(tmp_path / "run" / "checkpoints" / "best")
    assert best.trainer is None and best.num_timesteps == best_step  # model only: not a resume point
    assert best.evaluate().mean() == best_mean  # the networks that made that evaluation
    assert [p.name for p in list_checkpoints(tmp_path / "run")][0] == "1400"  # resume ignores it
    r = run_cli(capsys, "eval", tmp_path / "run", "--episodes", "2")
    assert r.code == 0 and "best: " in r.out and f"step {int(best_step):,})" in r.out


def test_learn_below_the_warm_up_says_so():
    from ddpgkit import DDPG
    from ddpgkit.errors import NoLearningWarning

    agent = DDPG("Pendulum-v1", DDPGConfig(**{**CONFIG, "learning_starts": 300}))
    with pytest.warns(NoLearningWarning, match=r"learn\(200\) ends at step 200, before learning starts at step 300"):
        agent.learn(200)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.learn(200)  # to 400: learning starts on the way
    assert agent.learner.num_updates == 100


def test_train_with_steps_below_the_default_warm_up_adapts_it_and_says_so(tmp_path, capsys):
    from tests.clihelp import run_cli

    args = ["train", "ddpgkit/Mirror-v0", "--steps", "300", "--batch-size", "16", "--hidden", "8",
            "--eval-episodes", "2", "--out", tmp_path / "run"]
    r = run_cli(capsys, *args)  # the default learning_starts is 1,000
    assert r.code == 0, r.err
    assert ("note: learning_starts 1,000 would leave no step to learn in a run of 300: learning starts at step 30"
            in r.out)
    saved = DDPGConfig.load(tmp_path / "run" / "config.toml")
    assert (saved.total_steps, saved.learning_starts) == (300, 30)
    toml = tmp_path / "c.toml"
    toml.write_text("learning_starts = 500\n")  # chosen in a file: refused, not adapted
    r = run_cli(capsys, *args[:-2], "--config", toml, "--out", tmp_path / "run2")
    assert r.code == 1 and "learning_starts must be below total_steps (300)" in r.err


def test_training_time_adds_up_across_a_resume(tmp_path):
    """A checkpoint taken during a run records the time trained so far in that run too, so the
    resumed run's train_s is the sum of both parts (here the final checkpoint is a periodic one)."""
    cfg = DDPGConfig(**{**CONFIG, "checkpoint_interval": 200, "total_steps": 400})
    [first] = run_experiment("Pendulum-v1", cfg, tmp_path / "r")
    assert first.summary["train_s"] > 0
    # the checkpoint at 400 was taken inside the loop, before the run ended
    agent = DDPG.load(tmp_path / "r" / "checkpoints" / "400")
    assert 0 < agent.trainer.wall_s <= first.summary["train_s"]
    [second] = resume_experiment(tmp_path / "r", 600).run()
    assert second.summary["train_s"] > agent.trainer.wall_s + 0.5 * second.summary["wall_s"]
