"""Making and checking Gymnasium environments for DDPG.

DDPG needs a bounded ``Box`` action space (the actor's tanh is scaled to it) and a flat ``Box``
observation, or a ``Dict`` of flat entries (:mod:`ddpgkit.envs.spaces`). :func:`make_env` builds an env
from an id (or takes a user's ``gymnasium.Env``) and :func:`check_env` says in one sentence why one is
unsuitable. An id in the ``ddpgkit/`` namespace
registers ddpgkit's own test environments first (:mod:`ddpgkit.envs.testing`); an id Gymnasium does not know
imports Gymnasium-Robotics, where it is installed (:mod:`ddpgkit.envs.robotics`).

Importing this module sets ``MUJOCO_GL=egl`` on a Linux machine without a display (and without a
``MUJOCO_GL`` of its own): MuJoCo picks its OpenGL backend when it is first imported, and only EGL
renders headless.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import EnvError
from . import robotics
from .robotics import register_robotics
from .spaces import ObservationLayout
from .testing import NAMESPACE, register_test_envs

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
    if env.startswith(NAMESPACE):
        register_test_envs()
    if env not in gym.registry:  # Gymnasium-Robotics' ids (FetchReach-v4, ...) where the robotics extra is installed
        register_robotics()
    if env not in gym.registry:
        close = difflib.get_close_matches(env, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.registry for the ids"
        if robotics.import_error is not None:
            hint += f" (gymnasium_robotics is installed but failed to import: {robotics.import_error})"
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
    space a 1-D Box or a Dict of 1-D entries (:class:`~ddpgkit.envs.spaces.ObservationLayout`)."""
    name = name or (env.spec.id if env.spec is not None else type(env).__name__)
    act, obs = env.action_space, env.observation_space
    if not isinstance(act, spaces.Box):
        raise EnvError(f"{name}: DDPG needs a continuous Box action space, got {type(act).__name__} "
                       f"({act}); discrete actions need another algorithm, such as DQN")
    if len(act.shape) != 1:
        raise EnvError(f"{name}: DDPG needs a 1-D Box action space, got shape {act.shape}")
    if not (np.all(np.isfinite(act.low)) and np.all(np.isfinite(act.high))):
        raise EnvError(f"{name}: DDPG needs a bounded action space (finite low and high), got {act}")
    low, high = act.low.astype(np.float32), act.high.astype(np.float32)
    with np.errstate(over="ignore"):
        span = high - low
    if not np.all(np.isfinite(span)):  # e.g. ±3.4e38, a common way to write "unbounded"
        raise EnvError(f"{name}: the action space's high − low overflows float32 ({act}): DDPG needs bounds it can "
                       "scale its actions to; give the real bounds")
    flat = [i for i in range(len(span)) if not span[i] > 0]
    if flat:
        raise EnvError(f"{name}: the action space has low == high (or low > high) in dimension(s) "
                       f"{', '.join(map(str, flat))}: DDPG needs high > low in every dimension")
    ObservationLayout.of(obs, name)  # a 1-D Box, or a Dict of 1-D Box and MultiBinary entries


def env_id(env: gym.Env) -> str | None:
    """The registered id of an env, or None for an unregistered user env."""
    return env.spec.id if env.spec is not None else None
