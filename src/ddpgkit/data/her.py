"""Hindsight Experience Replay (Andrychowicz et al. 2017): a sampled transition's goal replaced, at sampling time,
by a goal the agent did reach later, and its reward recomputed for that goal.

A goal env (the Gymnasium-Robotics interface) observes a Dict with ``observation``, ``achieved_goal`` and
``desired_goal`` and computes its reward as ``compute_reward(achieved_goal, desired_goal, info)``, vectorized
over a batch. The replay buffer stores the flat rows of :mod:`ddpgkit.envs.spaces` (the Dict's entries
concatenated in a recorded order); :class:`Relabeller` knows where the goals sit in a row (:class:`GoalColumns`)
and rewrites a drawn batch::

    with probability p = k / (k + 1) a transition (s‖g, a, r, s'‖g) of an episode [t_0, t_end] gets
        g' = achieved_goal(s'_j) with  j = t + ⌊u (t_end − t + 1)⌋   (``future``: a transition at or after t)
                                       j = t_end                       (``final``: the episode's last)
                                       j = t_0 + ⌊u (t_end − t_0 + 1)⌋ (``episode``: any of its transitions)
        r' = compute_reward(achieved_goal(s'), g', {})
    and is stored back as (s‖g', a, r', s'‖g'); the others keep the goal they were given.

k = ``her_k`` relabelled goals per real one (the paper's and Stable-Baselines3's ``n_sampled_goal``: k = 4 gives
p = 0.8, as OpenAI baselines' ``replay_k = 4``). The episode of a transition is read from the buffer's own
``terminated``/``truncated`` flags (:class:`EpisodeIndex`): a truncated episode ends at its last stored
transition, never in the next episode; an episode still running ends, for now, at its newest transition; the part
of an episode a full buffer has overwritten is not drawn from. ``info`` is not stored, so ``compute_reward``
is called with an empty dict: tasks whose reward reads ``info`` (none of Gymnasium-Robotics' Fetch and hand
tasks do) are not relabelled correctly. Where the env has ``compute_terminated``, a relabelled transition's
``terminated`` flag is recomputed with it too; otherwise the stored flag is kept. A function that does not return one
value per row of a batch is called row by row (:func:`batch_call`).

The draws come from the buffer's own generator, after the indices (two uniform (B,) vectors), so a batch is a
function of the buffer's state alone and exact resume holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

#: The relabelling strategies (``her`` in the config; "none": no relabelling).
STRATEGIES = ("future", "final", "episode")

#: compute_reward(achieved (B, g), desired (B, g)) -> (B,) of the env, vectorized (and compute_terminated's shape)
GoalFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


class GoalColumns(NamedTuple):
    """Where the goals are in a flat observation: ``achieved`` and ``desired``, each a (start, stop) range."""

    achieved: tuple[int, int]
    desired: tuple[int, int]


def relabel_probability(k: int) -> float:
    """The share of a batch given a new goal, p = k / (k + 1): k relabelled transitions per real one."""
    return k / (k + 1)


def goal_transition(strategy: str, t: np.ndarray, start: np.ndarray, end: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The transition whose achieved goal becomes the new goal of transition ``t`` (absolute indices, (B,) int64):
    ``future`` t + ⌊u (end − t + 1)⌋, ``final`` end, ``episode`` start + ⌊u (end − start + 1)⌋, with the episode
    [start, end] of each and u ~ U[0, 1) (B,)."""
    if strategy == "final":
        return end.copy()
    lo = t if strategy == "future" else start
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown HER strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    return np.minimum(lo + np.floor(u * (end - lo + 1)).astype(np.int64), end)  # u < 1, but float rounding


