"""The checkpoint format (storage/schema.py): every saved key is on its page, nothing on it is missing, and
checkpoints of format 1 (tests/fixtures/checkpoints-v1, written before issue 22) load through the one
upgrade, losslessly, and resume exactly."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddpgkit import DDPG, DDPGConfig, resume_experiment, run_experiment
from ddpgkit.errors import CheckpointError
from ddpgkit.storage.manifest import VERSION, read_manifest
from ddpgkit.storage.schema import CHUNK, HISTORY_CHUNK, META, MODEL, TRAINING, check_meta, key_pattern, upgrade
from ddpgkit.training.state import history_rows

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints-v1"
TINY = DDPGConfig(hidden=(16, 16), batch_size=32, learning_starts=100, total_steps=400, checkpoint_interval=200,
                  eval_interval=200, eval_episodes=2, buffer_size=1000)


def _match(keys, table, where):
    """Every key matches one entry of ``table``; returns the entries matched."""
    patterns = [(k, key_pattern(k.name)) for k in table]
    used = set()
    for name in keys:
        hits = [k for k, p in patterns if p.match(name)]
        assert len(hits) == 1, f"{where}: {name} matches {len(hits)} entries of the format's page"
        used.add(hits[0].name)
    return used


def _dtype(t):
    return str(t.dtype).removeprefix("torch.")


@pytest.mark.parametrize("kind", ["ou, action at the critic's second layer, TD3", "a member of a group"])
def test_every_key_a_checkpoint_holds_is_on_the_formats_page_and_nothing_it_lists_is_missing(tmp_path, kind):
    if kind.startswith("ou"):
        cfg = TINY.replace(noise="ou", critic_action_layer=1, n_critics=2, target_noise=0.2, n_step=3, obs_norm=True)
        [result] = run_experiment("Pendulum-v1", cfg, tmp_path / "r")
        results = [result]
    else:
        results = run_experiment("Pendulum-v1", TINY, [tmp_path / "a", tmp_path / "b"], seeds=[0, 1])
    ckpt = results[0].checkpoint
    manifest = read_manifest(ckpt)
    assert manifest["version"] == VERSION
    check_meta(manifest["meta"], str(ckpt))
    model, training = load_file(ckpt / "model.safetensors"), load_file(ckpt / "training.safetensors")
    used = _match(model, MODEL, "model") | _match(training, TRAINING, "training")
    for table, tensors in ((MODEL, model), (TRAINING, training)):
        for key in table:
            hits = [t for n, t in tensors.items() if key_pattern(key.name).match(n)]
            assert all(_dtype(t) == key.dtype for t in hits), key.name
    optional = {f"{net}.obs_net.linear{{i}}.{p}" for net in ("critic", "critic_target", "critic2", "critic2_target")
                for p in ("weight", "bias")}
    optional |= {f"{net}.net.linear{{i}}.{p}" for net in ("critic2", "critic2_target") for p in ("weight", "bias")}
    optional |= {"noise.x", "learner.target_noise_generator", "obs_norm.count", "obs_norm.mean", "obs_norm.m2"}
    needed = {k.name for k in (*MODEL, *TRAINING)} - (optional if kind.startswith("a member") else set())
    assert needed <= used, f"listed but not saved: {sorted(needed - used)}"
    chunk = manifest["meta"]["training"]["buffer"]["chunk_files"][0]
    rows = load_file(ckpt.parent / ".chunks" / chunk)
    assert set(rows) == {CHUNK.name} and rows["rows"].dtype == torch.float32
    chunk = manifest["meta"]["training"]["history"]["chunk_files"][0]
    rows = load_file(ckpt.parent / ".chunks" / chunk)
    assert set(rows) == {HISTORY_CHUNK.name} and rows["rows"].dtype == torch.float64
    best = read_manifest(results[0].run_dir / "checkpoints" / "best")  # model only
    check_meta(best["meta"], "best")
    assert "training" not in best["meta"] and set(best["files"]) == {"model.safetensors"}
    assert {k.name.split(".")[0] for k in META} == {"algorithm", "env_id", "config", "obs_dim", "act_dim", "action_low",
                                                    "action_high", "num_updates", "step", "training", "observation"}


def test_check_meta_refuses_what_the_page_does_not_list_and_misses_what_it_does(tmp_path):
    [result] = run_experiment("Pendulum-v1", TINY, tmp_path / "r")
    meta = read_manifest(result.checkpoint)["meta"]
    check_meta(meta, "ok")
    for path, value in ((("bogus",), 1), (("training", "version"), 1), (("training", "buffer", "extra"), 0),
                        (("training", "trainer", "spare"), None)):
        edited = json.loads(json.dumps(meta))
        node = edited
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(CheckpointError, match="is not a key of checkpoint format"):
            check_meta(edited, "edited")
    edited = json.loads(json.dumps(meta))
    del edited["training"]["learner"]["critic_optimizer"]
    with pytest.raises(CheckpointError, match="meta.training.learner.critic_optimizer is missing"):
        check_meta(edited, "edited")
    with pytest.raises(CheckpointError, match="version 7 is not supported"):
        upgrade(7, meta, {})


V1_NAMES = {"trainer.health": "learner.health"}


def _v2_name(v1):
    if v1.startswith(("actor_optimizer.", "critic_optimizer.")):
        return "learner." + v1
    return V1_NAMES.get(v1, v1)


@pytest.mark.parametrize("run", ["single", "group-s0", "group-s1"])
@pytest.mark.parametrize("step", [200, 400])
def test_a_format_1_checkpoint_loads_losslessly(tmp_path, run, step):
    """Load a checkpoint written before issue 22, save it again: every tensor and value it held is in the new
    checkpoint under its new name, bit for bit; what version 2 adds is what version 1 restored."""
    old = FIXTURES / run / "checkpoints" / str(step)
    assert read_manifest(old)["version"] == 1
    again = DDPG.load(old).save(tmp_path / "again", training_state=True)
    assert read_manifest(again)["version"] == VERSION
    old_model, new_model = load_file(old / "model.safetensors"), load_file(again / "model.safetensors")
    assert old_model.keys() == new_model.keys() and all(torch.equal(old_model[k], new_model[k]) for k in old_model)
    old_training, new_training = load_file(old / "training.safetensors"), load_file(again / "training.safetensors")
    assert {_v2_name(k) for k in old_training} | {"learner.last_actor_loss"} == set(new_training)
    for k, t in old_training.items():
        assert torch.equal(t, new_training[_v2_name(k)]), k
    assert float(new_training["learner.last_actor_loss"]) == 0.0
    old_meta, new_meta = read_manifest(old)["meta"], read_manifest(again)["meta"]
    old_t, new_t = old_meta.pop("training"), new_meta.pop("training")
    added = {k: new_meta["config"].pop(k) for k in set(new_meta["config"]) - set(old_meta["config"])}
    assert added == {"n_critics": 1, "target_noise": 0.0, "target_noise_clip": 0.5, "n_step": 1,  # DDPG's: issue 24
                     "obs_norm": False, "obs_clip": 5.0, "her": "none", "her_k": 4, "action_l2": 0.0,
                     "random_action_prob": 0.0}  # and issue 25's
    assert new_meta.pop("observation") == new_meta["obs_dim"]  # format 3: a flat Box
    assert old_meta == new_meta
    assert old_t.pop("version") == 1
    assert {k: old_t.pop(k) for k in ("actor_optimizer", "critic_optimizer")} == new_t.pop("learner")
    old_chunks, new_chunks = old_t["buffer"].pop("chunk_files"), new_t["buffer"].pop("chunk_files")
    history, where = old_t["trainer"].pop("history"), new_t.pop("history")  # out of the manifest, into chunk files
    assert where["rows"] == len(history) > 0
    new_columns = dict.fromkeys(set(where["columns"]) - {k for r in history for k in r})  # issue 25's success rates
    assert history_rows(where["columns"], [load_file(again / f)["rows"] for f in where["chunk_files"]]) == \
        [{**new_columns, **r} for r in history]
    assert old_t == new_t
    for a, b in zip(old_chunks, new_chunks, strict=True):  # the rows: shared files then, inside the copy now
        assert torch.equal(load_file(old.parent / ".chunks" / a)["rows"], load_file(again / b)["rows"])


def _fingerprint(agent):
    h = hashlib.sha256()
    for name, t in sorted(agent.model_tensors().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _resume_fixtures(root):
    shutil.copytree(FIXTURES, root)
    [single] = resume_experiment(root / "single", total_steps=600).run()
    group = resume_experiment([root / "group-s0", root / "group-s1"], total_steps=600).run()
    return [single, *group]


def _machine():
    vendor = next((line.split(":")[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("vendor_id")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    return f"{vendor} {torch.backends.cpu.get_cpu_capability()}"


@pytest.fixture(scope="module")
def resumed_fixtures(tmp_path_factory):
    return _resume_fixtures(tmp_path_factory.mktemp("v1") / "runs")


def test_format_1_runs_resume_as_their_upgraded_checkpoints_do(resumed_fixtures, tmp_path):
    """Machine-independent: the format-1 run directories, resumed to 600 steps, train exactly what the same
    checkpoints upgraded and saved as version 2 train."""
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES, root)
    for run in ("single", "group-s0", "group-s1"):
        ckpt = root / run / "checkpoints" / "400"
        agent = DDPG.load(ckpt)
        shutil.rmtree(ckpt)
        agent.save(ckpt, training_state=True, share_buffer=True)
        assert read_manifest(ckpt)["version"] == VERSION
    [single] = resume_experiment(root / "single", total_steps=600).run()
    group = resume_experiment([root / "group-s0", root / "group-s1"], total_steps=600).run()
    for a, b in zip(resumed_fixtures, [single, *group]):
        assert _fingerprint(a.agent) == _fingerprint(b.agent)
        assert a.summary["final_eval_mean"] == b.summary["final_eval_mean"]
        assert a.summary["resumed"] and a.summary["steps"] == 600


def test_format_1_runs_resume_bit_identically_to_the_code_that_wrote_them(resumed_fixtures):
    """What d91091f computed from these checkpoints (expected.json, per kind of CPU: float products round
    differently on others), computed again today."""
    expected = json.loads((FIXTURES / "expected.json").read_text()).get(_machine())
    if expected is None:
        pytest.skip(f"expected.json has no numbers of this kind of CPU ({_machine()}); the machine-independent "
                    "tests above still ran")
    single, *group = resumed_fixtures
    for got, want in zip([single, *group], [expected["single"], *expected["group"]]):
        assert _fingerprint(got.agent) == want["fingerprint"]
        assert got.summary["final_eval_mean"] == want["final_eval_mean"]


def _rewrite(ckpt, fname, tensors):
    """Replace one file of a checkpoint and make its manifest say so (as a writer of that file would)."""
    from safetensors.torch import save

    from ddpgkit.storage.manifest import manifest_checksum

    blob = save(tensors)
    (ckpt / fname).write_bytes(blob)
    m = json.loads((ckpt / "manifest.json").read_text())
    m["files"][fname] = {"size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    m["checksum"] = manifest_checksum(m)
    (ckpt / "manifest.json").write_text(json.dumps(m))


def test_a_format_1_checkpoint_of_a_cuda_run_loads_and_resumes_on_the_cpu(tmp_path):
    """Format 1 saved a CUDA buffer's CUDA generator (16 bytes: its seed and offset), which no CPU run could
    restore: every checkpoint of a run moved off its GPU was 'inconsistent'. Simulated on the CPU by giving a
    format-1 fixture the state a CUDA buffer writes; the upgrade seeds a CPU generator from it."""
    run = tmp_path / "single"
    shutil.copytree(FIXTURES / "single", run)
    ckpt = run / "checkpoints" / "400"
    training = load_file(ckpt / "training.safetensors")
    cuda_state = torch.tensor(list((2026).to_bytes(8, "little") + (4096).to_bytes(8, "little")), dtype=torch.uint8)
    training["buffer.generator"] = cuda_state
    _rewrite(ckpt, "training.safetensors", training)
    agent = DDPG.load(ckpt)
    assert agent.buffer.generator.get_state().shape == torch.Generator().get_state().shape
    [result] = resume_experiment(run, total_steps=600).run()
    assert result.summary["steps"] == 600 and result.summary["resumed"]
    again = DDPG.load(ckpt)  # the same state upgraded the same way: the same draws
    assert torch.equal(again.buffer.sample_rows(8), DDPG.load(ckpt).buffer.sample_rows(8))


def test_the_replay_buffer_samples_with_a_cpu_generator_whatever_its_device():
    from ddpgkit.data.buffer import ReplayBuffer

    buf = ReplayBuffer(10, 3, 1, seed=4)
    assert buf.generator.device.type == "cpu"
    assert buf.state_dict()[0]["generator"].numel() == torch.Generator().get_state().numel()



def test_a_buffer_on_another_device_draws_what_a_cpu_buffer_draws_and_saves_a_state_the_cpu_restores():
    """A simulated device: 'meta' tensors have shapes and no data, and torch has no generator for them — as a
    CUDA buffer's generator was, the old per-device generator cannot be made there at all. The draws and the
    saved sampling state are the CPU's whatever the buffer's device."""
    import numpy as np

    from ddpgkit.data.buffer import ReplayBuffer

    bufs = [ReplayBuffer(50, 3, 1, device=d, seed=s) for d, s in (("meta", 4), ("cpu", 4), ("cpu", 0))]
    for buf in bufs:
        for i in range(20):
            buf.add(np.full(3, i, np.float32), np.zeros(1, np.float32), float(i), np.zeros(3, np.float32), False, False)
    meta, cpu, restored = bufs
    assert meta.sample_rows(8).device.type == "meta"
    cpu.sample_rows(8)  # the same draw on each: the two generators move in step
    assert torch.equal(meta.generator.get_state(), cpu.generator.get_state())
    restored.generator.set_state(meta.generator.get_state())  # what a checkpoint of the other device holds
    assert torch.equal(restored.sample_rows(8), cpu.sample_rows(8))
