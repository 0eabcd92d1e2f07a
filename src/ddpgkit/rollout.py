"""One episode loop for everything that runs a fixed policy: evaluation, ``eval --gif``, and any
later tool that needs what a policy did (trajectories, returns along an episode).

Training has its own loop (:mod:`ddpgkit.training.loop`): it stores transitions, explores and
updates between steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

Policy = Callable[[np.ndarray], np.ndarray]  # (obs_dim,) -> (act_dim,)


@dataclass
class Episode:
    """What happened in one episode: ``total_reward`` (summed step by step, in order), per-step
    ``rewards`` (T,), ``observations`` (T + 1, obs_dim: s_0 … s_T), ``actions`` (T, act_dim), whether
    it ended by ``terminated`` or ``truncated``, and the rendered ``frames`` when asked for."""

    total_reward: float
    rewards: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    terminated: bool
    truncated: bool
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def length(self) -> int:
        """Steps taken (the number of rewards)."""
        return len(self.rewards)


def rollout(env: gym.Env, policy: Policy, seed: int | None = None, *, render: bool = False,
            max_steps: int | None = None) -> Episode:
    """Run ``policy`` for one episode from ``env.reset(seed=seed)`` until it terminates, is truncated,
    or ``max_steps`` steps were taken. With ``render``, ``env.render()`` is called after the reset and
    after every step (the env must have been made with ``render_mode="rgb_array"``)."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, frames = [obs], [], [], []
    if render:
        frames.append(env.render())
    total, terminated, truncated = 0.0, False, False
    while not (terminated or truncated) and (max_steps is None or len(rewards) < max_steps):
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        reward = float(reward)
        total += reward
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        if render:
            frames.append(env.render())
    return Episode(total, np.asarray(rewards, dtype=np.float64), np.asarray(observations), np.asarray(actions),
                   bool(terminated), bool(truncated), frames)


def discounted_returns(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """The return obtained from every step of an episode, G_t = Σ_{k≥t} γ^(k−t) r_k + γ^(T−t) · bootstrap:
    (T,) from rewards (T,). ``bootstrap`` is the value of the state after the last step — 0 after a
    termination; after a time-limit cut, the episode would have gone on, and only an estimate of that
    remainder exists."""
    out = np.empty(len(rewards), dtype=np.float64)
    g = float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        g = float(rewards[t]) + gamma * g
        out[t] = g
    return out


def evaluate_policy(env: gym.Env, policy: Policy, episodes: int, seed: int) -> np.ndarray:
    """Returns (episodes,) of ``episodes`` episodes; episode i starts from ``reset(seed=seed + i)``."""
    return np.array([rollout(env, policy, seed + i).total_reward for i in range(episodes)], dtype=np.float64)
