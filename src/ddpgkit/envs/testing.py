"""Tiny environments of ddpgkit's own, small and exactly solvable, for tests and examples.

* ``ddpgkit/Mirror-v0`` (:class:`MirrorEnv`): a one-step task whose best action is −s;
* ``ddpgkit/DictMirror-v0`` (:class:`DictMirrorEnv`): the same with a Dict observation of a Box and a
  MultiBinary entry, whose bits flip the best action's signs;
* ``ddpgkit/NonFinite-v0`` (:class:`NonFiniteEnv`): emits NaN or inf at a chosen step, to exercise the error path;
* ``ddpgkit/HugeReward-v0``: a reward of 1e30 at step 300: finite, but the critic's loss overflows (the
  update's NaN sentinel);
* ``ddpgkit/Unbounded-v0`` (:class:`UnboundedEnv`): an unbounded action space, which DDPG must refuse;
* ``ddpgkit/HugeRewardForSeed1-v0``: HugeReward-v0's reward for the env first reset with seed 1 only (one seed
  of a group diverges), and ``ddpgkit/HugeRewardNever-v0``, the same env for no seed (its reference).

The goal tasks of :mod:`ddpgkit.envs.goals` (``ddpgkit/BitFlip-v0``, ``ddpgkit/PointReach-v0``) and these are
registered with Gymnasium under the ``ddpgkit/`` namespace by :func:`register_test_envs`, which
:func:`ddpgkit.envs.make.make_env` calls when it is asked for an id in that namespace (importing ddpgkit
registers nothing).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: The namespace of the ids registered here.
NAMESPACE = "ddpgkit/"


class MirrorEnv(gym.Env):
    """A one-step task with a known optimum: observe s ~ U(-1, 1)^d, act a ∈ [-1, 1]^d, receive
    r = −‖a + s‖² / d, and the episode terminates. The best policy is μ*(s) = −s and Q*(s, a) = r."""

    metadata = {"render_modes": []}

    def __init__(self, dim: int = 2) -> None:
        self.dim = dim
        self.observation_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self._s = np.zeros(dim, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode (Gymnasium's ``reset``): a new s ~ U(−1, 1)^d."""
        super().reset(seed=seed)
        self._s = self.np_random.uniform(-1.0, 1.0, self.dim).astype(np.float32)
        return self._s.copy(), {}

    def step(self, action):
        """Reward r = −‖a + s‖² / d (a clipped to [−1, 1]), and the episode terminates."""
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        reward = -float(np.sum((a + self._s) ** 2)) / self.dim
        return self._s.copy(), reward, True, False, {}


