"""The callbacks that write a run directory while it trains: metrics.csv rows and checkpoints, and the commit
that makes a group's checkpoints one (:class:`GroupCommit`)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..storage.atomic import atomic_write_json
from ..storage.rundir import best_checkpoint_dir, checkpoint_dir, committed_path, format_cell, prune_checkpoints
from .loop import METRIC_COLUMNS, Callback, Trainer


class MetricsCSV(Callback):
    """Appends every metrics row to ``<run>/metrics.csv`` and flushes it, so the file is readable
    while training runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fh = self.path.open("a", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=METRIC_COLUMNS)
        if new:
            self._writer.writeheader()
            self._fh.flush()

    def on_metrics(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self._writer.writerow({k: format_cell(v) for k, v in row.items()})
        self._fh.flush()

    def on_training_end(self, trainer: Trainer) -> None:
        """Flush the file."""
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


class Checkpointer(Callback):
    """Saves full training checkpoints into ``<run>/checkpoints/<step>/``.

    A checkpoint is due every ``interval`` steps and is taken at the first episode end after that
    (an exact resume point). :meth:`request_stop` (on SIGINT/SIGTERM) makes it save at the next
    episode end and stop training; ``force=True`` (a second signal) saves right away, mid-episode.
    A save is committed through ``commit`` (:class:`GroupCommit`, shared by the runs of one experiment), which
    prunes old checkpoints to ``keep`` once every run has saved that step. ``saved`` lists (step, path) of every
    save, in order.

    It also keeps the networks of the best evaluation so far in ``checkpoints/best/`` (model only, as
    SB3's EvalCallback and PFRL's save-best do: DDPG's returns can collapse between two evaluations);
    ``best`` is (step, mean, std) of that evaluation. On resume the best so far is read from the
    metrics rows the checkpoint carries.

    ``boundary(trainer)`` replaces "the trainer is between episodes" as the moment to save: a group of
    seeds (:class:`ddpgkit.agents.group.DDPGGroup`) saves every member at one step where all of them are between
    episodes, so the group resumes exactly. With ``patience``, a save (or a stop) waits at most that many
    steps for such a moment, then is taken mid-episode.
    """

    def __init__(self, run: str | Path, interval: int, keep: int, boundary: Callable[[Trainer], bool] | None = None,
                 patience: int | None = None, commit: GroupCommit | None = None) -> None:
        self.run, self.interval, self.keep = Path(run), interval, keep
        self.commit = commit if commit is not None else GroupCommit([self.run], keep)
        self.boundary = boundary if boundary is not None else _between_episodes
        self.patience = patience
        self.next_due: int | None = None
        self.stop_requested = False
        self._stop_step: int | None = None  # the step at which the stop was requested (for patience)
        self.force = False
        self.saved: list[tuple[int, Path]] = []
        self.best: tuple[int, float, float] | None = None

    def on_training_start(self, trainer: Trainer) -> None:
        """Schedule the next save from the step training starts at, and take the best evaluation so far from
        the metrics rows (a resumed run carries on with both)."""
        if self.interval:
            self.next_due = (trainer.step // self.interval + 1) * self.interval
        evals = [r for r in trainer.history if r.get("eval_mean") is not None]
        if evals:
            top = max(evals, key=lambda r: r["eval_mean"])  # the first of equal bests, as on_eval keeps it
            self.best = (int(top["step"]), float(top["eval_mean"]), float(top["eval_std"]))

    def on_eval(self, trainer: Trainer, returns: np.ndarray) -> None:
        """Keep the networks in ``checkpoints/best/`` if this evaluation's mean is the best so far."""
        mean = float(returns.mean())
        if math.isfinite(mean) and (self.best is None or mean > self.best[1]):
            self.best = (trainer.step, mean, float(returns.std()))
            trainer.agent.save(best_checkpoint_dir(self.run), training_state=False)

    def request_stop(self, force: bool = False) -> None:
        """Save at the next moment to save and stop (SIGINT/SIGTERM); ``force``: save now, mid-episode."""
        self.stop_requested = True
        self.force = self.force or force

    def _waited_enough(self, trainer: Trainer, since: int | None) -> bool:
        return self.patience is not None and since is not None and trainer.step >= since + self.patience

    def save(self, trainer: Trainer) -> Path:
        """Save the training state at the trainer's current step (once per step: a second call at the
        same step returns the checkpoint already written)."""
        if self.saved and self.saved[-1][0] == trainer.step:
            return self.saved[-1][1]
        path = trainer.agent.save(checkpoint_dir(self.run, trainer.step), training_state=True, share_buffer=True)
        self.saved.append((trainer.step, path))
        self.commit.saved(self.run, trainer.step)
        return path

    def on_step(self, trainer: Trainer) -> bool | None:
        """Save when a save is due (or a stop was requested) and the moment allows it; False stops training."""
        boundary = self.boundary(trainer)
        if self.stop_requested:
            if self._stop_step is None:
                self._stop_step = trainer.step
            if boundary or self.force or self._waited_enough(trainer, self._stop_step):
                self.save(trainer)
                return False
        due = self.next_due is not None and trainer.step >= self.next_due
        if due and (boundary or self._waited_enough(trainer, self.next_due)):
            self.save(trainer)
            self.next_due = (trainer.step // self.interval + 1) * self.interval
        return None


def _between_episodes(trainer: Trainer) -> bool:
    return trainer.at_episode_boundary


class GroupCommit:
    """The checkpoints of a group's runs at one step, committed as one: every run saves its checkpoint of the
    step, then each run directory's ``checkpoints/committed.json`` names the step and the group's runs, then
    each is pruned to its ``keep`` newest checkpoints. Nothing is pruned before every run has saved, so at
    every moment — a kill between two runs' saves included — the runs have a step in common to resume from:
    the new one once all have it, else the one before. A single run is the group of one.
    """

    def __init__(self, runs: list[Path], keep: int) -> None:
        self.runs, self.keep = [Path(r) for r in runs], keep
        self._pending: dict[int, set[Path]] = {}

    def saved(self, run: Path, step: int) -> None:
        """``run`` has saved its checkpoint of ``step``; the last of the group to do so commits it."""
        self._pending.setdefault(step, set()).add(Path(run))
        self._commit_ready()

    def retire(self, run: Path) -> None:
        """``run`` diverged: it saves no more, and the group commits without it."""
        self.runs = [r for r in self.runs if r != Path(run)]
        self._commit_ready()

    def _commit_ready(self) -> None:
        for step in sorted(self._pending):
            if self.runs and set(self.runs) <= self._pending[step]:
                self._commit(step)

    def _commit(self, step: int) -> None:
        del self._pending[step]
        record = {"step": step, "runs": [r.name for r in self.runs]}
        for r in self.runs:
            atomic_write_json(committed_path(r), record)
        for r in self.runs:
            prune_checkpoints(r, self.keep)
