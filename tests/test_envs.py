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
    class ImageObs(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (8, 8), np.uint8)
        action_space = gym.spaces.Box(-1, 1, (1,))

    class DictObs(ImageObs):
        observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))})

    with pytest.raises(EnvError, match="1-D Box observation space"):
        check_env(ImageObs())
    check_env(DictObs())  # a Dict of 1-D entries is read as they are (tests/test_dict_obs.py)


def test_mirror_env_optimum_is_minus_s():
    env = make_env("ddpgkit/Mirror-v0")
    obs, _ = env.reset(seed=0)
    _, r_best, term, trunc, _ = env.step(-obs)
    assert r_best == 0.0 and term and not trunc
    env.reset(seed=0)
    _, r_other, *_ = env.step(np.zeros(2, np.float32))
    assert r_other == pytest.approx(-float(np.sum(obs**2)) / 2)


# --- bad input gets one line (issue 23, item 10) ----------------------------------------------------------------

class _Endless(gym.Env):
    """Never terminates nor truncates: an env without a time limit."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self, low=-1.0, high=1.0):
        self.action_space = gym.spaces.Box(np.float32(low), np.float32(high), (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_action_bounds_that_overflow_float32_are_refused():
    big = np.finfo(np.float32).max  # -3.4e38..3.4e38: "unbounded" written with finite numbers
    with pytest.raises(EnvError, match=r"high − low overflows float32") as e:
        check_env(_Endless(-big, big), "Big")
    assert "\n" not in str(e.value)
    # the scale DDPG would compute from these bounds is what overflows: written out
    with np.errstate(over="ignore"):
        assert not np.isfinite((np.float32(big) - np.float32(-big)) / 2)


def test_a_flat_action_dimension_is_refused():
    env = _Endless()
    env.action_space = gym.spaces.Box(np.array([-1, 0.5], np.float32), np.array([1, 0.5], np.float32))
    with pytest.raises(EnvError, match=r"low == high .* dimension\(s\) 1: DDPG needs high > low"):
        check_env(env, "Flat")


def test_an_evaluation_episode_without_a_time_limit_ends_with_one_line(monkeypatch):
    from ddpgkit import DDPG, DDPGConfig
    from ddpgkit.envs import evaluation

    monkeypatch.setattr(evaluation, "MAX_EPISODE_STEPS", 50)
    agent = DDPG(_Endless(), DDPGConfig(hidden=(8,)), seed=0)
    with pytest.raises(EnvError, match="an evaluation episode ran 50 steps without ending: the env has no time limit"):
        agent.evaluate(episodes=2)
    # with a time limit the same env evaluates
    limited = DDPG(gym.wrappers.TimeLimit(_Endless(), 7), DDPGConfig(hidden=(8,)), seed=0)
    episodes = limited.run_evaluation(episodes=2)
    assert [len(e.rewards) for e in episodes] == [7, 7] and all(e.truncated for e in episodes)


def test_an_evaluation_episode_is_capped_at_the_env_time_limit():
    env = make_env("Pendulum-v1")
    from ddpgkit.envs.evaluation import EvalEnvs

    assert EvalEnvs(env).max_steps() == 200


def test_a_wrapper_that_cannot_be_made_again_is_one_line():
    from ddpgkit.envs.evaluation import EvalEnvs

    class Mine(gym.ObservationWrapper):  # not a RecordConstructorArgs: Gymnasium's spec cannot rebuild it
        def observation(self, observation):
            return observation

    env = Mine(gym.make("Pendulum-v1"))
    with pytest.raises(EnvError, match=r"Pendulum-v1: its spec does not make the env again \(ValueError: Mine wrapper "
                                       r"does not inherit .*\); pass eval_env=") as e:
        EvalEnvs(env).env  # noqa: B018
    assert "\n" not in str(e.value)


def test_a_stateful_wrapper_is_not_rebuilt_with_fresh_statistics():
    from ddpgkit.envs.evaluation import EvalEnvs

    env = gym.wrappers.NormalizeObservation(gym.make("Pendulum-v1"))
    with pytest.raises(EnvError, match="wrapped with NormalizeObservation, whose statistics .* pass eval_env="):
        EvalEnvs(env).env  # noqa: B018
    # given an evaluation env of their own, users decide how its statistics are kept
    mine = gym.make("Pendulum-v1")
    assert EvalEnvs(env, mine).env is mine