class DictMirrorEnv(gym.Env):
    """MirrorEnv with a Dict observation: ``position`` s ~ U(-1, 1)^d and ``flip``, d bits b (MultiBinary); act
    a ∈ [-1, 1]^d, receive r = −‖a + s ⊙ (1 − 2b)‖² / d, and the episode terminates. The best policy reads both
    entries: μ*(s, b) = −s ⊙ (1 − 2b)."""

    metadata = {"render_modes": []}

    def __init__(self, dim: int = 2) -> None:
        self.dim = dim
        self.observation_space = spaces.Dict({"position": spaces.Box(-1.0, 1.0, (dim,), np.float32),
                                              "flip": spaces.MultiBinary(dim)})
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        self._s, self._b = np.zeros(dim, np.float32), np.zeros(dim, np.int8)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"position": self._s.copy(), "flip": self._b.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode (Gymnasium's ``reset``): new s and b."""
        super().reset(seed=seed)
        self._s = self.np_random.uniform(-1.0, 1.0, self.dim).astype(np.float32)
        self._b = self.np_random.integers(0, 2, self.dim).astype(np.int8)
        return self._obs(), {}

    def step(self, action):
        """Reward r = −‖a + s ⊙ (1 − 2b)‖² / d (a clipped to [−1, 1]), and the episode terminates."""
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        reward = -float(np.sum((a + self._s * (1 - 2 * self._b)) ** 2)) / self.dim
        return self._obs(), reward, True, False, {}


class NonFiniteEnv(gym.Env):
    """Emits a non-finite observation or reward at step ``bad_step`` (counted over the env's life),
    a stand-in for a misbehaving simulator. ``kind`` is ``"obs"`` or ``"reward"``; ``value`` is
    ``nan`` or ``inf`` (or a finite value too large to learn from, 1e30). With ``only_seed`` >= 0 only an env
    first reset with that seed misbehaves (one seed of a group diverges, the others do not)."""

    metadata = {"render_modes": []}

    def __init__(self, bad_step: int = 50, kind: str = "obs", value: str = "nan", only_seed: int = -1) -> None:
        self.bad_step, self.kind = bad_step, kind
        self.value = float(value)
        self.only_seed = only_seed
        self.armed = only_seed < 0
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode (Gymnasium's ``reset``)."""
        if seed is not None and self.steps == 0:
            self.armed = self.only_seed < 0 or seed == self.only_seed
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        """A random observation and reward −‖a‖², except at step ``bad_step``, whose observation or reward
        is ``value``."""
        self.steps += 1
        obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        reward = -float(np.square(action).sum())
        if self.steps == self.bad_step and self.armed:
            if self.kind == "obs":
                obs[1] = self.value
            else:
                reward = self.value
        return obs, reward, False, False, {}


class UnboundedEnv(MirrorEnv):
    """Like :class:`MirrorEnv` but with an unbounded action space (which DDPG must refuse)."""

    def __init__(self, dim: int = 2) -> None:
        super().__init__(dim)
        self.action_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)


#: id -> (entry point, time limit, keyword arguments) of every env registered here.
ENTRIES: dict[str, tuple[str, int, dict[str, str | int]]] = {
    "ddpgkit/Mirror-v0": ("ddpgkit.envs.testing:MirrorEnv", 10, {}),
    "ddpgkit/DictMirror-v0": ("ddpgkit.envs.testing:DictMirrorEnv", 10, {}),
    # the goal tasks of ddpgkit.envs.goals (HER): n = 10 bits, n steps; a point and a goal disc, 50 steps
    "ddpgkit/BitFlip-v0": ("ddpgkit.envs.goals:BitFlipEnv", 10, {}),
    "ddpgkit/PointReach-v0": ("ddpgkit.envs.goals:PointReachEnv", 50, {}),
    "ddpgkit/NonFinite-v0": ("ddpgkit.envs.testing:NonFiniteEnv", 200, {}),
    # a finite reward so large that the critic's squared error overflows: the update's NaN sentinel
    "ddpgkit/HugeReward-v0": ("ddpgkit.envs.testing:NonFiniteEnv", 200,
                              {"kind": "reward", "value": "1e30", "bad_step": 300}),
    "ddpgkit/Unbounded-v0": ("ddpgkit.envs.testing:UnboundedEnv", 10, {}),
    # the same huge reward for the seed 1 only, and the same env where it never comes (a reference)
    "ddpgkit/HugeRewardForSeed1-v0": ("ddpgkit.envs.testing:NonFiniteEnv", 200,
                                      {"kind": "reward", "value": "1e30", "bad_step": 300, "only_seed": 1}),
    "ddpgkit/HugeRewardNever-v0": ("ddpgkit.envs.testing:NonFiniteEnv", 200,
                                   {"kind": "reward", "value": "1e30", "bad_step": 300, "only_seed": 10**9}),
}


def register_test_envs() -> None:
    """Register the ``ddpgkit/...`` ids with Gymnasium (once; a second call changes nothing)."""
    for env_name, (entry, steps, kwargs) in ENTRIES.items():
        if env_name not in gym.registry:
            gym.register(env_name, entry_point=entry, max_episode_steps=steps, kwargs=kwargs)
