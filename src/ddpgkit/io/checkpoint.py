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

import ctypes
import errno
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

FORMAT = "ddpgkit-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
_MAX_MANIFEST_BYTES = 64 * 1024 * 1024


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
        manifest["checksum"] = _manifest_checksum(manifest)
        _write_synced(tmp / MANIFEST, (json.dumps(manifest, indent=1, allow_nan=False) + "\n").encode())
        fsync_dir(tmp)
        _move_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def replaced_name(path: Path) -> Path:
    """Where the fallback replacement parks the old checkpoint for a moment: ``.<name>.replaced``."""
    return path.with_name(f".{path.name}.replaced")


def checkpoint_location(path: str | Path) -> Path:
    """``path``, or the old checkpoint a fallback replacement parked beside it if a crash came right
    after moving it aside (``path`` missing, ``.<name>.replaced`` present)."""
    path = Path(path)
    parked = replaced_name(path)
    if not path.exists() and parked.is_dir():
        return parked
    return path


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns False where that is not available (no such libc function, an old kernel, a file system
    without it); raises OSError for a real failure."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


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


def _manifest_checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The checked manifest of the checkpoint directory ``path`` (see :func:`checkpoint_location`)."""
    path = checkpoint_location(path)
    mpath = path / MANIFEST
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory")
    try:
        size = mpath.stat().st_size
        if size > _MAX_MANIFEST_BYTES:
            raise CheckpointError(f"{mpath}: manifest is implausibly large ({size} bytes)")
        manifest = json.loads(mpath.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{mpath}: missing (not a ddpgkit checkpoint, or an interrupted save)") from None
    except OSError as e:
        raise CheckpointError(f"{mpath}: cannot read: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{mpath}: not valid JSON ({type(e).__name__}: {one_line(e)})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{mpath}: not a ddpgkit checkpoint manifest")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{mpath}: checkpoint format version {manifest.get('version')!r} is not supported "
                              f"(this ddpgkit reads version {VERSION})")
    if manifest.get("checksum") != _manifest_checksum(manifest):
        raise CheckpointError(f"{mpath}: checksum mismatch (the manifest is corrupt or was edited)")
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(manifest.get("meta"), dict):
        raise CheckpointError(f"{mpath}: manifest lacks its 'files' or 'meta' table")
    for fname, entry in files.items():
        if (not isinstance(fname, str) or not fname.endswith(".safetensors") or "/" in fname or "\\" in fname
                or fname.startswith(".")):
            raise CheckpointError(f"{mpath}: bad file name {fname!r} in manifest")
        if (not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or isinstance(entry.get("size"), bool)
                or not isinstance(entry.get("sha256"), str)):
            raise CheckpointError(f"{mpath}: bad entry for {fname} in manifest")
    return manifest


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
