"""Exceptions that carry a one-line message meant for the user.

The CLI prints ``str(error)`` of any of these on one line of stderr and exits non-zero; the library
raises them (never prints). Each subclasses the built-in exception a Python user would expect, so
``except ValueError`` keeps working.
"""

from __future__ import annotations


def one_line(text: object) -> str:
    """``str(text)`` with line breaks turned into spaces: for messages that quote foreign text (an
    exception's message, an edited value) and must stay one line."""
    return " ".join(str(text).splitlines())


class DDPGKitError(Exception):
    """Base class of every error ddpgkit raises on purpose."""


class ConfigError(DDPGKitError, ValueError):
    """A hyperparameter or config file is invalid."""


class DataError(DDPGKitError, ValueError):
    """A data set (CSV file, target name) is unusable."""


class EnvError(DDPGKitError, ValueError):
    """An environment is unknown or unsuitable for DDPG."""


class NonFiniteError(DDPGKitError, ArithmeticError):
    """An environment produced NaN or inf in an observation or a reward."""


class NonFiniteUpdate(NonFiniteError):
    """An update produced NaN or inf in a loss or a gradient; that step was not applied (an actor step's
    signal says that this update's critic step, which it follows, was). ``signal`` names it
    ("critic loss", "actor gradient", ...; with the seed for a group), ``batch`` is the batch that did
    it, ``member`` the index of the agent in a group whose update broke (None for one agent), and ``step``
    (set by the training loop) the environment step."""

    def __init__(self, signal: str, batch: object, step: int | None = None, member: int | None = None) -> None:
        self.signal, self.batch, self.step, self.member = signal, batch, step, member
        where = f"at step {step:,}" if step is not None else "in an update"
        super().__init__(f"non-finite {signal} {where}: training stopped before applying it")


class CheckpointError(DDPGKitError, ValueError):
    """A checkpoint is missing, corrupt, or made for another problem."""


class NoLearningWarning(UserWarning):
    """A ``learn`` call that ends before learning starts (only the random warm-up runs)."""


class RunError(DDPGKitError, ValueError):
    """A run directory is missing, incomplete, or would be overwritten."""


class RunFinished(RunError):
    """A run asked to resume has already trained the steps asked for (its summary.json says so): nothing to
    train. ``run_dirs`` are the finished runs."""

    def __init__(self, message: str, run_dirs: list) -> None:
        super().__init__(message)
        self.run_dirs = run_dirs


class RunInterrupted(DDPGKitError):
    """Training stopped on a signal after saving a checkpoint; ``code`` is the exit status (128 + signal)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
