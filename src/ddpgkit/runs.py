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
