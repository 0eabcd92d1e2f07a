"""Gymnasium-Robotics (the robotics extra, issue 25 part 5): the guarded MuJoCo 4 fix tested against the library's
own check, the Fetch tasks made and stepped, and FetchReach-v4 trained a few hundred steps with the HER paper's
DDPG, saved, loaded and evaluated from the command line."""

import importlib
import json

import numpy as np
import pytest

from ddpgkit import DDPG
from ddpgkit.envs import robotics
from ddpgkit.envs.make import make_env
from ddpgkit.errors import EnvError

from tests.clihelp import run_cli

mujoco = pytest.importorskip("mujoco")


@pytest.fixture(scope="module")
def utils():
    assert robotics.register_robotics()  # the set-up installs the extra
    return importlib.import_module("gymnasium_robotics.utils.mujoco_utils")


def test_the_guard_says_what_gymnasium_robotics_own_joint_check_does(utils):
    hinge, slide = mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE
    library_check = np.int32(int(slide)) in (hinge, slide)  # mujoco_utils.set_joint_qpos's assertion, as written
    assert robotics.joint_enum_comparison_broken() == (not library_check)
    fixed = isinstance(utils.mujoco, robotics._IntJointTypes)
    assert fixed == robotics.joint_enum_comparison_broken()  # applied exactly where the check fails
    if fixed:  # the view: mjtJoint's constants as ints, every other name MuJoCo's own
        assert np.int32(int(slide)) in (utils.mujoco.mjtJoint.mjJNT_HINGE, utils.mujoco.mjtJoint.mjJNT_SLIDE)
        assert utils.mujoco.mjtJoint.mjJNT_FREE == int(mujoco.mjtJoint.mjJNT_FREE)
        assert utils.mujoco.mj_name2id is mujoco.mj_name2id and utils.mujoco.mjtObj is mujoco.mjtObj


def test_the_fix_is_left_off_where_the_comparison_works(utils, monkeypatch):
    monkeypatch.setattr(utils, "mujoco", mujoco)  # as gymnasium-robotics has it, unfixed
    monkeypatch.setattr(robotics, "joint_enum_comparison_broken", lambda: False)
    assert robotics.fix_joint_types() is False and utils.mujoco is mujoco


@pytest.mark.parametrize("env_id", ["FetchReach-v4", "FetchPush-v4"])
def test_the_fetch_tasks_are_made_and_step_as_goal_envs(env_id, utils):
    env = make_env(env_id)
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"observation", "achieved_goal", "desired_goal"} and env.spec.max_episode_steps == 50
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward == env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        assert "is_success" in info and not terminated
        batch = env.unwrapped.compute_reward(np.stack([obs["achieved_goal"]] * 3), np.stack([obs["desired_goal"]] * 3),
                                             {})
        assert batch.shape == (3,)  # vectorized, as HER needs
        if env_id == "FetchPush-v4":  # a free joint (the object): the other branch of set_joint_qpos
            qpos = utils.get_joint_qpos(env.unwrapped.model, env.unwrapped.data, "object0:joint")
            assert qpos.shape == (7,)
    finally:
        env.close()


def test_fetch_reach_trains_saves_loads_and_evaluates_with_her(tmp_path, capsys):
    run = tmp_path / "reach"
    r = run_cli(capsys, "train", "FetchReach-v4", "--preset", "andrychowicz2017-her", "--steps", "400",
                "--hidden", "32,32,32", "--batch-size", "64", "--buffer-size", "5000", "--eval-interval", "200",
                "--eval-episodes", "2", "--out", run)
    assert r.code == 0, r.err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["final_eval_success_rate"] in (0.0, 0.5, 1.0)
    r = run_cli(capsys, "eval", run, "--episodes", "2")
    assert r.code == 0 and "success" in r.out
    agent = DDPG.load(run / summary["checkpoint"])
    env = make_env("FetchReach-v4")
    obs, _ = env.reset(seed=1)
    action, _ = agent.predict(obs)  # the Dict as the env gives it
    assert action.shape == (4,) and np.all(np.abs(action) <= 1)
    assert agent.config.her == "future"
    assert agent.obs_layout.describe() == "achieved_goal:3, desired_goal:3, observation:10"
    env.close()
    agent.close()


def test_an_installed_but_broken_gymnasium_robotics_is_named_for_an_unknown_id(monkeypatch):
    real = importlib.import_module

    def broken(name, *args):
        if name == "gymnasium_robotics":
            raise RuntimeError("an incompatible MuJoCo")
        return real(name, *args)

    monkeypatch.setattr(robotics, "_registered", None)
    monkeypatch.setattr(robotics, "import_error", None)
    monkeypatch.setattr(robotics.importlib, "import_module", broken)
    with pytest.raises(EnvError, match="unknown environment 'FetchNope-v9'.*gymnasium_robotics is installed but failed "
                                       "to import: RuntimeError: an incompatible MuJoCo"):
        make_env("FetchNope-v9")
