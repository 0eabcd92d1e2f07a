"""Checkpoints: a directory of safetensors files plus a JSON manifest. Nothing is ever unpickled.

Layout (format version 1)::

    <dir>/manifest.json        {"format": "ddpgkit-checkpoint", "version": 1, "files": {name: {size, sha256}},
                                "shared": {name: {size, sha256}}, "meta": {...}, "created": ...,
                                "versions": {...}, "checksum": sha256}
    <dir>/<name>.safetensors   named tensors
    <dir>/../.chunks/<name>.safetensors   the shared files: immutable, named by their content, referenced
                               by the manifests of every checkpoint beside <dir> that holds them

Shared files are how a checkpoint's cost follows what changed: the replay buffer is saved in chunks
(:func:`put_chunk`), a chunk whose contents did not change since an earlier checkpoint is referenced
again instead of written again, and :func:`~ddpgkit.storage.rundir.prune_checkpoints` deletes the chunks
no remaining checkpoint references. Every shared file is verified like the checkpoint's own files.

Saving writes everything into a temporary sibling directory, fsyncs it, and moves it into place in
one step: a new path by ``rename``; an existing checkpoint by an atomic exchange of the two
directories (Linux ``renameat2(RENAME_EXCHANGE)``), after which the old one is deleted. So a crash or a
full disk at any moment leaves the previous checkpoint or the complete new one, never neither. Where
the exchange is not available (another OS, a file system without it) the old directory is first
renamed to ``.<name>.replaced``; a crash right then leaves it there, and
:func:`~ddpgkit.storage.manifest.checkpoint_location` (used by every reader) and the next save find it again. Loading
checks the manifest's own checksum (of its canonical JSON), every file's size and SHA-256, and only
then parses the tensors; any failure is a :class:`~ddpgkit.errors.CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable
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
    MAX_MANIFEST_BYTES,
    VERSION,
    checkpoint_location,
    chunk_store,
    exchange,
    manifest_checksum,
    read_manifest,
    replaced_name,
)


def versions() -> dict[str, str]:
    """The versions a checkpoint or run records."""
    return {"ddpgkit": __version__, "torch": torch.__version__, "python": platform.python_version()}


def put_chunk(store: str | Path, prefix: str, tensors: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any]]:
    """Write ``tensors`` as an immutable shared file in the directory ``store`` (see
    :func:`~ddpgkit.storage.manifest.chunk_store`), named ``<prefix>-<first 16 hex digits of its SHA-256>``,
    unless a file of that name holds exactly these bytes already (a file of that name that does not, damaged
    on disk, is replaced: the checkpoints that reference it load again). Returns its name and manifest entry,
    for the ``shared`` argument of :func:`save_checkpoint`. The file appears whole or not at all."""
    if not prefix.replace("-", "_").isidentifier():
        raise ValueError(f"bad chunk prefix {prefix!r}")
    blob = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    sha = hashlib.sha256(blob).hexdigest()
    name, entry = f"{prefix}-{sha[:16]}.safetensors", {"size": len(blob), "sha256": sha}
    store = Path(store)
    target = store / name
    try:
        if target.stat().st_size == len(blob) and target.read_bytes() == blob:
            return name, entry
    except FileNotFoundError:
        pass
    store.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=store)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(store)
    return name, entry


class ChunkFiles:
    """Where the chunks of something saved in pieces go when a checkpoint is saved — a replay buffer's rows
    (``ReplayBuffer.chunks``: ``(index, writes)``), a run's metrics history — and which shared file already
    holds each, so that a save writes only the chunks that changed.

    Inside the checkpoint directory, each as ``<prefix>_<k>.safetensors``; or (``share=True``, what a run
    directory's checkpoints do) as immutable files in the checkpoint's chunk store (:func:`put_chunk`), named
    ``<prefix>-<k>-w<writes>[-g<generation>]-<hash>``, written only when no file of this agent's already holds
    that chunk as it is now. One object per agent and prefix: it remembers what it saved, and what a loaded
    checkpoint referenced.

    Redundancy: a chunk no transition has reached for a while is shared by every checkpoint kept, so one damaged
    file would invalidate them all. With ``generations=2`` consecutive saves alternate between two sets of
    files (``-g0``, ``-g1``): each checkpoint references files of its own generation only, so a damaged file
    invalidates at most the kept checkpoints of one generation, and the newest of the other loads. The price:
    a chunk that changed is written once per generation, and the store holds up to two copies of the buffer.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._known: dict[tuple[int, int, int], tuple[str, dict[str, Any]]] = {}  # (chunk, writes, gen) -> file
        self._generation = 0  # of the next shared save

    def save(self, path: str | Path, chunks: list[tuple[int, int]], rows: Callable[[int], torch.Tensor],
             share: bool, generations: int = 1) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, Any]],
                                                         list[str]]:
        """For a checkpoint at ``path``: (files to write inside it, shared files it references, the chunk file
        of every chunk in order); ``rows(k)`` gives chunk ``k``'s rows; ``generations`` (1 or 2): see the class."""
        store = chunk_store(path)
        inside: dict[str, dict[str, torch.Tensor]] = {}
        shared: dict[str, dict[str, Any]] = {}
        names = []
        gen = self._generation % generations
        for k, writes in chunks:
            if not share:
                inside[f"{self.prefix}_{k:05d}"] = {"rows": rows(k)}
                names.append(f"{self.prefix}_{k:05d}.safetensors")
                continue
            ref = self._known.get((k, writes, gen))
            if ref is None or not _is_file(store / ref[0], ref[1]["size"]):
                tag = f"-g{gen}" if generations > 1 else ""
                ref = put_chunk(store, f"{self.prefix}-{k:05d}-w{writes}{tag}", {"rows": rows(k)})
                self._known[(k, writes, gen)] = ref
            shared[ref[0]] = ref[1]
            names.append(ref[0])
        if share:
            self._generation = (gen + 1) % generations
        return inside, shared, names

    def forget(self, k: int) -> None:
        """Chunk ``k`` was changed in place (not by new writes, which its count would show): the next save writes
        it again instead of referring to a file that holds it as it was."""
        self._known = {key: ref for key, ref in self._known.items() if key[0] != k}

    def remember(self, chunks: list[tuple[int, int]], names: list[str], shared: dict[str, dict[str, Any]]) -> None:
        """After a load: the shared files that hold the chunks as they are now (``names``: the checkpoint's chunk
        file of every chunk, ``shared``: its manifest's shared files), so that the next shared save beside that
        checkpoint writes only what changes — in the other generation, if the loaded one had one."""
        gens = {int(m.group(1)) for n in names if (m := _GENERATION.search(n))}
        gen = gens.pop() if len(gens) == 1 else 0
        for (k, writes), name in zip(chunks, names):
            if name in shared:
                self._known[(k, writes, gen)] = (name, shared[name])
        self._generation = gen + 1


