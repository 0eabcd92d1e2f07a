"""The training loop: act, step the env, store, update, evaluate, report.

One environment step of :func:`train_loop`, for one agent (a group of N steps each of them)::

    a = uniform random (first learning_starts steps)  or  clip(μ(s) + noise)   (agent.explore)
    s', r, terminated, truncated = env.step(a)          (NaN/inf stops the run with the step number)
    buffer.add(s, a, r, s', terminated, truncated)
    updates_per_step × Learner.update(buffer.sample(B))  (once past the warm-up)
    every eval_interval steps: deterministic evaluation (returns, and the critic's Q(s, μ(s)) along the
        episodes against the discounted returns obtained), a metrics row
    at every episode end: a metrics row

Every row also carries the health signals since the previous row (:mod:`ddpgkit.algo.health`): those the
update measured (gradient norms, TD error, Q range, tanh saturation), the share of exploration actions
at the action bounds and the size of the noise drawn.

The loop never prints: progress bars, CSV files and user logging are :class:`Callback` objects.
It drives any agent with the attributes of :class:`Agent` (:class:`ddpgkit.DDPG` is one) and never
imports the agent's module: the agent owns its trainer, not the other way round. There is one loop:
a single agent's ``learn`` and a group of seeds (:class:`ddpgkit.agents.group.DDPGGroup`) both call
:func:`train_loop`, with their own way to act and to update.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from ..algo.health import ROW_SIGNALS, UPDATE_SIGNALS, health_values, reset_health
from ..algo.learner import Learner
from ..algo.noise import ActionNoise
from ..config.ddpg import DDPGConfig
from ..data.buffer import ReplayBuffer
from ..envs.episodes import Episode, is_success, success_rate
from ..errors import NoLearningWarning, NonFiniteError, NonFiniteUpdate
from ..runtime import GlobalGenerators, generators_in_process, torch_settings

#: The columns of metrics.csv, in order (one row per finished episode and one per evaluation).
METRIC_COLUMNS = ("step", "episodes", "episode_return", "episode_length", "episode_success", "eval_mean", "eval_std",
                  "eval_success_rate", "eval_q_mean", "eval_mc_return", "eval_q_gap",
                  "critic_loss", "actor_loss", "q_mean", *UPDATE_SIGNALS, *ROW_SIGNALS, "steps_per_s", "wall_s")


#: The columns of a metrics row that hold integers (the others hold floats, or None where not measured).
INT_COLUMNS = ("step", "episodes", "episode_length")


class Agent(Protocol):
    """What the loop needs of an agent (:class:`ddpgkit.DDPG` has it)."""

    config: DDPGConfig
    env: gym.Env
    buffer: ReplayBuffer
    noise: ActionNoise
    learner: Learner  # its update; the loop reads and empties its health record at every metrics row
    device: torch.device
    action_low: torch.Tensor  # (act_dim,)
    action_high: torch.Tensor  # (act_dim,)
    global_generators: GlobalGenerators  # the process's global generators as the run sees them
    obs_dim: int

    def flat_obs(self, obs: Any) -> np.ndarray:
        """An observation as the env gives it -> the flat vector the networks and the buffer take (obs_dim,)."""

    def observe(self, obs: np.ndarray) -> None:
        """A flat observation collected in training (the observation normalizer's statistics)."""

    def random_action(self) -> np.ndarray:
        """A uniformly random action (the warm-up), (act_dim,)."""

    def run_evaluation(self, episodes: int | None = None, seed: int | None = None) -> list[Episode]:
        """The deterministic evaluation episodes."""

    def critic_against_returns(self, episodes: list[Episode]) -> tuple[float, float]:
        """(mean Q(s_t, μ(s_t)), mean discounted return obtained) over the episodes' states."""


class Callback:
    """Hooks into training; override what you need. ``on_step`` may return False to stop."""

    def on_training_start(self, trainer: Trainer) -> None:
        """Before the first step of a ``run`` call (a resumed run calls it again)."""

    def on_step(self, trainer: Trainer) -> bool | None:
        """After every environment step (and its updates); return False to stop training."""

    def on_episode_end(self, trainer: Trainer, episode_return: float, episode_length: int) -> None:
        """When a training episode ends, with its return and length."""

    def on_eval(self, trainer: Trainer, returns: np.ndarray) -> None:
        """After every evaluation, with its returns (eval_episodes,)."""

    def on_metrics(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """Every metrics row (one per finished episode and one per evaluation), columns
        :data:`METRIC_COLUMNS`; values not measured in that row are None."""

    def on_training_end(self, trainer: Trainer) -> None:
        """After the last step of a ``run`` call (and the final evaluation)."""

    def on_diverged(self, trainer: Trainer, error: NonFiniteUpdate) -> None:
        """When this run's update turned non-finite in a group of seeds (``error``: the signal, the step and the
        batch): the run stops there; the group's other runs go on. (A single run raises the error instead.)"""


def _check_finite(step: int, obs: np.ndarray, reward: float) -> None:
    if not np.all(np.isfinite(obs)):
        raise NonFiniteError(f"the environment returned a non-finite observation at step {step}: {obs.tolist()}")
    if not math.isfinite(reward):
        raise NonFiniteError(f"the environment returned a non-finite reward at step {step}: {reward}")


class Trainer:
    """The state of one training run of an agent: counters, the current episode, metrics history."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.step = 0  # environment steps done
        self.episodes = 0  # episodes finished
        self.obs: np.ndarray | None = None  # current observation; None: reset before the next step
        self.episode_return = 0.0
        self.episode_length = 0
        self.episode_success: bool | None = None  # info["is_success"] of the episode's latest step (goal envs)
        self.last_eval: tuple[float, float] | None = None  # (mean, std) of the latest evaluation
        self.last_eval_step = -1
        self.history: list[dict[str, Any]] = []  # every metrics row
        self.wall_s = 0.0  # training seconds before the current run() call
        self._start: float | None = None  # perf_counter() at the start of the current run() call
        #: sums of critic loss, actor loss and mean Q since the last metrics row (the update adds to them)
        self.acc = [torch.zeros((), device=agent.device) for _ in range(3)]
        self._acc_n = 0
        self._row_step = 0  # the step of the last metrics row (or of the current run() call's start)
        self._seeded = False
        self.callbacks: list[Callback] = []
        #: True for a member of a group whose update turned non-finite, which no longer acts, learns or logs.
        self.retired = False
        self.diverged: NonFiniteUpdate | None = None

    # ---- one step, in the phases train_loop calls ----------------------------------------------

    def _begin_run(self, callbacks: Callback | Iterable[Callback] | None) -> None:
        self.callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])
        if not self._seeded:
            self.agent.env.action_space.seed(self.agent.config.seed)
            self._seeded = True
        start = self._start = time.perf_counter()
        self._row_clock = (start, self.step)
        self._row_step = self.step  # the step of the last metrics row (or of this call's start)
        self._emit("on_training_start")

    def _env_step(self, step: int, action: np.ndarray) -> bool:
        """Step the env with ``action``, store the transition; True if the episode ended."""
        obs = self.obs
        next_obs, reward, terminated, truncated, info = self.agent.env.step(action)
        self.episode_success = is_success(info)
        next_obs = self.agent.flat_obs(next_obs)
        self.agent.observe(next_obs)
        reward = float(reward)
        _check_finite(step, next_obs, reward)
        self.agent.buffer.add(obs, action, reward, next_obs, terminated, truncated)
        self.obs = next_obs
        self.episode_return += reward
        self.episode_length += 1
        self.step = step + 1
        return terminated or truncated

    def retire(self, error: NonFiniteUpdate) -> None:
        """This run's update turned non-finite (``error``: the signal, the step, the batch): it stops here, its
        callbacks hear of it (``on_diverged``); in a group, the others go on."""
        self.retired, self.diverged = True, error
        if self._start is not None:
            self.wall_s += time.perf_counter() - self._start
            self._start = None
        self._emit("on_diverged", error)

    def _end_run(self, total_steps: int) -> None:
        if self.step >= total_steps and self.last_eval_step != self.step:
            self._evaluate()  # a run always ends with an evaluation of its final policy
        assert self._start is not None
        self.wall_s += time.perf_counter() - self._start
        self._start = None
        self._emit("on_training_end")

    # ---- persistence --------------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        """Training seconds so far, the current run() call included (a checkpoint taken during a call
        records this, so that a resumed run's time adds up)."""
        return self.wall_s + (time.perf_counter() - self._start if self._start is not None else 0.0)

    @property
    def at_episode_boundary(self) -> bool:
        """Whether the trainer is between episodes, where the next step starts with a reset (an exact resume point)."""
        return self.obs is None

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able) state of the loop; see :mod:`ddpgkit.training.state`."""
        meta = {
            "step": self.step, "episodes": self.episodes, "episode_return": self.episode_return,
            "episode_length": self.episode_length, "mid_episode": self.obs is not None,
            "last_eval": list(self.last_eval) if self.last_eval is not None else None,
            "last_eval_step": self.last_eval_step, "wall_s": self.elapsed_s, "acc_n": self._acc_n,
            "seeded": self._seeded,
        }
        return {"acc": torch.stack(self.acc).cpu()}, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                        history: list[dict[str, Any]]) -> None:
        """Restore :meth:`state_dict`'s output and the metrics rows so far (``history``, saved apart: a run's
        history outgrows a manifest); a value of the wrong type or range raises ValueError."""
        step, episodes = _count(meta, "step"), _count(meta, "episodes")
        last_eval = meta["last_eval"]
        if last_eval is not None and not (isinstance(last_eval, list) and len(last_eval) == 2
                                          and all(_is_number(v) for v in last_eval)):
            raise ValueError(f"trainer.last_eval must be null or [mean, std], got {last_eval!r}")
        last_eval_step = meta["last_eval_step"]
        if not (_is_int(last_eval_step) and -1 <= last_eval_step <= step):
            raise ValueError(f"trainer.last_eval_step must be an integer in [-1, step], got {last_eval_step!r}")
        wall_s = meta["wall_s"]
        if not (_is_number(wall_s) and wall_s >= 0):
            raise ValueError(f"trainer.wall_s must be a number >= 0, got {wall_s!r}")
        acc_n, seeded = _count(meta, "acc_n"), meta["seeded"]
        if not isinstance(seeded, bool):
            raise ValueError(f"trainer.seeded must be true or false, got {seeded!r}")
        if not isinstance(history, list) or not all(_is_metrics_row(r) for r in history):
            raise ValueError("the metrics history must be a list of metrics rows")
        acc = tensors["acc"].to(self.agent.device)
        if acc.shape != (3,) or acc.dtype != torch.float32:
            raise ValueError(f"trainer.acc has shape {tuple(acc.shape)} {acc.dtype}, expected (3,) float32")
        self.step, self.episodes = step, episodes
        # Training continues with a reset: at an episode end that is exactly what comes next; mid-episode
        # the env's internal state was not saved, so the unfinished episode is dropped (and its last stored
        # transition marked as cut, for n-step windows: ReplayBuffer.cut_episode).
        self.obs, self.episode_return, self.episode_length = None, 0.0, 0
        if meta.get("mid_episode") is True:
            self.agent.buffer.cut_episode()
        self.last_eval = (float(last_eval[0]), float(last_eval[1])) if last_eval is not None else None
        self.last_eval_step = last_eval_step
        self.wall_s = float(wall_s)
        self._acc_n = acc_n
        self.acc = [a.clone() for a in acc.unbind()]
        self._seeded = seeded
        self.history = [dict(row) for row in history]

    # ---- pieces -------------------------------------------------------------------------------

    def _end_episode(self) -> None:
        self.episodes += 1
        ret, length = self.episode_return, self.episode_length
        self.obs, self.episode_return, self.episode_length = None, 0.0, 0
        self._emit("on_episode_end", ret, length)
        success = None if self.episode_success is None else float(self.episode_success)
        self._log(episode_return=ret, episode_length=length, episode_success=success)

    def _evaluate(self) -> None:
        episodes = self.agent.run_evaluation()
        returns = np.array([e.total_reward for e in episodes], dtype=np.float64)
        q_mean, mc_return = self.agent.critic_against_returns(episodes)  # the critic against the returns obtained
        self.last_eval = (float(returns.mean()), float(returns.std()))
        self.last_eval_step = self.step
        self._emit("on_eval", returns)
        self._log(eval_mean=self.last_eval[0], eval_std=self.last_eval[1], eval_success_rate=success_rate(episodes),
                  eval_q_mean=q_mean,
                  eval_mc_return=mc_return, eval_q_gap=q_mean - mc_return)

    def _log(self, **values: Any) -> None:
        now = time.perf_counter()
        t0, s0 = self._row_clock
        row: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS)
        row.update(step=self.step, episodes=self.episodes, **values)
        if self._acc_n:
            means = [a.item() / self._acc_n for a in self.acc]
            row.update(critic_loss=means[0], actor_loss=means[1], q_mean=means[2])
            torch._foreach_zero_(self.acc)
            self._acc_n = 0
        row.update(health_values(self.agent.learner.health))
        reset_health(self.agent.learner.health)
        row.update(action_at_bound=self._action_at_bound(), noise_rms=self.agent.noise.pop_rms())
        self._row_step = self.step
        if now > t0 and self.step > s0:
            row["steps_per_s"] = (self.step - s0) / (now - t0)
            self._row_clock = (now, self.step)
        row["wall_s"] = self.wall_s + (now - self._start) if self._start is not None else self.wall_s
        self.history.append(row)
        self._emit("on_metrics", row)

    def _action_at_bound(self) -> float | None:
        """The share of the exploration actions' components since the last row that sit at a bound of the
        action space (None if there were none: warm-up steps act uniformly at random)."""
        agent = self.agent
        n = self.step - max(self._row_step, agent.config.learning_starts)
        if n <= 0:
            return None
        action = agent.buffer.latest(min(n, len(agent.buffer))).action  # (n, act_dim)
        low, high = agent.action_low.to(action.device), agent.action_high.to(action.device)
        return float(((action <= low) | (action >= high)).float().mean())

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)


def learn_target(done: int, config: DDPGConfig, total_timesteps: int | None) -> int:
    """The step a ``learn(total_timesteps)`` call trains until, after ``done`` steps: ``done + total_timesteps``, or
    with None ``config.total_steps`` (the run's budget). Warns (:class:`~ddpgkit.errors.NoLearningWarning`)
    when that ends before learning starts; a negative or non-integer count is a ValueError."""
    if total_timesteps is not None and (isinstance(total_timesteps, bool) or not isinstance(total_timesteps, int)
                                        or total_timesteps < 0):
        raise ValueError(f"total_timesteps must be an integer >= 0, got {total_timesteps!r}")
    until = config.total_steps if total_timesteps is None else done + total_timesteps
    if done < until <= config.learning_starts:
        warnings.warn(f"learn({total_timesteps}) ends at step {until:,}, before learning starts at step "
                      f"{config.learning_starts:,} (config.learning_starts): these steps only fill the replay "
                      "buffer with random actions; train longer, or set learning_starts lower",
                      NoLearningWarning, stacklevel=3)
    return until


def train_loop(trainers: Sequence[Trainer], total_steps: int, callbacks: Sequence[Callback | Iterable[Callback] | None],
               explore: Callable[[list[np.ndarray]], Sequence[np.ndarray]], update: Callable[[], None]) -> None:
    """The training loop: every trainer's agent takes one env step per loop step, in lockstep, until
    ``total_steps`` steps in all (the module doc lists one step).

    One trainer is one run (``DDPG.learn``); several are the agents of a group of seeds sharing one config
    (:class:`ddpgkit.agents.group.DDPGGroup`), whose acting and updates are batched. ``explore`` maps the
    agents' observations to their exploration actions; ``update`` makes one gradient step of every agent,
    each on its own batch, adding (critic loss, actor loss, mean Q) to its trainer's sums
    (:attr:`Trainer.acc`). ``callbacks``: each trainer's own. A callback that stops its trainer stops them
    all, after the step every trainer has finished.
    """
    cfg = trainers[0].agent.config
    first = next(t for t in trainers if not t.retired)
    # torch's threads and denormals, and the global generators, are the run's until the loop ends
    generators = [first.agent.global_generators, *(t.agent.global_generators for t in trainers if t is not first)]
    with torch_settings(cfg.threads), generators_in_process(generators):
        _loop(trainers, total_steps, callbacks, explore, update)


def _loop(trainers: Sequence[Trainer], total_steps: int, callbacks: Sequence[Callback | Iterable[Callback] | None],
          explore: Callable[[list[np.ndarray]], Sequence[np.ndarray]], update: Callable[[], None]) -> None:
    """:func:`train_loop`'s steps."""
    cfg = trainers[0].agent.config
    for trainer, cbs in zip(trainers, callbacks):
        trainer._begin_run(cbs)
    learning_starts, batch_size, eval_interval = cfg.learning_starts, cfg.batch_size, cfg.eval_interval
    first = next(t for t in trainers if not t.retired)
    for step in range(first.step, total_steps):
        active = [t for t in trainers if not t.retired]  # a retired member (diverged) no longer acts
        for t in active:
            if t.obs is None:
                obs, _ = t.agent.env.reset(seed=t.agent.config.seed if step == 0 else None)
                t.obs = t.agent.flat_obs(obs)
                t.agent.observe(t.obs)
                t.agent.noise.reset()
        if step < learning_starts:
            actions: Sequence[np.ndarray | None] = [None if t.retired else t.agent.random_action() for t in trainers]
        else:
            actions = explore([_zeros_like_obs(t) if t.retired else t.obs for t in trainers])
        ended = [False if t.retired else t._env_step(step, a) for t, a in zip(trainers, actions)]
        if step >= learning_starts and all(len(t.agent.buffer) >= batch_size for t in active):
            for _ in range(cfg.updates_per_step):
                try:
                    update()
                except NonFiniteUpdate as e:  # the last member has diverged: name the step and stop
                    raise NonFiniteUpdate(e.signal, e.batch, step + 1, e.member) from None
                for t in trainers:
                    t._acc_n += 1
        for t, done in zip(trainers, ended):
            if t.retired:
                continue
            if done:
                t._end_episode()
            if eval_interval and t.step % eval_interval == 0:
                t._evaluate()
        stops = [cb.on_step(t) is False for t in trainers if not t.retired for cb in t.callbacks]
        if any(stops):
            break
    for t in trainers:
        if not t.retired:
            t._end_run(total_steps)


def _zeros_like_obs(trainer: Trainer) -> np.ndarray:
    """What a retired member is shown in a group's batched forward pass (its action is not used)."""
    return np.zeros(trainer.agent.obs_dim, dtype=np.float32)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _count(meta: dict[str, Any], key: str) -> int:
    v = meta[key]
    if not (_is_int(v) and v >= 0):
        raise ValueError(f"trainer.{key} must be an integer >= 0, got {v!r}")
    return v


def _is_metrics_row(row: Any) -> bool:
    return (isinstance(row, dict) and "step" in row and set(row) <= set(METRIC_COLUMNS)
            and all(v is None or _is_number(v) for v in row.values()))
