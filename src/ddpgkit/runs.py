"""The run directory: what every command writes and every later command reads.

    <run>/config.toml        the resolved DDPGConfig (every key, with its meaning)
    <run>/metrics.csv        one row per finished episode and per evaluation (train.METRIC_COLUMNS)
    <run>/summary.json       final evaluation, steps, wall time, env id, versions
    <run>/learning_curve.png training-episode and evaluation returns against steps
    <run>/checkpoints/<step>/ manifest.json + safetensors (see checkpoint.py)

Plots and reports are drawn from these files alone.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from .checkpoint import read_manifest
from .errors import CheckpointError, DDPGKitError
from .fileio import atomic_write_json, ensure_writable_dir
from .train import METRIC_COLUMNS, Callback, Trainer

CONFIG = "config.toml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CURVE = "learning_curve.png"
CHECKPOINTS = "checkpoints"


class RunError(DDPGKitError, ValueError):
    """A run directory is missing, incomplete or would be overwritten."""


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create ``path`` for a new run. A directory that already holds a run is refused unless
    ``overwrite``, in which case its run files (not other files) are removed."""
    path = Path(path)
    existing = [n for n in (CONFIG, METRICS, SUMMARY, CHECKPOINTS) if (path / n).exists()]
    if existing and not overwrite:
        raise RunError(f"{path} already holds a run ({', '.join(existing)}); choose another --out or pass --overwrite")
    ensure_writable_dir(path)
    if existing:
        import shutil

        for n in (CONFIG, METRICS, SUMMARY, CURVE):
            (path / n).unlink(missing_ok=True)
        shutil.rmtree(path / CHECKPOINTS, ignore_errors=True)
    return path


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
        self._writer.writerow({k: _fmt(v) for k, v in row.items()})
        self._fh.flush()

    def on_training_end(self, trainer: Trainer) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def read_metrics(path: str | Path) -> list[dict[str, float | None]]:
    """Rows of a metrics.csv (a run directory or the file), numbers as float, blanks as None."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "step" not in reader.fieldnames:
                raise RunError(f"{path}: not a ddpgkit metrics file (no 'step' column)")
            rows = []
            for lineno, raw in enumerate(reader, start=2):
                row: dict[str, float | None] = {}
                for k, v in raw.items():
                    if k is None:
                        raise RunError(f"{path}: line {lineno} has extra cells")
                    try:
                        row[k] = float(v) if v not in ("", None) else None
                    except ValueError:
                        raise RunError(f"{path}: line {lineno}, column {k}: not a number ({v!r})") from None
                rows.append(row)
    except FileNotFoundError:
        raise RunError(f"{path}: missing; is this a ddpgkit run directory?") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: cannot read: {e}") from None
    return rows


def checkpoint_dir(run: str | Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS / str(step)


def list_checkpoints(run: str | Path) -> list[Path]:
    """Checkpoint directories of a run, newest (highest step) first."""
    root = Path(run) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(found, key=lambda p: int(p.name), reverse=True)


def latest_checkpoint(run: str | Path) -> Path:
    """The newest checkpoint of a run whose manifest is valid (a partially written one is skipped)."""
    problems = []
    for p in list_checkpoints(run):
        try:
            read_manifest(p)
            return p
        except CheckpointError as e:
            problems.append(str(e))
    if problems:
        raise RunError(f"{run}: no valid checkpoint ({problems[0]})")
    raise RunError(f"{run}: no checkpoints; is this a ddpgkit run directory?")


def prune_checkpoints(run: str | Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest valid checkpoints (and any invalid one older than the newest
    valid one). The newest valid checkpoint is never removed. Returns what was removed."""
    import shutil

    valid, removed = [], []
    for p in list_checkpoints(run):
        try:
            read_manifest(p)
            ok = True
        except CheckpointError:
            ok = False
        if ok and len(valid) < max(keep, 1):
            valid.append(p)
        elif valid:  # older than a kept valid checkpoint
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    # temporaries of saves that were killed midway
    root = Path(run) / CHECKPOINTS
    for p in root.glob(".*.tmp") if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
    return removed


class Checkpointer(Callback):
    """Saves full training checkpoints into ``<run>/checkpoints/<step>/``.

    A checkpoint is due every ``interval`` steps and is taken at the first episode end after that
    (an exact resume point). :meth:`request_stop` (the CLI calls it on SIGINT/SIGTERM) makes it save
    at the next episode end and stop training; ``force=True`` (a second signal) saves right away,
    mid-episode. Old checkpoints are pruned to ``keep``.
    """

    def __init__(self, run: str | Path, interval: int, keep: int) -> None:
        self.run, self.interval, self.keep = Path(run), interval, keep
        self.next_due: int | None = None
        self.stop_requested = False
        self.force = False
        self.saved: list[Path] = []

    def on_training_start(self, trainer: Trainer) -> None:
        if self.interval:
            self.next_due = (trainer.step // self.interval + 1) * self.interval

    def request_stop(self, force: bool = False) -> None:
        self.stop_requested = True
        self.force = self.force or force

    def save(self, trainer: Trainer) -> Path:
        path = trainer.agent.save(checkpoint_dir(self.run, trainer.step), training_state=True)
        self.saved.append(path)
        prune_checkpoints(self.run, self.keep)
        return path

    def on_step(self, trainer: Trainer) -> bool | None:
        boundary = trainer.at_episode_boundary
        if self.stop_requested and (boundary or self.force):
            self.save(trainer)
            return False
        if self.next_due is not None and boundary and trainer.step >= self.next_due:
            self.save(trainer)
            self.next_due = (trainer.step // self.interval + 1) * self.interval
        return None


def rewrite_metrics(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Replace a metrics.csv with ``rows`` (on resume: the rows of the checkpoint, dropping any the
    interrupted process wrote after it)."""
    import io

    from .fileio import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in METRIC_COLUMNS})
    return atomic_write_text(path, buf.getvalue())


def load_latest(run: str | Path, device: str | None = None):
    """The agent of the newest checkpoint that loads completely (checksums, shapes, training
    state), with its path and why any newer ones were skipped."""
    from .ddpg import DDPG

    skipped: list[str] = []
    for p in list_checkpoints(run):
        try:
            return DDPG.load(p, device=device), p, skipped
        except CheckpointError as e:
            skipped.append(str(e))
    if skipped:
        raise RunError(f"{run}: no valid checkpoint ({skipped[0]})")
    raise RunError(f"{run}: no checkpoints; is this a ddpgkit run directory?")


def write_summary(run: str | Path, summary: dict[str, Any]) -> Path:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    return atomic_write_json(Path(run) / SUMMARY, clean)


def read_summary(run: str | Path) -> dict[str, Any]:
    path = Path(run) / SUMMARY
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: missing; the run has not finished") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: cannot read: {e}") from None
