"""The episode loops: episodes side by side (run_episodes) against one at a time (run_episode), and the agent's
evaluation, which runs its episodes side by side."""

import copy

import gymnasium as gym
import numpy as np
import pytest

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.envs.episodes import run_episode, run_episodes
from ddpgkit.envs.make import make_env
from ddpgkit.envs.testing import MirrorEnv
from ddpgkit.errors import EnvError


def pump(obs: np.ndarray) -> np.ndarray:
    """MountainCarContinuous: push in the direction of the velocity (bang-bang energy pumping), row by row.
    Reaches the flag after a number of steps that depends on the start state."""
    return np.where(obs[..., 1:2] >= 0, 1.0, -1.0).astype(np.float32)


def same_episode(a, b) -> bool:
    return (a.total_reward == b.total_reward and np.array_equal(a.rewards, b.rewards)
            and np.array_equal(a.observations, b.observations) and np.array_equal(a.actions, b.actions)
            and (a.terminated, a.truncated) == (b.terminated, b.truncated))


def test_episodes_side_by_side_equal_the_same_episodes_one_at_a_time():
    seeds = [3, 4, 5, 6, 7, 8]
    envs = [make_env("MountainCarContinuous-v0") for _ in seeds]
    together = run_episodes(envs, pump, seeds)  # the policy computes each row alone: the numbers cannot differ
    alone = [run_episode(make_env("MountainCarContinuous-v0"), pump, s) for s in seeds]
    lengths = [e.length for e in together]
    assert len(set(lengths)) > 1, lengths  # the episodes end at different steps: the batch shrinks
    assert all(e.terminated and not e.truncated for e in together)
    assert all(same_episode(a, b) for a, b in zip(together, alone))
    assert all(e.observations.shape == (e.length + 1, 2) and e.actions.shape == (e.length, 1) for e in together)


def test_the_policy_sees_only_the_episodes_still_running():
    sizes = []

    def policy(obs):
        sizes.append(len(obs))
        return pump(obs)

    episodes = run_episodes([make_env("MountainCarContinuous-v0") for _ in range(4)], policy, [3, 4, 5, 6])
    assert max(e.length for e in episodes) == len(sizes)  # one call per step of the longest episode
    assert sizes == [sum(e.length > t for e in episodes) for t in range(len(sizes))]


def test_rollouts_refuses_a_seed_count_that_differs():
    with pytest.raises(ValueError, match="2 envs for 3 seeds"):
        run_episodes([make_env("Pendulum-v1"), make_env("Pendulum-v1")], pump, [0, 1, 2])


SMALL = DDPGConfig(hidden=(32, 32), total_steps=300, learning_starts=100, batch_size=32, buffer_size=1000,
                   eval_interval=0, eval_episodes=5)


@pytest.fixture(scope="module")
def agent():
    return DDPG("Pendulum-v1", SMALL, seed=2).learn()


def test_evaluation_runs_its_episodes_side_by_side_as_one_at_a_time_would(agent):
    episodes = agent.run_evaluation()
    base = agent.config.seed + 10_000
    alone = [run_episode(agent.eval_env, agent.act, base + i) for i in range(5)]
    assert [e.length for e in episodes] == [e.length for e in alone] == [200] * 5
    # the same start states, μ(s) of each observation computed in a batch of 5 instead of alone: equal to
    # float rounding, not bit for bit
    assert all(np.array_equal(e.observations[0], a.observations[0]) for e, a in zip(episodes, alone))
    np.testing.assert_allclose([e.total_reward for e in episodes], [a.total_reward for a in alone], rtol=1e-5)
    kept = agent.eval_envs.copies(5)
    assert len(kept) == 5 and kept[0] is agent.eval_env
    agent.run_evaluation()
    assert all(a is b for a, b in zip(agent.eval_envs.copies(5), kept))  # made once, kept for the next evaluation
    again = agent.evaluate()
    assert np.array_equal(again, [e.total_reward for e in episodes])  # the same numbers every time


class Uncopyable(gym.Wrapper):
    """An env that cannot be deep-copied (as one holding a simulator handle may be)."""

    def __deepcopy__(self, memo):
        raise TypeError("cannot copy this env")


def test_an_eval_env_that_cannot_be_copied_runs_its_episodes_one_at_a_time(agent):
    other = DDPG("Pendulum-v1", SMALL, seed=2, eval_env=Uncopyable(gym.make("Pendulum-v1")))
    other.actor.load_state_dict(agent.actor.state_dict())  # the same policy
    with pytest.raises(TypeError):
        copy.deepcopy(other.eval_env)
    returns = other.evaluate()
    assert len(other.eval_envs.copies(5)) == 1
    base = agent.config.seed + 10_000
    one_at_a_time = [run_episode(agent.eval_env, agent.act, base + i).total_reward for i in range(5)]
    assert np.array_equal(returns, one_at_a_time)  # one row at a time: what agent.act gives alone


class UncopyableMirror(MirrorEnv):
    """A user's env without a spec that cannot be deep-copied either."""

    def __deepcopy__(self, memo):
        raise TypeError("cannot copy this env")


def test_an_env_without_spec_or_copy_needs_an_eval_env_said_in_one_line():
    agent = DDPG(UncopyableMirror(), DDPGConfig(hidden=(8, 8), eval_episodes=2))
    with pytest.raises(EnvError, match="pass eval_env="):
        agent.evaluate()
    agent = DDPG(UncopyableMirror(), DDPGConfig(hidden=(8, 8), eval_episodes=2), eval_env=UncopyableMirror())
    assert agent.evaluate().shape == (2,)  # the given eval env, its episodes one after another


def test_episode_returns_are_the_total_rewards_of_seeded_episodes():
    from ddpgkit import episode_returns

    def policy(obs):
        return np.array([0.5 * float(obs[2])], dtype=np.float32)

    env = gym.make("Pendulum-v1")
    got = episode_returns(env, policy, 2, seed=3)
    truth = []
    for seed in (3, 4):  # written out: reset with seed + i, step until the time limit
        ref = gym.make("Pendulum-v1")
        obs, _ = ref.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = ref.step(policy(obs))
            total, done = total + float(r), term or trunc
        truth.append(total)
    assert got.shape == (2,) and got.tolist() == truth
