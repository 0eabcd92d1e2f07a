"""Beyond Pendulum: a few hundred steps of one MuJoCo and one Box2D task through the CLI (train, save,
load, eval, a headless GIF), and exact resume on a MuJoCo task."""

import importlib.util

import numpy as np
import pytest
import torch

from ddpgkit import DDPG, Callback, DDPGConfig
from ddpgkit.experiments.run import load_latest
from ddpgkit.storage.rundir import read_summary
from ddpgkit.training.callbacks import Checkpointer

from tests.clihelp import run_cli, run_subprocess

FAST = ["--steps", "400", "--learning-starts", "100", "--batch-size", "32", "--hidden", "32,32", "--eval-interval",
        "200", "--eval-episodes", "2", "--checkpoint-interval", "200"]
needs_mujoco = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="the `mujoco` extra")
needs_box2d = pytest.mark.skipif(importlib.util.find_spec("Box2D") is None, reason="the `box2d` extra")


@pytest.mark.parametrize("env_id,obs_dim,act_dim", [
    pytest.param("InvertedPendulum-v5", 4, 1, marks=needs_mujoco),
    pytest.param("LunarLanderContinuous-v3", 8, 2, marks=needs_box2d),
])
def test_train_save_load_eval_and_a_headless_gif(env_id, obs_dim, act_dim, tmp_path, capsys):
    run = tmp_path / "run"
    r = run_subprocess("train", env_id, *FAST, "--out", run)  # a fresh process, as a user runs it
    assert r.code == 0, r.err
    summary = read_summary(run)
    assert summary["env_id"] == env_id and summary["steps"] == 400
    agent = DDPG.load(run / summary["checkpoint"])
    assert (agent.obs_dim, agent.act_dim) == (obs_dim, act_dim) and agent.num_timesteps == 400
    r = run_cli(capsys, "eval", run, "--episodes", "2", "--gif", tmp_path / "ep.gif")
    assert r.code == 0, r.err
    assert f"return: {summary['final_eval_mean']:.2f}" in r.out
    from PIL import Image

    gif = Image.open(tmp_path / "ep.gif")
    assert gif.format == "GIF" and gif.n_frames >= 2
    pixels = np.asarray(gif.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 10  # a rendered scene, not a blank frame


@needs_mujoco
def test_exact_resume_on_a_mujoco_task(tmp_path):
    """A checkpoint taken at an episode end resumes bit-identically: MuJoCo is deterministic given the
    env's generator, which the checkpoint restores."""
    cfg = DDPGConfig(hidden=(32, 32), total_steps=900, learning_starts=100, batch_size=32, buffer_size=2000,
                     eval_interval=300, eval_episodes=2, checkpoint_interval=200, keep_checkpoints=2, seed=1)
    full = DDPG("InvertedPendulum-v5", cfg).learn()

    class Crash(Exception):
        pass

    class CrashAt(Callback):
        def on_step(self, trainer):
            if trainer.step == 700:
                raise Crash

    interrupted = DDPG("InvertedPendulum-v5", cfg)
    with pytest.raises(Crash):
        interrupted.learn(callback=[Checkpointer(tmp_path, cfg.checkpoint_interval, cfg.keep_checkpoints), CrashAt()])
    [resumed], [path], _ = load_latest(tmp_path)
    assert 200 <= resumed.num_timesteps < 700 and resumed.trainer.at_episode_boundary
    resumed.learn()
    a, b = full.model_tensors(), resumed.model_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [[v for k, v in r.items() if k not in ("steps_per_s", "wall_s")] for r in full.trainer.history]
    assert rows == [[v for k, v in r.items() if k not in ("steps_per_s", "wall_s")] for r in resumed.trainer.history]
