"""The checkpoint manifest: reading and verifying ``manifest.json``, and where a checkpoint directory
is (the torch-free half of :mod:`ddpgkit.storage.checkpoint`, so that run directories can be listed and
reported on without loading tensors).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, one_line

FORMAT = "ddpgkit-checkpoint"
#: The version of the checkpoint format this ddpgkit writes; it reads 1 to this (:mod:`ddpgkit.storage.schema`).
VERSION = 3
MANIFEST = "manifest.json"
CHUNKS = ".chunks"  # beside the checkpoints: the immutable files they share (io.checkpoint.put_chunk)
#: The largest manifest a reader accepts (and a writer writes).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def replaced_name(path: Path) -> Path:
    """Where the fallback replacement parks the old checkpoint for a moment: ``.<name>.replaced``."""
    return path.with_name(f".{path.name}.replaced")


def chunk_store(checkpoint: str | Path) -> Path:
    """Where the shared files of the checkpoint directory ``checkpoint`` live: ``<its parent>/.chunks``."""
    return Path(checkpoint).parent / CHUNKS


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


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The checked manifest of the checkpoint directory ``path`` (see :func:`checkpoint_location`):
    ``files`` are inside the directory, ``shared`` ones (may be empty) in its :func:`chunk_store`."""
    path = checkpoint_location(path)
    mpath = path / MANIFEST
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a checkpoint directory")
    try:
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:
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
    version = manifest.get("version")
    if type(version) is not int or not 1 <= version <= VERSION:
        raise CheckpointError(f"{mpath}: checkpoint format version {version!r} is not supported "
                              f"(this ddpgkit reads versions 1 to {VERSION})")
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise CheckpointError(f"{mpath}: checksum mismatch (the manifest is corrupt or was edited)")
    if version == 1:  # version 1 manifests written before shared chunk files have no "shared" (storage/schema.py)
        manifest.setdefault("shared", {})
    files, shared = manifest.get("files"), manifest.get("shared")
    if not isinstance(files, dict) or not isinstance(manifest.get("meta"), dict) or not isinstance(shared, dict):
        raise CheckpointError(f"{mpath}: manifest lacks its 'files' or 'meta' table")
    for fname, entry in [*files.items(), *shared.items()]:
        if (not isinstance(fname, str) or not fname.endswith(".safetensors") or "/" in fname or "\\" in fname
                or fname.startswith(".")):
            raise CheckpointError(f"{mpath}: bad file name {fname!r} in manifest")
        if (not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or isinstance(entry.get("size"), bool)
                or not isinstance(entry.get("sha256"), str)):
            raise CheckpointError(f"{mpath}: bad entry for {fname} in manifest")
    return manifest
