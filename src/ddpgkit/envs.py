"""Making and checking Gymnasium environments for DDPG, and a few tiny environments of its own.

DDPG needs a bounded ``Box`` action space (the actor's tanh is scaled to it) and a flat ``Box``
observation. :func:`make_env` builds an env from an id (or takes a user's ``gymnasium.Env``) and
:func:`check_env` says in one sentence why one is unsuitable.

The ``ddpgkit/...`` environments registered here are small and exactly solvable, for tests and
examples: ``ddpgkit/Mirror-v0`` (a one-step task whose best action is −s),
``ddpgkit/NonFinite-v0`` (emits NaN or inf at a chosen step, to exercise the error path) and
``ddpgkit/HugeReward-v0`` (a reward of 1e30 at step 300: finite, but the critic's loss overflows).
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .errors import EnvError

# MuJoCo picks its OpenGL backend when it is first imported; without a display (a server, CI) the
# default (GLFW) cannot render, while EGL renders headless. Set before any MuJoCo env is made.
if sys.platform.startswith("linux") and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"


def make_env(env: str | gym.Env, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """A Gymnasium env from an id (``gym.make``) or the user's own instance, checked for DDPG."""
    if isinstance(env, gym.Env):
        check_env(env)
        return env
    if not isinstance(env, str):
        raise EnvError(f"env must be a Gymnasium id or a gymnasium.Env, got {type(env).__name__}")
    if env not in gym.registry:
        close = difflib.get_close_matches(env, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.registry for the ids"
        raise EnvError(f"unknown environment {env!r}{hint}")
    try:
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        made = gym.make(env, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise EnvError(f"{env}: a dependency is missing: {str(e).splitlines()[0]}") from None
    except (gym.error.Error, TypeError, ValueError) as e:
        raise EnvError(f"{env}: cannot be made: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        check_env(made, env)
    except EnvError:
        made.close()
        raise
    return made


def check_env(env: gym.Env, name: str | None = None) -> None:
    """Raise :class:`~ddpgkit.errors.EnvError` unless the action space is a bounded 1-D Box and the observation
    space a 1-D Box."""
    name = name or (env.spec.id if env.spec is not None else type(env).__name__)
    act, obs = env.action_space, env.observation_space
    if not isinstance(act, spaces.Box):
        raise EnvError(f"{name}: DDPG needs a continuous Box action space, got {type(act).__name__} "
                       f"({act}); discrete actions need another algorithm, such as DQN")
    if len(act.shape) != 1:
        raise EnvError(f"{name}: DDPG needs a 1-D Box action space, got shape {act.shape}")
    if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
        raise EnvError(f"{name}: DDPG needs a bounded action space (finite low and high), got {act}")
    if not isinstance(obs, spaces.Box) or len(obs.shape) != 1:
        raise EnvError(f"{name}: ddpgkit needs a 1-D Box observation space, got {obs}; "
                       "wrap the env with gymnasium.wrappers.FlattenObservation")


def env_id(env: gym.Env) -> str | None:
    """The registered id of an env, or None for an unregistered user env."""
    return env.spec.id if env.spec is not None else None


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


class NonFiniteEnv(gym.Env):
    """Emits a non-finite observation or reward at step ``bad_step`` (counted over the env's life),
    a stand-in for a misbehaving simulator. ``kind`` is ``"obs"`` or ``"reward"``; ``value`` is
    ``nan`` or ``inf``."""

    metadata = {"render_modes": []}

    def __init__(self, bad_step: int = 50, kind: str = "obs", value: str = "nan") -> None:
        self.bad_step, self.kind = bad_step, kind
        self.value = float(value)
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode (Gymnasium's ``reset``)."""
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):
        """A random observation and reward −‖a‖², except at step ``bad_step``, whose observation or reward
        is ``value``."""
        self.steps += 1
        obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        reward = -float(np.square(action).sum())
        if self.steps == self.bad_step:
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


def _register() -> None:
    entries = {
        "ddpgkit/Mirror-v0": ("ddpgkit.envs:MirrorEnv", 10, {}),
        "ddpgkit/NonFinite-v0": ("ddpgkit.envs:NonFiniteEnv", 200, {}),
        # a finite reward so large that the critic's squared error overflows: the update's NaN sentinel
        "ddpgkit/HugeReward-v0": ("ddpgkit.envs:NonFiniteEnv", 200,
                                  {"kind": "reward", "value": "1e30", "bad_step": 300}),
        "ddpgkit/Unbounded-v0": ("ddpgkit.envs:UnboundedEnv", 10, {}),
    }
    for env_name, (entry, steps, kwargs) in entries.items():
        if env_name not in gym.registry:
            gym.register(env_name, entry_point=entry, max_episode_steps=steps, kwargs=kwargs)


_register()
