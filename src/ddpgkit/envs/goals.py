"""Goal-conditioned tasks: the goal-env interface HER relabels through, and two tasks that need no MuJoCo.

A goal env (the interface of Gymnasium-Robotics' ``GoalEnv``) observes a Dict with ``observation``,
``achieved_goal`` and ``desired_goal``, rewards through its vectorized ``compute_reward(achieved_goal,
desired_goal, info)`` — which is what lets Hindsight Experience Replay (:mod:`ddpgkit.data.her`) recompute the
reward of a stored transition for another goal — and reports ``info["is_success"]``. :func:`goal_interface` finds
that interface on an env, or says in one line what is missing.

The tasks (registered under ``ddpgkit/`` by :func:`ddpgkit.envs.testing.register_test_envs`, sparse rewards:
−1 per step until the goal is reached, 0 there):

* ``ddpgkit/BitFlip-v0`` (:class:`BitFlipEnv`): n = 10 bits; the action a ∈ [−1, 1]^n flips bit i where
  a_i > 0; the goal is a random bit string; n steps per episode. The continuous version of the HER paper's
  bit-flipping task (Andrychowicz et al. 2017, section 4.1), as Stable-Baselines3's ``BitFlippingEnv(continuous=
  True)``: without HER a random policy reaches the goal with probability about 2^−n per step, so DDPG sees no
  reward but −1 and learns nothing.
* ``ddpgkit/PointReach-v0`` (:class:`PointReachEnv`): a point in the square [−1, 1]² moves by 0.1 · a per step,
  a ∈ [−1, 1]², and must end within 0.1 of a random goal; 50 steps per episode (Fetch's length).

Both report ``info["is_success"]`` (1.0 when the goal is reached at that step) and never terminate: as in
Gymnasium-Robotics, an episode runs its time and success is read at its last step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import EnvError
from .spaces import ObservationLayout

#: The entries of a goal env's Dict observation.
GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


class GoalInterface(NamedTuple):
    """Where a goal env's goals are in its flat observations (column ranges) and its reward (and termination, None
    where the env has no ``compute_terminated``) as functions of batches of achieved and desired goals."""

    achieved: tuple[int, int]
    desired: tuple[int, int]
    compute_reward: Callable[[np.ndarray, np.ndarray], np.ndarray]
    compute_terminated: Callable[[np.ndarray, np.ndarray], np.ndarray] | None


def goal_interface(env: gym.Env, layout: ObservationLayout, name: str = "the env") -> GoalInterface:
    """The goal-env interface of ``env`` (observations laid out by ``layout``), or EnvError naming what is missing:
    Dict entries ``achieved_goal`` and ``desired_goal`` of one size, and a ``compute_reward`` method."""
    keys = [k for k, _ in layout.keys or ()]
    missing = [k for k in ("achieved_goal", "desired_goal") if k not in keys]
    if missing:
        got = ", ".join(keys) if keys else f"a flat Box of {layout.obs_dim} values"
        raise EnvError(f"{name}: HER needs a goal env, a Dict observation with {', '.join(GOAL_KEYS)} (the "
                       f"Gymnasium-Robotics interface); its observation has {got}")
    achieved, desired = layout.columns("achieved_goal"), layout.columns("desired_goal")
    if achieved.stop - achieved.start != desired.stop - desired.start:
        raise EnvError(f"{name}: achieved_goal has {achieved.stop - achieved.start} values and desired_goal "
                       f"{desired.stop - desired.start}: HER puts one in the other's place")
    base = env.unwrapped
    reward_fn = getattr(base, "compute_reward", None)
    if not callable(reward_fn):
        raise EnvError(f"{name}: HER needs the env's compute_reward(achieved_goal, desired_goal, info) to "
                       "recompute rewards for new goals; it has none")
    terminated_fn = getattr(base, "compute_terminated", None)

    def compute_reward(a: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.asarray(reward_fn(a, d, {}), dtype=np.float32)

    def compute_terminated(a: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.asarray(terminated_fn(a, d, {}), dtype=np.float32)

    return GoalInterface((achieved.start, achieved.stop), (desired.start, desired.stop), compute_reward,
                         compute_terminated if callable(terminated_fn) else None)


class BitFlipEnv(gym.Env):
    """Continuous bit flipping (module doc): state s ∈ {0, 1}^n and goal g; a ∈ [−1, 1]^n flips the bits where
    a_i > 0; r = 0 if s' = g else −1. Observation: ``observation`` = s, ``achieved_goal`` = s, ``desired_goal`` = g
    (MultiBinary entries)."""

    metadata = {"render_modes": []}

    def __init__(self, n_bits: int = 10) -> None:
        self.n_bits = n_bits
        bits = spaces.MultiBinary(n_bits)
        self.observation_space = spaces.Dict({"observation": bits, "achieved_goal": bits, "desired_goal": bits})
        self.action_space = spaces.Box(-1.0, 1.0, (n_bits,), np.float32)
        self._state = np.zeros(n_bits, np.int8)
        self._goal = np.zeros(n_bits, np.int8)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"observation": self._state.copy(), "achieved_goal": self._state.copy(),
                "desired_goal": self._goal.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A random state and a random goal."""
        super().reset(seed=seed)
        self._state = self.np_random.integers(0, 2, self.n_bits).astype(np.int8)
        self._goal = self.np_random.integers(0, 2, self.n_bits).astype(np.int8)
        return self._obs(), {"is_success": float(np.array_equal(self._state, self._goal))}

    def step(self, action):
        """Flip the bits whose action is positive; reward 0 at the goal, else −1."""
        flip = np.asarray(action) > 0
        self._state = np.where(flip, 1 - self._state, self._state).astype(np.int8)
        reward = float(self.compute_reward(self._state, self._goal, {}))
        return self._obs(), reward, False, False, {"is_success": float(reward == 0.0)}

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> np.ndarray:
        """r = 0 where the achieved bits equal the desired ones, else −1; vectorized over leading dimensions."""
        same = np.all(np.asarray(achieved_goal) == np.asarray(desired_goal), axis=-1)
        return np.where(same, 0.0, -1.0).astype(np.float32)


