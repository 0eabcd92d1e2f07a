"""Recording an episode of a policy as an animated GIF (rgb_array rendering), through the same
episode loop as evaluation (:func:`ddpgkit.envs.episodes.run_episode`)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import gymnasium as gym
from PIL import Image  # a dependency of matplotlib

from ..errors import EnvError
from ..storage.atomic import atomic_write_bytes
from .episodes import Episode, Policy, run_episode
from .make import make_env


def record_episode(env_id: str | None, policy: Policy, path: str | Path, seed: int | None = None, fps: int = 30,
                   max_frames: int = 2000) -> tuple[Path, Episode]:
    """Run ``policy`` for one episode of ``env_id`` from ``reset(seed=seed)`` with rendering and write
    it to ``path`` as a GIF. Returns (path, the episode with its frames)."""
    # headless: SDL (used by classic-control rendering) needs no display or sound device
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if env_id is None:
        raise EnvError("recording needs a registered env id")
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise EnvError(f"--gif must name a .gif file, got {path}")
    env = make_env(env_id, render_mode="rgb_array")
    try:
        episode = run_episode(env, policy, seed, render=True, max_steps=max_frames - 1)
    except gym.error.DependencyNotInstalled as e:
        raise EnvError(f"rendering {env_id} needs an extra package: {str(e).splitlines()[0]} "
                       "(pip install 'ddpgkit[render]')") from None
    finally:
        env.close()
    frames = episode.frames
    if not frames or frames[0] is None:
        raise EnvError(f"{env_id} returned no rgb_array frames")
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return path, episode
