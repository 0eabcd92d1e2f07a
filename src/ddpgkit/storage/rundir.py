"""The run directory: what every command writes and every later command reads.

    <run>/config.toml        the resolved DDPGConfig (every key, with its meaning)
    <run>/metrics.csv        one row per finished episode and per evaluation (training.loop.METRIC_COLUMNS)
    <run>/summary.json       final evaluation, steps, wall time, env id, versions
    <run>/learning_curve.png training-episode and evaluation returns against steps
    <run>/health.png         the health signals of the metrics rows (drawn by ``ddpgkit plot``)
    <run>/checkpoints/<step>/ manifest.json + safetensors (see checkpoint.py)

Plots and reports are drawn from these files alone. This module knows the layout and reads and
writes the plain files; it needs neither torch nor an agent (the callbacks that write a run while it
trains are in :mod:`ddpgkit.training.callbacks`, the run's lifecycle in :mod:`ddpgkit.experiments.run`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import socket
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError, RunError

try:  # POSIX: a run directory's lock (RunLock); elsewhere runs are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
from .atomic import atomic_write_json, atomic_write_text, ensure_writable_dir
from .manifest import CHUNKS, read_manifest

CONFIG = "config.toml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CURVE = "learning_curve.png"
HEALTH = "health.png"
CHECKPOINTS = "checkpoints"
BEST = "best"  # checkpoints/best/: the networks of the best evaluation so far (model only)
COMMITTED = "committed.json"  # checkpoints/committed.json: the newest step every run of the group has saved
TENSORBOARD = "tensorboard"  # <run>/tensorboard/: the optional TensorBoard mirror of metrics.csv
BROKEN_BATCH = "nonfinite_batch.safetensors"  # the batch an update broke on, kept for a look
INSPECT = "inspect"  # <run>/inspect/: the pictures of `ddpgkit inspect`
#: The file ddpgkit writes when it makes a run directory; --overwrite removes only what it finds beside it.
MARKER = ".ddpgkit-run"
#: The file the one process writing a run holds locked (:class:`RunLock`).
LOCK = ".ddpgkit-lock"
#: The files ddpgkit writes in a run directory, and so what --overwrite removes.
RUN_FILES = (CONFIG, METRICS, SUMMARY, CURVE, HEALTH, BROKEN_BATCH)
#: The directories ddpgkit writes in a run directory, and so what --overwrite removes.
RUN_DIRS = (CHECKPOINTS, TENSORBOARD, INSPECT)


def config_table(data: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a parsed config TOML: the keys under a ``[ddpg]`` table (beside at most an
    ``[origin]`` table, as a run's config.toml writes them), else the top-level keys. The one rule for
    every reader of such files."""
    if "ddpg" in data and set(data) <= {"ddpg", "origin"} and isinstance(data["ddpg"], dict):
        return data["ddpg"]
    return data


def read_origin(run: str | Path) -> dict[str, str] | None:
    """The ``[origin]`` table of a run's config.toml (where its hyperparameters started from), or None."""
    try:
        origin = tomllib.loads((Path(run) / CONFIG).read_text(encoding="utf-8")).get("origin")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if isinstance(origin, dict) and all(isinstance(v, str) for v in origin.values()):
        return origin
    return None


def refuse_existing_run(path: str | Path) -> None:
    """RunError if ``path`` already holds a run (its config, metrics, summary or checkpoints)."""
    path = Path(path)
    existing = [n for n in (CONFIG, METRICS, SUMMARY, CHECKPOINTS) if (path / n).exists()]
    if existing:
        raise RunError(f"{path} already holds a run ({', '.join(existing)}); choose another --out or pass --overwrite")


def check_run_dirs(paths: Sequence[str | Path], resume: bool = False, overwrite: bool = False) -> None:
    """The one check before runs start in ``paths``, before any of them is touched: ``resume`` and ``overwrite``
    exclude each other (ConfigError), without either no directory may already hold a run (RunError,
    :func:`refuse_existing_run`), and ``overwrite`` replaces only directories ddpgkit made
    (:func:`refuse_foreign_dir`)."""
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other (--resume continues a run, --overwrite replaces it)")
    for p in paths:
        if overwrite:
            refuse_foreign_dir(p)  # before its lock file is made there
        elif not resume:
            refuse_existing_run(p)