class PointReachEnv(gym.Env):
    """A point to bring within ``radius`` of a goal in the square [−1, 1]² (module doc): p' = clip(p + 0.1 a),
    r = 0 if ‖p' − g‖ ≤ radius else −1. Observation: ``observation`` = p, ``achieved_goal`` = p,
    ``desired_goal`` = g."""

    metadata = {"render_modes": []}

    def __init__(self, radius: float = 0.1, step_size: float = 0.1) -> None:
        self.radius, self.step_size = radius, step_size
        box = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._point = np.zeros(2, np.float32)
        self._goal = np.zeros(2, np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        return {"observation": self._point.copy(), "achieved_goal": self._point.copy(),
                "desired_goal": self._goal.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A random start and a random goal, each uniform in the square."""
        super().reset(seed=seed)
        self._point = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        self._goal = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        return self._obs(), {"is_success": float(self.compute_reward(self._point, self._goal, {}) == 0.0)}

    def step(self, action):
        """Move by step_size · a (a clipped to [−1, 1]), staying in the square."""
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self._point = np.clip(self._point + self.step_size * a, -1.0, 1.0).astype(np.float32)
        reward = float(self.compute_reward(self._point, self._goal, {}))
        return self._obs(), reward, False, False, {"is_success": float(reward == 0.0)}

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> np.ndarray:
        """r = 0 within ``radius`` of the goal, else −1; vectorized over leading dimensions."""
        far = np.linalg.norm(np.asarray(achieved_goal) - np.asarray(desired_goal), axis=-1) > self.radius
        return np.where(far, -1.0, 0.0).astype(np.float32)
