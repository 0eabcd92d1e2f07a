import gymnasium as gym
import numpy as np
import pytest

from ddpgkit.envs.make import check_env, make_env
from ddpgkit.errors import EnvError


def test_pendulum_is_accepted():
    env = make_env("Pendulum-v1")
    assert env.action_space.shape == (1,)


def test_discrete_is_refused():
    with pytest.raises(EnvError, match="CartPole-v1: DDPG needs a continuous Box action space, got Discrete"):
        make_env("CartPole-v1")


def test_unbounded_is_refused():
    with pytest.raises(EnvError, match="bounded action space"):
        make_env("ddpgkit/Unbounded-v0")


def test_unknown_id_suggests_close_names():
    with pytest.raises(EnvError, match="unknown environment 'Pendulm-v1'; did you mean Pendulum-v1"):
        make_env("Pendulm-v1")


def test_user_env_instance_is_checked():
    class DictObs(gym.Env):
        observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))})
        action_space = gym.spaces.Box(-1, 1, (1,))

    with pytest.raises(EnvError, match="1-D Box observation space"):
        check_env(DictObs())


def test_mirror_env_optimum_is_minus_s():
    env = make_env("ddpgkit/Mirror-v0")
    obs, _ = env.reset(seed=0)
    _, r_best, term, trunc, _ = env.step(-obs)
    assert r_best == 0.0 and term and not trunc
    env.reset(seed=0)
    _, r_other, *_ = env.step(np.zeros(2, np.float32))
    assert r_other == pytest.approx(-float(np.sum(obs**2)) / 2)