def run_diverged(run: str | Path) -> bool:
    """Whether the run in ``run`` diverged (its summary.json's ``status``): it has nothing more to train."""
    try:
        return read_summary(run).get("status") == "diverged"
    except RunError:
        return False


def run_finished(run: str | Path, total_steps: int | None = None) -> bool:
    """Whether the run in ``run`` has finished training to ``total_steps`` (default: its config.toml's): its
    summary.json, written last, records that many steps or more, or says it diverged (:func:`run_diverged`: it
    has nothing more to train). The one test of "finished" (resume, sweeps, workers); a run whose final
    checkpoint is written but not its summary has not finished."""
    try:
        summary = read_summary(run)
    except RunError:
        return False
    if summary.get("status") == "diverged":
        return True
    steps = summary.get("steps")
    if total_steps is None:
        try:
            total_steps = config_table(tomllib.loads((Path(run) / CONFIG).read_text(encoding="utf-8")))["total_steps"]
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
            return False
    return (isinstance(steps, int) and not isinstance(steps, bool) and isinstance(total_steps, int)
            and steps >= total_steps)


def is_run_dir(path: str | Path) -> bool:
    """Whether ddpgkit made the directory ``path`` as a run directory: its marker (:data:`MARKER`), or for a run
    made before markers existed, a file only ddpgkit writes (a summary.json naming ddpgkit's version, a
    checkpoint manifest, a config.toml with both its ``[ddpg]`` and ``[origin]`` tables)."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    try:
        if "ddpgkit" in json.loads((path / SUMMARY).read_text()).get("versions", {}):
            return True
    except (OSError, ValueError, AttributeError):
        pass
    try:
        if {"ddpg", "origin"} <= set(tomllib.loads((path / CONFIG).read_text(encoding="utf-8"))):
            return True
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        pass
    for ckpt in list_checkpoints(path):
        try:
            read_manifest(ckpt)
            return True
        except CheckpointError:
            continue
    return False


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create ``path`` for a new run and mark it as a run directory (:data:`MARKER`). A directory that already
    holds a run is refused unless ``overwrite``: then what ddpgkit writes in a run directory
    (:data:`RUN_FILES`, :data:`RUN_DIRS`) is removed, and nothing else — and only if ddpgkit made it
    (:func:`is_run_dir`): ``--overwrite`` on a folder of one's own that happens to hold a config.toml is
    refused in one line, its files untouched."""
    path = Path(path)
    existing = [n for n in (CONFIG, METRICS, SUMMARY, CHECKPOINTS) if (path / n).exists()]
    if not overwrite:
        refuse_existing_run(path)
    refuse_foreign_dir(path)
    ensure_writable_dir(path)
    if existing:
        for n in RUN_FILES:
            (path / n).unlink(missing_ok=True)
        for n in RUN_DIRS:
            shutil.rmtree(path / n, ignore_errors=True)
    mark_run_dir(path)
    return path


def refuse_foreign_dir(path: str | Path) -> None:
    """A RunError if ``path`` holds files a run writes (config.toml, metrics.csv, summary.json, checkpoints/) but
    ddpgkit did not make it (:func:`is_run_dir`): ``--overwrite`` would remove someone's own files."""
    path = Path(path)
    existing = [n for n in (CONFIG, METRICS, SUMMARY, CHECKPOINTS) if (path / n).exists()]
    if existing and not is_run_dir(path):
        raise RunError(f"{path} holds {', '.join(existing)} but is not a run directory ddpgkit made (no {MARKER}); "
                       "--overwrite removes only ddpgkit's runs: choose another --out")


def mark_run_dir(path: str | Path) -> None:
    """Mark ``path`` as a run directory ddpgkit made (:data:`MARKER`), if it is not marked yet."""
    if not (Path(path) / MARKER).exists():
        atomic_write_json(Path(path) / MARKER, {"ddpgkit_run": True})


class RunLock:
    """The one writer of a run directory (or a sweep directory): an exclusive ``flock`` on its :data:`LOCK` file,
    held until :meth:`release` (or the process's end, a kill included: the system drops the lock). The holder
    writes its process id, host and start time into the file; a second writer gets one RunError naming them."""

    def __init__(self, path: str | Path, what: str = "run") -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path / LOCK, "a+")  # noqa: SIM115 - held open for the life of the lock
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise RunError(f"{self.path} is in use by {holder}: one process writes a {what} at a time (wait for it "
                           "to end, or stop it)") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self._fh.flush()

    def release(self) -> None:
        """Let the next writer in (the file stays: removing it would race with one that opened it)."""
        if not self._fh.closed:
            if fcntl is not None:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()


