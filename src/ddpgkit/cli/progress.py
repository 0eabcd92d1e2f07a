"""Progress bars on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import time

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..training.loop import Callback, Trainer
from .app import err


def progress_bar(*fields: str) -> Progress:
    """A progress bar on stderr (description, bar, n/total, the given task fields, time left) that
    draws only when stderr is a terminal."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        *(TextColumn(f"{{task.fields[{f}]}}") for f in fields),
        TimeRemainingColumn(), console=err, disable=not err.is_terminal,
    )


class TrainingProgress(Callback):
    """A training callback that shows steps, steps/s and the last evaluation (use as a context manager)."""

    def __init__(self, total: int, start: int = 0, every: int = 100) -> None:
        self.every = every
        self.progress = progress_bar("rate", "eval")
        self.task = self.progress.add_task("train", total=total, completed=start, rate="", eval="")
        self._t0 = time.perf_counter()
        self._s0: int | None = None

    def on_step(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            self.advance_to(trainer.step)

    def on_eval(self, trainer: Trainer, returns: np.ndarray) -> None:
        self.show_eval(float(returns.mean()), float(returns.std()))

    def advance_to(self, step: int) -> None:
        """Show ``step`` steps done, and the rate since the first step shown."""
        now = time.perf_counter()
        if self._s0 is None:
            self._s0, self._t0 = step, now
        rate = (step - self._s0) / (now - self._t0) if now > self._t0 else 0.0
        self.progress.update(self.task, completed=step, rate=f"{rate:.0f} steps/s")

    def show_eval(self, mean: float, std: float) -> None:
        """Show the last evaluation's mean ± std."""
        self.progress.update(self.task, eval=f"eval {mean:.1f} ± {std:.1f}")

    def __enter__(self) -> TrainingProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)
