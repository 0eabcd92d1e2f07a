import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpgkit.errors import CheckpointError
from ddpgkit.storage.checkpoint import load_checkpoint, read_manifest, save_checkpoint


def sample_tensors():
    g = torch.Generator().manual_seed(0)
    return {"model": {"w": torch.randn(4, 3, generator=g), "b": torch.arange(3.0)},
            "extra": {"step": torch.tensor([7], dtype=torch.int64)}}


def test_round_trip_and_manifest(tmp_path):
    p = save_checkpoint(tmp_path / "c", sample_tensors(), {"note": "hello", "n": 3})
    tensors, meta = load_checkpoint(p)
    assert meta == {"note": "hello", "n": 3}
    for f, group in sample_tensors().items():
        for k, v in group.items():
            assert torch.equal(tensors[f][k], v)
    manifest = read_manifest(p)
    assert set(manifest["files"]) == {"model.safetensors", "extra.safetensors"}
    assert manifest["versions"]["torch"] == torch.__version__
    only, _ = load_checkpoint(p, only=("extra",))
    assert set(only) == {"extra"}


def test_overwrite_replaces_and_leaves_no_temporaries(tmp_path):
    save_checkpoint(tmp_path / "c", sample_tensors(), {"v": 1})
    save_checkpoint(tmp_path / "c", sample_tensors(), {"v": 2})
    assert load_checkpoint(tmp_path / "c")[1] == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_exchange_swaps_two_directories_atomically(tmp_path):
    """The atomic swap the overwrite relies on (Linux renameat2); where the file system lacks it the
    function says so and the fallback below is used."""
    from ddpgkit.storage.checkpoint import exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").write_text("a")
    (tmp_path / "b" / "from_b").write_text("b")
    if not exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this file system has no atomic exchange; the fallback is tested below")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["from_b"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from_a"]
    with pytest.raises(FileNotFoundError):
        exchange(tmp_path / "a", tmp_path / "missing")


CRASH_SCRIPT = """
import os, sys
import torch
from ddpgkit.storage import checkpoint
path, use_exchange = sys.argv[1], sys.argv[2] == "1"
if use_exchange:  # the process dies right after the atomic swap, before the old checkpoint is deleted
    real_exchange = checkpoint.exchange

    def exchange_then_die(a, b):
        if not real_exchange(a, b):
            os._exit(7)  # this file system has no atomic swap
        os._exit(9)

    checkpoint.exchange = exchange_then_die
else:  # a file system without the atomic swap: the process dies right after the first rename of the overwrite
    checkpoint.exchange = lambda a, b: False
    real_replace = os.replace

    def replace_then_die(src, dst):
        real_replace(src, dst)
        os._exit(9)

    os.replace = replace_then_die
checkpoint.save_checkpoint(path, {"model": {"w": torch.full((3,), 2.0)}}, {"v": 2})
"""


@pytest.mark.parametrize("use_exchange", [True, False])
def test_a_crash_while_overwriting_never_leaves_zero_checkpoints(tmp_path, use_exchange):
    """A real process death (os._exit) in the middle of an overwrite — right after the atomic swap, or (without
    one) after the first rename: a complete checkpoint is found at the path afterwards (the new one after the
    swap, else the old one), and the next save completes the replacement and leaves nothing else behind."""
    import subprocess
    import sys

    path = tmp_path / "c"
    save_checkpoint(path, {"model": {"w": torch.full((3,), 1.0)}}, {"v": 1})
    p = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(path), "1" if use_exchange else "0"],
                       capture_output=True, text=True, timeout=120)
    if p.returncode == 7:
        pytest.skip("this file system has no atomic exchange; the fallback case covers it")
    assert p.returncode == 9, p.stderr  # it died where it was made to
    tensors, meta = load_checkpoint(path)  # before the fix: "manifest.json: missing" in the fallback case
    expected = 2.0 if use_exchange else 1.0
    assert meta == {"v": int(expected)} and torch.equal(tensors["model"]["w"], torch.full((3,), expected))
    assert len(list(tmp_path.iterdir())) == 2  # the old checkpoint, swapped out or parked, is still there
    save_checkpoint(path, {"model": {"w": torch.full((3,), 3.0)}}, {"v": 3})
    assert load_checkpoint(path)[1] == {"v": 3}
    assert sorted(q.name for q in tmp_path.iterdir()) == ["c"]


def test_failed_save_keeps_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c", sample_tensors(), {"v": 1})
    with pytest.raises(ValueError):  # meta that JSON cannot hold fails mid-save
        save_checkpoint(tmp_path / "c", sample_tensors(), {"v": float("nan")})
    assert load_checkpoint(tmp_path / "c")[1] == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-9]), "truncated"),
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors: missing"),
        (lambda d: (d / "manifest.json").unlink(), "manifest.json: missing"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "manifest.json").write_text('{"format": "other"}'), "not a ddpgkit checkpoint"),
    ],
)
def test_damaged_checkpoints_are_refused_with_the_file_named(tmp_path, damage, match):
    p = save_checkpoint(tmp_path / "c", sample_tensors(), {})
    damage(p)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(p)