def format_cell(v: Any) -> str:
    """A metrics value as a CSV cell: blank for None, ``repr`` for floats (exact round trip)."""
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


def best_checkpoint_dir(run: str | Path) -> Path:
    """``<run>/checkpoints/best``: the networks of the run's best evaluation (not a resume point)."""
    return Path(run) / CHECKPOINTS / BEST


def checkpoint_dir(run: str | Path, step: int) -> Path:
    """``<run>/checkpoints/<step>/``: the checkpoint of that step."""
    return Path(run) / CHECKPOINTS / str(step)


def committed_path(run: str | Path) -> Path:
    """``<run>/checkpoints/committed.json``: the newest checkpoint step committed by the run's group (every run of
    it had saved that step; ``training.callbacks.GroupCommit`` writes it) and the group's run directory names."""
    return Path(run) / CHECKPOINTS / COMMITTED


def read_committed(run: str | Path) -> dict[str, Any] | None:
    """:func:`committed_path`'s record, or None where there is none (or it does not read)."""
    try:
        record = json.loads(committed_path(run).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("step"), int) else None


def checkpoints_by_step(run: str | Path) -> dict[int, Path]:
    """Checkpoint directories of a run by step. A checkpoint that a replacement parked as
    ``.<step>.replaced`` when a crash interrupted it counts when ``<step>`` itself is missing."""
    root = Path(run) / CHECKPOINTS
    if not root.is_dir():
        return {}
    found = {int(p.name): p for p in root.iterdir() if p.is_dir() and p.name.isdigit()}
    for p in root.glob(".*.replaced"):
        step = p.name[1:-len(".replaced")]
        if p.is_dir() and step.isdigit() and int(step) not in found:
            found[int(step)] = p
    return found


def list_checkpoints(run: str | Path) -> list[Path]:
    """Checkpoint directories of a run, newest (highest step) first (:func:`checkpoints_by_step`)."""
    found = checkpoints_by_step(run)
    return [found[s] for s in sorted(found, reverse=True)]


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
    valid one). The newest valid checkpoint is never removed, nor the step the run's group last committed
    (:func:`read_committed`: the step every run of the group can resume from). Returns what was removed."""
    valid, removed = [], []
    committed = read_committed(run)
    committed_step = committed.get("step") if committed else None
    for p in list_checkpoints(run):
        try:
            read_manifest(p)
            ok = True
        except CheckpointError:
            ok = False
        if ok and (len(valid) < max(keep, 1) or p.name == str(committed_step)):
            valid.append(p)
        elif valid:  # older than a kept valid checkpoint
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    # temporaries of saves that were killed midway
    root = Path(run) / CHECKPOINTS
    for p in root.glob(".*.tmp") if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
    removed += collect_chunks(run)
    return removed


def collect_chunks(run: str | Path) -> list[Path]:
    """Delete the shared chunk files (``checkpoints/.chunks/``) that no checkpoint of the run whose
    manifest reads references any more, and temporaries of chunk writes that were killed. Returns
    what was removed."""
    root = Path(run) / CHECKPOINTS
    store = root / CHUNKS
    if not store.is_dir():
        return []
    referenced: set[str] = set()
    for p in [*list_checkpoints(run), best_checkpoint_dir(run)]:
        try:
            referenced.update(read_manifest(p)["shared"])
        except CheckpointError:
            continue
    removed = []
    for f in store.iterdir():
        if f.name not in referenced:
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def write_metrics(path: str | Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    """Replace a metrics.csv with ``rows`` (atomically; on resume: the rows of the checkpoint,
    dropping any the interrupted process wrote after it)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: format_cell(row.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def write_summary(run: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``<run>/summary.json`` atomically."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    return atomic_write_json(Path(run) / SUMMARY, clean)


def read_summary(run: str | Path) -> dict[str, Any]:
    """``<run>/summary.json`` as a dict; RunError if it is missing or not JSON."""
    path = Path(run) / SUMMARY
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: missing; the run has not finished") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: cannot read: {e}") from None
