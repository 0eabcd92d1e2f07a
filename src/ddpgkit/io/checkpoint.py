"""Checkpoints: a directory of safetensors files plus a JSON manifest. Nothing is ever unpickled.

Layout (format version 1)::

    <dir>/manifest.json        {"format": "ddpgkit-checkpoint", "version": 1, "files": {name: {size, sha256}},
                                "meta": {...}, "created": ..., "versions": {...}, "checksum": sha256}
    <dir>/<name>.safetensors   named tensors

Saving writes everything into a temporary sibling directory, fsyncs it, and moves it into place in
one step: a new path by ``rename``; an existing checkpoint by an atomic exchange of the two
directories (Linux ``renameat2(RENAME_EXCHANGE)``), after which the old one is deleted. So a crash or a
full disk at any moment leaves the previous checkpoint or the complete new one, never neither. Where
the exchange is not available (another OS, a file system without it) the old directory is first
renamed to ``.<name>.replaced``; a crash right then leaves it there, and :func:`checkpoint_location`
(used by every reader) and the next save find it again. Loading
checks the manifest's own checksum (of its canonical JSON), every file's size and SHA-256, and only
then parses the tensors; any failure is a :class:`~ddpgkit.errors.CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .._version import __version__
from ..errors import CheckpointError, one_line
from .atomic import default_mode, fsync_dir
from .manifest import (
    FORMAT,
    MANIFEST,
    VERSION,
    checkpoint_location,
    exchange,
    manifest_checksum,
    read_manifest,
    replaced_name,
)


def versions() -> dict[str, str]:
    """The versions a checkpoint or run records."""
    return {"ddpgkit": __version__, "torch": torch.__version__, "python": platform.python_version()}


def save_checkpoint(path: str | Path, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> Path:
    """Write ``{file name: {tensor name: tensor}}`` and ``meta`` (JSON-able) as a checkpoint at ``path``.

    An existing checkpoint at ``path`` is replaced only once the new one is complete on disk.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # of a save that died midway
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, default_mode(directory=True))
        files = {}
        for name, group in tensors.items():
            if not name.isidentifier():
                raise ValueError(f"bad checkpoint file name {name!r}")
            blob = st_save({k: v.detach().contiguous().cpu() for k, v in group.items()})
            fname = f"{name}.safetensors"
            _write_synced(tmp / fname, blob)
            files[fname] = {"size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        manifest = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "versions": versions(), "files": files, "meta": meta}
        manifest["checksum"] = manifest_checksum(manifest)
        _write_synced(tmp / MANIFEST, (json.dumps(manifest, indent=1, allow_nan=False) + "\n").encode())
        fsync_dir(tmp)
        _move_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _move_into_place(tmp: Path, path: Path) -> None:
    """Put the complete checkpoint ``tmp`` at ``path`` so that a crash at any point leaves a valid one."""
    parked = replaced_name(path)
    if parked.is_dir():  # a fallback replacement was interrupted earlier
        if path.exists():
            shutil.rmtree(parked, ignore_errors=True)
        else:
            os.replace(parked, path)
    if not path.exists():
        os.replace(tmp, path)
    elif exchange(tmp, path):  # tmp now holds the old checkpoint
        fsync_dir(path.parent)
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(path, parked)  # a crash here leaves the old checkpoint at .<name>.replaced
        os.replace(tmp, path)
        fsync_dir(path.parent)
        shutil.rmtree(parked, ignore_errors=True)
    fsync_dir(path.parent)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | Path, only: tuple[str, ...] | None = None
                    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Verify and read a checkpoint: ``({file name: {tensor name: tensor}}, meta)``.

    ``only`` limits reading to some files (by name without ``.safetensors``); each one read is
    verified against the manifest's size and SHA-256 before it is parsed.
    """
    path = checkpoint_location(path)
    manifest = read_manifest(path)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for fname, entry in manifest["files"].items():
        name = fname.removesuffix(".safetensors")
        if only is not None and name not in only:
            continue
        fpath = path / fname
        try:
            blob = fpath.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"{fpath}: missing") from None
        except OSError as e:
            raise CheckpointError(f"{fpath}: cannot read: {e.strerror or e}") from None
        if len(blob) != entry["size"]:
            raise CheckpointError(f"{fpath}: size {len(blob)} bytes, manifest says {entry['size']} "
                                  "(truncated or edited)")
        if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
            raise CheckpointError(f"{fpath}: checksum mismatch (the file is corrupt or was edited)")
        try:
            out[name] = st_load(blob)
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{fpath}: not a valid safetensors file ({one_line(e)})") from None
    if only is not None:
        missing = set(only) - set(out)
        if missing:
            raise CheckpointError(f"{path}: checkpoint has no {', '.join(sorted(missing))} file")
    return out, manifest["meta"]