def test_bit_flip_and_edited_manifest(tmp_path):
    p = save_checkpoint(tmp_path / "c", sample_tensors(), {})
    blob = bytearray((p / "model.safetensors").read_bytes())
    blob[len(blob) // 2] ^= 0x10
    (p / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="model.safetensors: checksum mismatch"):
        load_checkpoint(p)
    q = save_checkpoint(tmp_path / "d", sample_tensors(), {})
    m = json.loads((q / "manifest.json").read_text())
    m["meta"]["obs_dim"] = 5  # a hand edit
    (q / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="manifest.json: checksum mismatch"):
        load_checkpoint(q)
    # even with a recomputed checksum, a path outside the directory is refused
    from ddpgkit.storage.manifest import manifest_checksum

    m["files"]["../../etc/passwd.safetensors"] = m["files"].pop("model.safetensors")
    m["checksum"] = manifest_checksum(m)
    (q / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="bad file name"):
        load_checkpoint(q)
    m["version"] = 99
    (q / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="version 99 is not supported"):
        load_checkpoint(q)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_is_refused_never_loaded(tmp_path, data):
    p = save_checkpoint(tmp_path / "c", sample_tensors(), {"k": 1})
    name = data.draw(st.sampled_from(["model.safetensors", "extra.safetensors", "manifest.json"]))
    f = p / name
    blob = bytearray(f.read_bytes())
    how = data.draw(st.sampled_from(["truncate", "flip", "append"]))
    if how == "truncate":
        blob = blob[: data.draw(st.integers(0, 999_999)) * len(blob) // 1_000_000]
    elif how == "flip":
        i = data.draw(st.integers(0, 999_999)) * len(blob) // 1_000_000
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        blob += data.draw(st.binary(min_size=1, max_size=20))
    f.write_bytes(bytes(blob))
    try:
        tensors, meta = load_checkpoint(p)
    except CheckpointError:
        return
    # only a change JSON cannot see (whitespace in the manifest) may load, and then loads the truth
    assert name == "manifest.json"
    assert meta == {"k": 1} and torch.equal(tensors["model"]["w"], sample_tensors()["model"]["w"])


def test_files_get_ordinary_permissions(tmp_path):
    import os

    from ddpgkit.storage.atomic import atomic_write_text

    mask = os.umask(0o022)
    try:
        p = save_checkpoint(tmp_path / "c", sample_tensors(), {})
        t = atomic_write_text(tmp_path / "t.txt", "x")
        assert oct(p.stat().st_mode & 0o777) == oct(0o755)
        assert oct((p / "model.safetensors").stat().st_mode & 0o777) == oct(0o644)
        assert oct(t.stat().st_mode & 0o777) == oct(0o644)
    finally:
        os.umask(mask)


def test_shared_chunks_are_named_by_content_written_once_and_verified(tmp_path):
    from ddpgkit.storage.checkpoint import CheckpointFiles, put_chunk
    from ddpgkit.storage.manifest import chunk_store, manifest_checksum

    store = chunk_store(tmp_path / "c")
    assert store == tmp_path / ".chunks"
    rows = {"rows": torch.arange(12.0).reshape(3, 4)}
    name, entry = put_chunk(store, "buffer-00000-w3", rows)
    assert name.startswith("buffer-00000-w3-") and entry["size"] == (store / name).stat().st_size
    import hashlib

    assert entry["sha256"] == hashlib.sha256((store / name).read_bytes()).hexdigest()
    mtime = (store / name).stat().st_mtime_ns
    assert put_chunk(store, "buffer-00000-w3", rows) == (name, entry)  # the same contents: not written again
    assert (store / name).stat().st_mtime_ns == mtime
    other, _ = put_chunk(store, "buffer-00000-w3", {"rows": rows["rows"] + 1})
    assert other != name  # other contents, another file
    p = save_checkpoint(tmp_path / "c", sample_tensors(), {"k": 1}, shared={name: entry})
    files = CheckpointFiles(p)
    assert files.manifest["shared"] == {name: entry}
    assert torch.equal(files.read(name)["rows"], rows["rows"])
    with pytest.raises(CheckpointError, match="lists no file"):
        files.read(other)  # in the store, but not this checkpoint's
    blob = bytearray((store / name).read_bytes())
    blob[-1] ^= 1
    (store / name).write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=f"{name}: checksum mismatch"):
        files.read(name)
    # a manifest may not point outside the store, even with a recomputed checksum
    m = json.loads((p / "manifest.json").read_text())
    m["shared"] = {"../c/model.safetensors": m["files"]["model.safetensors"]}
    m["checksum"] = manifest_checksum(m)
    (p / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="bad file name"):
        read_manifest(p)


def test_a_shared_file_must_be_in_the_store_before_a_manifest_names_it(tmp_path):
    with pytest.raises(FileNotFoundError):
        save_checkpoint(tmp_path / "c", sample_tensors(), {}, shared={"x-0.safetensors": {"size": 1, "sha256": ""}})
    assert not (tmp_path / "c").exists()
