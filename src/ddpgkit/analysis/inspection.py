"""What an agent learned, drawn over its state space: the chapter's last figure — the fitted network
over the data it was fitted to — for DDPG's two networks, the actor μ(s) and the critic's value
Q(s, μ(s)), with an evaluation episode's trajectory on top.

A :class:`StateSlice` says which plane of states is drawn and how a point of it becomes an
observation. For Pendulum-v1 it is the pendulum's own state, angle θ ∈ [−π, π] and angular velocity
θ̇ ∈ [−8, 8], observed as (cos θ, sin θ, θ̇). For any other env it is two observation dimensions
named by the user, over the range the evaluation episode visited (widened by a tenth), with the
other dimensions held at that episode's state halfway through.

Everything here reads a checkpoint (:meth:`ddpgkit.DDPG.load`), so ``ddpgkit inspect`` works from a
run directory alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image  # a dependency of matplotlib

from ..agents.ddpg import DDPG
from ..envs.episodes import Episode
from ..errors import CheckpointError, ConfigError, RunError, one_line
from ..storage.atomic import atomic_write_bytes, ensure_writable_dir
from ..storage.rundir import INSPECT, METRICS, checkpoints_by_step, read_metrics, read_summary
from .language import text
from .plots import plot_value_check

PENDULUM_MAX_SPEED = 8.0  # Pendulum-v1's bound on θ̇ (rad/s)


@dataclass(frozen=True)
class StateSlice:
    """A plane of states: axis names with units, their ranges, and ``to_obs`` mapping (M, 2) points of
    the plane to (M, obs_dim) observations; ``from_obs`` maps observations back to (M, 2) points."""

    x_label: str
    y_label: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    to_obs: Callable[[np.ndarray], np.ndarray]
    from_obs: Callable[[np.ndarray], np.ndarray]
    description: str


def pendulum_slice() -> StateSlice:
    """Pendulum-v1's state (θ, θ̇), observed as (cos θ, sin θ, θ̇); θ = 0 is upright."""

    def to_obs(p: np.ndarray) -> np.ndarray:
        return np.stack([np.cos(p[:, 0]), np.sin(p[:, 0]), p[:, 1]], axis=1)

    def from_obs(o: np.ndarray) -> np.ndarray:
        return np.stack([np.arctan2(o[:, 1], o[:, 0]), o[:, 2]], axis=1)

    return StateSlice("angle θ (rad, 0 = upright)", "angular velocity θ̇ (rad/s)", (-math.pi, math.pi),
                      (-PENDULUM_MAX_SPEED, PENDULUM_MAX_SPEED), to_obs, from_obs, "the pendulum's state (θ, θ̇)")