class EpisodeIndex:
    """Which episode each row of a circular buffer belongs to: the absolute index (the count of transitions added
    before it) of its episode's first and last transition, the last −1 while the episode runs. Kept up to date by
    :meth:`added` and rebuilt from the rows' end flags by :meth:`rebuild` (a loaded buffer), with the same answers
    from :meth:`bounds`: both are read through the oldest transition still stored."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.start = np.zeros(capacity, dtype=np.int64)  # (C,) absolute index of the row's episode's first transition
        self.end = np.full(capacity, -1, dtype=np.int64)  # (C,) ... of its last one; −1: the episode still runs
        self.current = 0  # absolute index where the running episode started

    def added(self, index: int, ended: bool) -> None:
        """Transition ``index`` (absolute) was stored; ``ended``: it was its episode's last."""
        row = index % self.capacity
        self.start[row], self.end[row] = self.current, -1
        if ended:
            self.close(index)

    def rebuild(self, ended: np.ndarray, added: int) -> None:
        """From the end flags of the stored rows, oldest first ((size,) bool), ``added`` transitions in all."""
        size = len(ended)
        oldest = added - size
        absolute = np.arange(oldest, added, dtype=np.int64)  # (size,)
        ends = absolute[ended]  # the absolute indices of the episodes' last transitions
        rows = absolute % self.capacity
        if len(ends):
            j = np.searchsorted(ends, absolute, side="left")  # (size,) the first end at or after each transition
            self.end[rows] = np.where(j < len(ends), ends[np.minimum(j, len(ends) - 1)], -1)
            self.start[rows] = np.where(j > 0, ends[np.maximum(j - 1, 0)] + 1, oldest)
            self.current = int(ends[-1]) + 1
        else:
            self.end[rows], self.start[rows], self.current = -1, oldest, oldest

    def close(self, index: int) -> None:
        """The running episode ended with transition ``index`` (absolute): its rows still stored get that end."""
        first = max(self.current, index - self.capacity + 1)
        self.end[np.arange(first, index + 1) % self.capacity] = index
        self.current = index + 1

    def bounds(self, index: np.ndarray, added: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The episode [start, end] of transitions ``index`` (absolute, (B,)): a running episode ends at the newest
        transition, and one begun before the oldest stored transition starts there."""
        rows = index % self.capacity
        end = self.end[rows]
        end = np.where(end < 0, added - 1, end)
        start = np.maximum(self.start[rows], added - size)
        return start, end


class Relabeller:
    """HER at sampling time (the module doc): ``strategy`` (``future``, ``final``, ``episode``), ``k`` relabelled
    goals per real one, the goals' columns in a flat observation, and the env's vectorized ``compute_reward``
    (and ``compute_terminated``, or None to keep the stored flag)."""

    def __init__(self, strategy: str, k: int, goals: GoalColumns, compute_reward: GoalFunction,
                 compute_terminated: GoalFunction | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown HER strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
        if k < 1:
            raise ValueError(f"her_k must be >= 1, got {k}")
        self.strategy, self.k, self.goals = strategy, k, goals
        self.compute_reward, self.compute_terminated = compute_reward, compute_terminated

    def relabel(self, rows: torch.Tensor, index: np.ndarray, goal_source: Callable[[np.ndarray], torch.Tensor],
                start: np.ndarray, end: np.ndarray, u: torch.Tensor, layout: dict[str, tuple[int, int]]
                ) -> torch.Tensor:
        """Rows (B, width) drawn at absolute indices ``index`` (B,), of episodes [start, end], rewritten (a new
        tensor): ``u`` (2, B) uniform draws — the first picks the transitions relabelled (u < k / (k + 1)), the
        second their goal transition (:func:`goal_transition`); ``goal_source(j)`` the achieved goals of the next
        observations of transitions j (absolute), (len(j), g); ``layout`` the row's columns by field."""
        pick = (u[0] < relabel_probability(self.k)).numpy()  # (B,)
        if not pick.any():
            return rows
        sel = np.flatnonzero(pick)
        j = goal_transition(self.strategy, index[sel], start[sel], end[sel], u[1].numpy().astype(np.float64)[sel])
        goal = goal_source(j).to(rows.device)  # (b, g) the new goals g'
        rows = rows.clone()
        sel_t = torch.as_tensor(sel, device=rows.device)
        (alo, ahi), (dlo, dhi) = self.goals
        obs0, next0 = layout["obs"][0], layout["next_obs"][0]
        rows[sel_t, obs0 + dlo:obs0 + dhi] = goal  # g' in s
        rows[sel_t, next0 + dlo:next0 + dhi] = goal  # and in s'
        achieved = rows[sel_t, next0 + alo:next0 + ahi].cpu().numpy()  # (b, g) achieved_goal(s')
        goal_np = goal.cpu().numpy()
        reward = batch_call(self.compute_reward, achieved, goal_np)  # (b,) r'
        rows[sel_t, layout["reward"][0]] = torch.as_tensor(reward, device=rows.device)
        if self.compute_terminated is not None:
            done = batch_call(self.compute_terminated, achieved, goal_np)  # (b,)
            rows[sel_t, layout["terminated"][0]] = torch.as_tensor(done, device=rows.device)
        return rows


def batch_call(fn: GoalFunction, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """``fn(achieved, desired)`` for a batch (b, g) -> (b,) float32: one call where ``fn`` is vectorized (one value
    per row), else one call per row — a function that returns one value for the whole batch (Gymnasium-Robotics'
    maze tasks' ``compute_terminated`` takes one norm over it; Fetch's returns a constant False) is not spread
    over the rows."""
    out = np.asarray(fn(achieved, desired), dtype=np.float32).reshape(-1)
    if out.size == len(achieved):
        return out
    return np.array([np.asarray(fn(a, d), dtype=np.float32).reshape(-1)[0] for a, d in zip(achieved, desired)],
                    dtype=np.float32)
