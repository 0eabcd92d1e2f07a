"""The episode loops of a fixed policy: :func:`run_episode` (one episode: ``eval --gif``, any tool that needs
what a policy did along an episode) and :func:`run_episodes` (several episodes side by side, the policy called
once per step for all of them: evaluation).

Training has its own loop (:mod:`ddpgkit.training.loop`): it stores transitions, explores and
updates between steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from .spaces import ObservationLayout

Policy = Callable[[np.ndarray], np.ndarray]  # (obs_dim,) -> (act_dim,)
BatchPolicy = Callable[[np.ndarray], np.ndarray]  # (k, obs_dim) -> (k, act_dim)


@dataclass
class Episode:
    """What happened in one episode: ``total_reward`` (summed step by step, in order), per-step
    ``rewards`` (T,), ``observations`` (T + 1, obs_dim: s_0 … s_T), ``actions`` (T, act_dim), whether
    it ended by ``terminated`` or ``truncated``, the rendered ``frames`` when asked for, and ``success``: the
    last step's ``info["is_success"]`` (goal envs, the Gymnasium-Robotics convention), None where the env does not
    report it."""

    total_reward: float
    rewards: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    terminated: bool
    truncated: bool
    frames: list[np.ndarray] = field(default_factory=list)
    success: bool | None = None

    @property
    def length(self) -> int:
        """Steps taken (the number of rewards)."""
        return len(self.rewards)


def run_episode(env: gym.Env, policy: Policy, seed: int | None = None, *, render: bool = False,
            max_steps: int | None = None) -> Episode:
    """Run ``policy`` for one episode from ``env.reset(seed=seed)`` until it terminates, is truncated,
    or ``max_steps`` steps were taken. With ``render``, ``env.render()`` is called after the reset and
    after every step (the env must have been made with ``render_mode="rgb_array"``). A Dict observation is
    flattened in its layout's order (:mod:`ddpgkit.envs.spaces`) before the policy sees it and the episode
    records it."""
    flat = _flattener(env)
    obs = flat(env.reset(seed=seed)[0])
    observations, actions, rewards, frames = [obs], [], [], []
    if render:
        frames.append(env.render())
    total, terminated, truncated, info = 0.0, False, False, {}
    while not (terminated or truncated) and (max_steps is None or len(rewards) < max_steps):
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        obs = flat(obs)
        reward = float(reward)
        total += reward
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        if render:
            frames.append(env.render())
    return Episode(total, np.asarray(rewards, dtype=np.float64), np.asarray(observations), np.asarray(actions),
                   bool(terminated), bool(truncated), frames, is_success(info))


def run_episodes(envs: Sequence[gym.Env], policy: BatchPolicy, seeds: Sequence[int | None],
                 max_steps: int | None = None) -> list[Episode]:
    """One episode on each env, side by side: env i starts from ``reset(seed=seeds[i])``; at every step the
    observations of the episodes still running go to ``policy`` as one (k, obs_dim) batch, and each of
    their envs steps with its row of the (k, act_dim) actions, until every episode has terminated or been
    truncated (or ran ``max_steps`` steps: an episode cut there has neither flag). Episode i is what
    :func:`run_episode` on env i with that seed gives for a policy that maps each
    row alone to the same action (a network's product of a row inside a batch may round differently in
    the last bits from the same row alone); one forward pass per step for all of them instead of one
    per episode."""
    if len(envs) != len(seeds):
        raise ValueError(f"{len(envs)} envs for {len(seeds)} seeds")
    n = len(envs)
    flat = _flattener(envs[0]) if envs else _same
    obs = [flat(env.reset(seed=seed)[0]) for env, seed in zip(envs, seeds)]
    observations: list[list[np.ndarray]] = [[o] for o in obs]
    actions: list[list[np.ndarray]] = [[] for _ in range(n)]
    rewards: list[list[float]] = [[] for _ in range(n)]
    totals, ends = [0.0] * n, [(False, False)] * n
    success: list[bool | None] = [None] * n
    running = list(range(n))
    while running:
        batch = policy(np.stack([obs[i] for i in running]))  # (k, act_dim)
        still = []
        for i, action in zip(running, batch):
            action = np.array(action)  # its own copy: the policy may reuse its output buffer
            o, reward, terminated, truncated, info = envs[i].step(action)
            success[i] = is_success(info)
            o = flat(o)
            reward = float(reward)
            totals[i] += reward
            obs[i] = o
            observations[i].append(o)
            actions[i].append(action)
            rewards[i].append(reward)
            if terminated or truncated:
                ends[i] = (bool(terminated), bool(truncated))
            elif max_steps is None or len(rewards[i]) < max_steps:
                still.append(i)
        running = still
    return [Episode(totals[i], np.asarray(rewards[i], dtype=np.float64), np.asarray(observations[i]),
                    np.asarray(actions[i]), *ends[i], success=success[i]) for i in range(n)]


def is_success(info: dict) -> bool | None:
    """A step's ``info["is_success"]`` as a bool (goal envs report 0.0/1.0 or a bool), None where it is absent."""
    value = info.get("is_success") if isinstance(info, dict) else None
    return None if value is None else bool(np.asarray(value).item())


def success_rate(episodes: Sequence[Episode]) -> float | None:
    """The share of ``episodes`` that ended in success, None unless every one reports it."""
    flags = [e.success for e in episodes]
    return None if not flags or any(f is None for f in flags) else float(np.mean(flags))


def _same(obs: np.ndarray) -> np.ndarray:
    return obs


def _flattener(env: gym.Env) -> Callable[[object], np.ndarray]:
    """A Dict observation's flatten (its layout's order), else the identity: the observation as the env gives it."""
    if isinstance(env.observation_space, gym.spaces.Dict):
        return ObservationLayout.of(env.observation_space).flatten
    return _same


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


def episode_returns(env: gym.Env, policy: Policy, episodes: int, seed: int) -> np.ndarray:
    """The total rewards (episodes,) of ``episodes`` episodes of ``policy`` on ``env``, one after another;
    episode i starts from ``reset(seed=seed + i)``. (Not Stable-Baselines3's ``evaluate_policy``, which takes
    a model and returns a mean and a standard deviation.)"""
    return np.array([run_episode(env, policy, seed + i).total_reward for i in range(episodes)], dtype=np.float64)
