"""Checkpoints whose cost follows what changed: the replay buffer in chunks, shared between the
checkpoints of a run directory, written only when their contents change, verified when read."""

import hashlib

import torch

from ddpgkit import DDPG, DDPGConfig, prepare_experiment
from ddpgkit.experiments.run import load_latest
from ddpgkit.storage.manifest import read_manifest
from ddpgkit.storage.rundir import list_checkpoints

# Pendulum's episodes are 200 steps, so every checkpoint (every 200 steps) is at an episode end;
# a 1000-row buffer in chunks of 256 rows: chunks 0-2 of 256 rows and chunk 3 of 232
CONFIG = DDPGConfig(total_steps=1400, learning_starts=100, hidden=(16, 16), batch_size=16, buffer_size=1000,
                    eval_interval=0, eval_episodes=1, checkpoint_interval=200, keep_checkpoints=3, seed=2)
CHUNK_ROWS = 256


def train(run, steps=1400, resume=False):
    exp = prepare_experiment("Pendulum-v1", CONFIG.replace(total_steps=steps), run, resume=resume)
    if not resume:
        exp.agents[0].buffer.chunk_rows = CHUNK_ROWS  # small chunks, so that a small buffer has several
    return exp.run()[0]


def chunk_of(row):
    return row // CHUNK_ROWS


def test_a_checkpoint_writes_only_the_chunks_written_since_and_shares_the_rest(tmp_path):
    run = tmp_path / "run"
    train(run)
    kept = list_checkpoints(run)
    assert [p.name for p in kept] == ["1400", "1200", "1000"]
    names = {int(p.name): read_manifest(p)["meta"]["training"]["buffer"]["chunk_files"] for p in kept}
    assert all(len(v) == 4 for v in names.values())
    # consecutive checkpoints alternate between two generations of files (ChunkFiles): 1400 and 1000 share
    # theirs, 1200 shares none with either (a damaged file cannot take every kept checkpoint down)
    assert not set(names[1200]) & (set(names[1400]) | set(names[1000]))
    # steps 1000..1399 wrote rows 0..399 (1000-row buffer): chunks 0 and 1 changed, 2 and 3 did not
    changed = {chunk_of(t % 1000) for t in range(1000, 1400)}
    assert changed == {0, 1}
    for k in range(4):
        assert (names[1400][k] == names[1000][k]) == (k not in changed)
    # the shared files are exactly those the kept checkpoints reference: older ones were collected
    store = run / "checkpoints" / ".chunks"
    referenced = set().union(*(read_manifest(p)["shared"] for p in kept))
    assert {f.name for f in store.iterdir()} == referenced
    # an unchanged chunk was not written again: its file is older than the checkpoint at 1000
    unchanged = store / names[1400][3]
    assert unchanged.stat().st_mtime_ns <= (kept[2] / "manifest.json").stat().st_mtime_ns
    # and what each checkpoint references restores its buffer: the rows of the latest equal the agent's
    [agent], [path], skipped = load_latest(run)
    assert path == kept[0] and not skipped and agent.buffer.chunk_rows == CHUNK_ROWS
    assert agent.buffer.added == 1400 and agent.buffer.chunks()[0] == (0, 2 * 256)  # laps 0 and 1


def test_resume_from_chunks_is_exact_and_keeps_sharing(tmp_path):
    whole = train(tmp_path / "whole")
    part = tmp_path / "part"
    train(part, steps=800)
    resumed = train(part, steps=1400, resume=True)
    a, b = whole.agent.model_tensors(), resumed.agent.model_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(whole.agent.buffer.data, resumed.agent.buffer.data)
    # the resumed process knew the chunks already on disk: the checkpoints agree on the unchanged ones
    kept = list_checkpoints(part)
    files = [read_manifest(p)["meta"]["training"]["buffer"]["chunk_files"] for p in kept]
    assert files == [read_manifest(p)["meta"]["training"]["buffer"]["chunk_files"] for p in list_checkpoints(
        tmp_path / "whole")]


def test_a_damaged_or_missing_chunk_is_named_and_an_older_checkpoint_is_used(tmp_path):
    run = tmp_path / "run"
    train(run)
    latest, older = list_checkpoints(run)[:2]
    own = read_manifest(latest)["shared"].keys() - read_manifest(older)["shared"].keys()
    victim = run / "checkpoints" / ".chunks" / sorted(own)[0]
    blob = bytearray(victim.read_bytes())
    blob[-1] ^= 0x01
    victim.write_bytes(bytes(blob))
    [agent], [path], skipped = load_latest(run)
    assert path == older and len(skipped) == 1
    assert victim.name in skipped[0] and "checksum mismatch" in skipped[0]
    victim.unlink()
    [agent], [path], skipped = load_latest(run)
    assert path == older and victim.name in skipped[0] and "missing" in skipped[0]
    # the model alone (eval) needs no chunk
    assert DDPG.load(latest, training_state=False).num_timesteps == 1400  # the checkpoint's step, as in SB3


def test_a_damaged_chunk_shared_by_kept_checkpoints_leaves_one_that_loads(tmp_path):
    """Once the buffer is full, a chunk no transition reaches for a while is in every kept checkpoint: with
    one set of files, damage to it invalidated them all. The other generation's copy keeps one loadable, and
    the run resumes from it exactly."""
    run = tmp_path / "run"
    whole = train(run)
    kept = list_checkpoints(run)
    names = {int(p.name): read_manifest(p)["meta"]["training"]["buffer"]["chunk_files"] for p in kept}
    shared = set(names[1400]) & set(names[1000])  # chunks 2 and 3: not written since step 1000
    victim = run / "checkpoints" / ".chunks" / sorted(shared)[0]
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    victim.write_bytes(bytes(blob))
    [agent], [path], skipped = load_latest(run)
    assert path.name == "1200" and len(skipped) == 1 and victim.name in skipped[0]
    (run / "summary.json").unlink()  # as if it stopped before its end: resume skips the damaged ones
    resumed = train(run, steps=1400, resume=True)
    a, b = whole.agent.model_tensors(), resumed.agent.model_tensors()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the resumed run's checkpoint (of the damaged file's generation) wrote that chunk whole again instead of
    # referencing the damaged file by its name and size: it loads, and so do the older ones of its generation
    assert hashlib.sha256(victim.read_bytes()).hexdigest()[:16] == victim.stem.rsplit("-", 1)[1]
    [agent], [path], skipped = load_latest(run)
    assert path.name == "1400" and not skipped
    for p in list_checkpoints(run):
        DDPG.load(p)


def test_a_checkpoint_saved_alone_holds_its_own_chunks(tmp_path):
    agent = DDPG("Pendulum-v1", CONFIG.replace(total_steps=700))
    agent.buffer.chunk_rows = CHUNK_ROWS
    agent.learn(700)
    path = agent.save(tmp_path / "alone", training_state=True)
    assert not (tmp_path / ".chunks").exists()
    manifest = read_manifest(path)
    assert manifest["shared"] == {} and {f"buffer_{k:05d}.safetensors" for k in range(3)} <= set(manifest["files"])
    loaded = DDPG.load(path)
    assert torch.equal(loaded.buffer.data, agent.buffer.data) and loaded.buffer.chunks() == agent.buffer.chunks()