def observation_slice(dims: Sequence[int], visited: np.ndarray) -> StateSlice:
    """Observation dimensions ``dims = (i, j)`` over the range ``visited`` (T, obs_dim) covers, widened
    by a tenth; the other dimensions at the visited state halfway through. A bad slice is a ConfigError."""
    obs_dim = visited.shape[1]
    if len(dims) != 2 or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
        raise ConfigError(f"--dims takes two observation dimensions such as 0,1, got {list(dims)}")
    i, j = dims
    if i == j or not (0 <= i < obs_dim and 0 <= j < obs_dim):
        raise ConfigError(f"--dims needs two different observation dimensions in [0, {obs_dim - 1}] "
                          f"(this env's observations have {obs_dim}), got {i},{j}")
    base = visited[len(visited) // 2].astype(np.float64)

    def span(k: int) -> tuple[float, float]:
        lo, hi = float(visited[:, k].min()), float(visited[:, k].max())
        pad = 0.1 * (hi - lo) or 0.5
        return lo - pad, hi + pad

    def to_obs(p: np.ndarray) -> np.ndarray:
        obs = np.repeat(base[None], len(p), axis=0)
        obs[:, i], obs[:, j] = p[:, 0], p[:, 1]
        return obs

    def from_obs(o: np.ndarray) -> np.ndarray:
        return np.stack([o[:, i], o[:, j]], axis=1)

    held = ", ".join(f"{base[k]:.2f}" if k not in (i, j) else "·" for k in range(obs_dim))
    return StateSlice(f"observation[{i}]", f"observation[{j}]", span(i), span(j), to_obs, from_obs,
                      f"observation dimensions {i} and {j}, the others held at ({held})")


@dataclass
class ValueMaps:
    """μ and Q over a grid of a :class:`StateSlice`: ``xs`` (R,), ``ys`` (R,), ``action`` (R, R) of the
    first action dimension (rows follow ``ys``), ``q`` (R, R) = Q(s, μ(s))."""

    xs: np.ndarray
    ys: np.ndarray
    action: np.ndarray
    q: np.ndarray


def value_maps(agent: DDPG, plane: StateSlice, resolution: int = 81) -> ValueMaps:
    """Evaluate μ(s) and Q(s, μ(s)) on a resolution × resolution grid of ``plane``."""
    xs = np.linspace(*plane.x_range, resolution)
    ys = np.linspace(*plane.y_range, resolution)
    gx, gy = np.meshgrid(xs, ys)  # (R, R): row = y, column = x
    obs = torch.as_tensor(plane.to_obs(np.stack([gx.ravel(), gy.ravel()], axis=1)), dtype=torch.float32,
                          device=agent.device)  # (R·R, obs_dim)
    with torch.inference_mode():
        seen = agent.normalize(obs)  # (R·R, obs_dim) as the networks read it
        action = agent.actor(seen)  # (R·R, act_dim)
        q = agent.critic(seen, action)  # (R·R, 1)
    return ValueMaps(xs, ys, action[:, 0].cpu().numpy().reshape(gx.shape), q[:, 0].cpu().numpy().reshape(gx.shape))


def evaluation_episode(agent: DDPG) -> Episode:
    """The hardest of the run's evaluation episodes for this agent: the lowest return among the
    ``eval_episodes`` start states every evaluation of the run used (``reset(seed=seed + 10000 + i)``), as
    the run's evaluations ran them (:meth:`DDPG.run_evaluation <ddpgkit.agents.ddpg.DDPG.run_evaluation>`)."""
    return min(agent.run_evaluation(), key=lambda e: e.total_reward)


def slice_for(agent: DDPG, episode: Episode, dims: Sequence[int] | None) -> StateSlice:
    """Pendulum's state plane for Pendulum-v1 (unless ``dims`` are given), else the observation slice."""
    if dims is None and (agent.env_id or "").startswith("Pendulum-"):
        return pendulum_slice()
    if dims is None:
        raise ConfigError(f"{agent.env_id or 'this env'} has no built-in state plane: name two observation "
                          "dimensions to draw, e.g. --dims 0,1")
    return observation_slice(dims, episode.observations)


def _draw(fig: Figure, maps: ValueMaps, plane: StateSlice, path_xy: np.ndarray, heading: str,
          action_label: str, limits: tuple[tuple[float, float], tuple[float, float]] | None = None) -> None:
    extent = (maps.xs[0], maps.xs[-1], maps.ys[0], maps.ys[-1])
    # a jump across half the plane is θ wrapping from π to −π: no line across the figure there
    jumps = np.flatnonzero(np.abs(np.diff(path_xy[:, 0])) > 0.5 * (extent[1] - extent[0])) + 1
    line = np.insert(path_xy.astype(np.float64), jumps, np.nan, axis=0)
    panels = ((maps.action, text("policy μ(s)"), action_label, "coolwarm"),
              (maps.q, text("value Q(s, μ(s))"), text("Q (discounted return)"), "viridis"))
    for k, (values, name, unit, cmap) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        vmin, vmax = limits[k] if limits is not None else (float(values.min()), float(values.max()))
        im = ax.imshow(values, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax, label=unit)
        ax.plot(line[:, 0], line[:, 1], ".-", color="black", markersize=2.5, linewidth=0.4,
                label=text("evaluation episode"))
        ax.plot(path_xy[:1, 0], path_xy[:1, 1], "o", color="white", markeredgecolor="black", label=text("start"))
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel(text(plane.x_label))
        ax.set_ylabel(text(plane.y_label))
        ax.set_title(name if k else f"{name}: {unit}", fontsize=10)
        ax.legend(loc="upper right", fontsize=7)
    fig.suptitle(heading, fontsize=11)


def _action_label(agent: DDPG) -> str:
    if (agent.env_id or "").startswith("Pendulum-"):
        return text("torque (N·m)")
    return "action[0]" + (f" of {agent.act_dim}" if agent.act_dim > 1 else "")


def plot_value_maps(path: str | Path, agent: DDPG, plane: StateSlice, episode: Episode, step: int,
                    resolution: int = 81) -> Path:
    """One PNG: μ(s) and Q(s, μ(s)) over ``plane``, the episode's states on top."""
    maps = value_maps(agent, plane, resolution)
    fig = Figure(figsize=(11, 4.4))
    heading = text("What DDPG learned on {env}, step {step}: over {plane}; its hardest evaluation episode, "
                   "return {ret}", env=agent.env_id, step=f"{step:,}", plane=text(plane.description),
                   ret=f"{episode.total_reward:.1f}")
    _draw(fig, maps, plane, plane.from_obs(episode.observations), heading, _action_label(agent))
    return _save_png(fig, path)


def _save_png(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def animate_value_maps(path: str | Path, agents: Sequence[tuple[int, DDPG]], plane: StateSlice,
                       resolution: int = 61, frame_ms: int = 800) -> Path:
    """A GIF with one frame per (step, agent), in order: μ and Q as they were learned, on shared colour
    scales (the action bounds; Q's range over all frames) so that frames compare."""
    maps = [(step, agent, value_maps(agent, plane, resolution), evaluation_episode(agent)) for step, agent in agents]
    low, high = float(agents[0][1].action_low[0]), float(agents[0][1].action_high[0])
    q_lim = (min(float(m.q.min()) for _, _, m, _ in maps), max(float(m.q.max()) for _, _, m, _ in maps))
    frames = []
    for step, agent, m, episode in maps:
        fig = Figure(figsize=(11, 4.4))
        heading = text("{env}, step {step}: μ(s) and Q(s, μ(s)) over {plane}; evaluation return {ret}",
                       env=agent.env_id, step=f"{step:,}", plane=text(plane.description),
                       ret=f"{episode.total_reward:.1f}")
        _draw(fig, m, plane, plane.from_obs(episode.observations), heading, _action_label(agent),
              ((low, high), q_lim))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        frames.append(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    path = Path(path)
    atomic_write_bytes(path, out.getvalue())
    return path


@dataclass
class Inspection:
    """What :func:`inspect_run` wrote: the value maps of one checkpoint (``step``), the animation over
    the run's checkpoints (None with fewer than two), the critic against the returns obtained at every
    evaluation (None for runs whose metrics.csv predates it), and the plane the maps show."""

    maps: Path
    animation: Path | None
    overestimation: Path | None
    step: int
    plane: StateSlice
    steps: list[int]


def inspect_run(run_dir: str | Path, checkpoint: int | None = None, out: str | Path | None = None,
                dims: Sequence[int] | None = None, resolution: int = 81) -> Inspection:
    """Draw what the run in ``run_dir`` learned: ``<out>/value_maps.png`` for its newest checkpoint
    (or the one of step ``checkpoint``), ``<out>/value_maps.gif`` over every checkpoint it kept and
    ``<out>/overestimation.png`` from its metrics.csv (``out`` defaults to ``<run_dir>/inspect``).
    ``dims``: the two observation dimensions to draw (required for envs other than Pendulum)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"{run}: no such run directory")
    found = checkpoints_by_step(run)
    if not found:
        raise RunError(f"{run}: no checkpoints; is this a ddpgkit run directory?")
    if checkpoint is not None and checkpoint not in found:
        raise RunError(f"{run}: no checkpoint at step {checkpoint}; it has {', '.join(map(str, sorted(found)))}")
    agents: list[tuple[int, DDPG]] = []
    skipped = []
    for step in sorted(found):
        try:
            agents.append((step, DDPG.load(found[step], training_state=False)))
        except CheckpointError as e:
            skipped.append(step)
            if step == checkpoint:
                raise RunError(f"{run}: the checkpoint of step {step} does not load ({one_line(e)})") from None
    if not agents:
        raise RunError(f"{run}: no checkpoint loads")
    step, agent = next((s, a) for s, a in agents if s == checkpoint) if checkpoint is not None else agents[-1]
    episode = evaluation_episode(agent)
    plane = slice_for(agent, episode, dims)
    target = Path(out) if out is not None else run / INSPECT
    ensure_writable_dir(target)
    maps = plot_value_maps(target / "value_maps.png", agent, plane, episode, step, resolution)
    animation = animate_value_maps(target / "value_maps.gif", agents, plane) if len(agents) > 1 else None
    rows = read_metrics(run / METRICS) if (run / METRICS).is_file() else []
    check = None
    if any(r.get("eval_q_mean") is not None for r in rows):
        check = plot_value_check(target / "overestimation.png", [(run.name, rows)],
                                 text("The critic of {env} against the returns obtained", env=agent.env_id))
    return Inspection(maps, animation, check, step, plane, [s for s, _ in agents])


def run_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    """Short names that tell the runs apart: each folder's name, or as many of its last path parts as it takes
    (``ddpg/Pendulum-v1-s0`` and ``td3/Pendulum-v1-s0``). RunError for a run given twice."""
    paths = [Path(d).resolve() for d in run_dirs]
    if len(set(paths)) != len(paths):
        raise RunError("a run is given twice: give each run once")
    for k in range(1, max(len(p.parts) for p in paths) + 1):
        labels = ["/".join(p.parts[-k:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def compare_critics(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Several runs' critics against the returns they obtained, side by side
    (:func:`~ddpgkit.analysis.plots.plot_value_check`): DDPG's overestimation next to TD3's on the same task, say.
    Writes ``<out>/overestimation.png`` from the runs' metrics.csv files, each panel named by :func:`run_labels`;
    a run whose evaluations did not measure its critic raises RunError before anything is written."""
    runs = []
    for d, label in zip(run_dirs, run_labels(run_dirs)):
        rows = read_metrics(Path(d) / METRICS)
        if not any(r.get("eval_q_mean") is not None for r in rows):
            raise RunError(f"{d}: its evaluations did not measure the critic (no eval_q_mean in its metrics.csv; "
                           "train with eval_interval > 0)")
        runs.append((label, rows))
    target = Path(out)
    ensure_writable_dir(target)
    env_ids = {_env_of(Path(d)) for d in run_dirs}
    title = (text("The critics against the returns obtained on {env}", env=env_ids.pop()) if len(env_ids) == 1
             else text("The critics against the returns obtained"))
    return plot_value_check(target / "overestimation.png", runs, title)


def _env_of(run: Path) -> str:
    try:
        return str(read_summary(run).get("env_id") or run.name)
    except RunError:
        return run.name

