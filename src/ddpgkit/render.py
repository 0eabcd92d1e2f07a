"""Recording an episode of a trained agent as an animated GIF (rgb_array rendering)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .envs import make_env
from .errors import EnvError

if TYPE_CHECKING:
    from .ddpg import DDPG


def record_episode(agent: DDPG, path: str | Path, seed: int | None = None, fps: int = 30,
                   max_frames: int = 2000) -> tuple[Path, int, float]:
    """Run one deterministic episode with rendering and write it to ``path`` as a GIF.

    ``seed`` defaults to the run's first evaluation seed. Returns (path, frames, episode return).
    """
    import os

    import gymnasium as gym
    from PIL import Image

    # headless: SDL (used by classic-control rendering) needs no display or sound device
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

    from .ddpg import EVAL_SEED_OFFSET
    from .fileio import atomic_write_bytes

    if agent.env_id is None:
        raise EnvError("recording needs a registered env id")
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise EnvError(f"--gif must name a .gif file, got {path}")
    env = make_env(agent.env_id, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed if seed is not None else agent.config.seed + EVAL_SEED_OFFSET)
        frames, total, done = [], 0.0, False
        try:
            frames.append(env.render())
            while not done and len(frames) < max_frames:
                obs, reward, terminated, truncated, _ = env.step(agent.predict(obs, deterministic=True))
                total += float(reward)
                done = terminated or truncated
                frames.append(env.render())
        except gym.error.DependencyNotInstalled as e:
            raise EnvError(f"rendering {agent.env_id} needs an extra package: {str(e).splitlines()[0]} "
                           "(pip install 'ddpgkit[render]')") from None
    finally:
        env.close()
    if not frames or frames[0] is None:
        raise EnvError(f"{agent.env_id} returned no rgb_array frames")
    images = [Image.fromarray(f) for f in frames]
    import io

    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return path, len(frames), total