_GENERATION = re.compile(r"-g(\d)-[0-9a-f]{16}\.safetensors$")


def _is_file(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def save_checkpoint(path: str | Path, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any],
                    shared: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write ``{file name: {tensor name: tensor}}`` and ``meta`` (JSON-able) as a checkpoint at ``path``;
    ``shared`` lists files already in the checkpoint's chunk store (:func:`put_chunk`) that it references.

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
        store = chunk_store(path)
        for fname, entry in (shared or {}).items():  # on disk before any manifest names them
            if (store / fname).stat().st_size != entry["size"]:
                raise CheckpointError(f"{store / fname}: shared file has the wrong size")
        manifest = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "versions": versions(), "files": files, "shared": dict(shared or {}), "meta": meta}
        manifest["checksum"] = manifest_checksum(manifest)
        body = (json.dumps(manifest, indent=1, allow_nan=False) + "\n").encode()
        if len(body) > MAX_MANIFEST_BYTES:  # never write a checkpoint the reader would refuse
            raise CheckpointError(f"{path}: its manifest would be {len(body):,} bytes, over the {MAX_MANIFEST_BYTES:,} "
                                  "a reader accepts; keep large data in files of the checkpoint, not in its meta")
        _write_synced(tmp / MANIFEST, body)
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


def _read_verified(fpath: Path, entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Read one safetensors file, check its size and SHA-256 against its manifest entry, then parse it."""
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
        return st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{fpath}: not a valid safetensors file ({one_line(e)})") from None


class CheckpointFiles:
    """Reads the files a verified manifest lists, each checked before it is parsed: ``read(name)``
    for a file inside the checkpoint or a shared one in its chunk store."""

    def __init__(self, path: str | Path) -> None:
        self.path = checkpoint_location(path)
        self.manifest = read_manifest(self.path)

    def read(self, fname: str) -> dict[str, torch.Tensor]:
        """The tensors of one verified file of the checkpoint (size and SHA-256 checked before parsing)."""
        files, shared = self.manifest["files"], self.manifest["shared"]
        if fname in files:
            return _read_verified(self.path / fname, files[fname])
        if fname in shared:
            return _read_verified(chunk_store(self.path) / fname, shared[fname])
        raise CheckpointError(f"{self.path}: the manifest lists no file {fname!r}")


def load_checkpoint(path: str | Path | CheckpointFiles, only: tuple[str, ...] | None = None
                    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Verify and read a checkpoint (a path, or its already opened :class:`CheckpointFiles`):
    ``({file name: {tensor name: tensor}}, meta)``.

    ``only`` limits reading to some files (by name without ``.safetensors``); each one read is
    verified against the manifest's size and SHA-256 before it is parsed. Shared files are read on
    demand through :class:`CheckpointFiles`.
    """
    files = path if isinstance(path, CheckpointFiles) else CheckpointFiles(path)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for fname in files.manifest["files"]:
        name = fname.removesuffix(".safetensors")
        if only is not None and name not in only:
            continue
        out[name] = files.read(fname)
    if only is not None:
        missing = set(only) - set(out)
        if missing:
            raise CheckpointError(f"{files.path}: checkpoint has no {', '.join(sorted(missing))} file")
    return out, files.manifest["meta"]
