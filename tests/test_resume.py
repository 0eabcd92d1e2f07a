"""Exact resume: checkpoints hold the whole training state; a killed run continues bit-identically."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpgkit import DDPG, Callback, DDPGConfig
from ddpgkit.errors import CheckpointError
from ddpgkit.experiments.run import load_latest
from ddpgkit.storage.manifest import read_manifest
from ddpgkit.storage.rundir import list_checkpoints, prune_checkpoints, read_metrics
from ddpgkit.training.callbacks import Checkpointer

from tests.clihelp import assert_one_line_error, run_cli, run_subprocess

SMALL = dict(hidden=(32, 32), total_steps=1200, learning_starts=100, batch_size=32, buffer_size=5000,
             eval_interval=400, eval_episodes=2, checkpoint_interval=300, keep_checkpoints=2)
CLI_FAST = ["Pendulum-v1", "--steps", "1400", "--learning-starts", "100", "--batch-size", "32", "--hidden", "32,32",
            "--buffer-size", "5000", "--eval-interval", "400", "--eval-episodes", "2", "--checkpoint-interval", "200",
            "--noise", "ou", "--seed", "5"]
TIMING = ("steps_per_s", "wall_s")


def model(agent):
    return agent.model_tensors()


def identical(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def numbers(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def crash_and_resume(run_dir, cfg, seed=2, crash_at=750, env="Pendulum-v1", kept=("600", "400")):
    """An uninterrupted run of ``cfg``, and the same run crashed at step ``crash_at`` (with ``SMALL``'s
    intervals: mid-episode, after the checkpoints ``kept``: Pendulum's at steps 400 and 600) and resumed from
    ``run_dir``'s newest checkpoint; returns (the uninterrupted agent, the resumed one before it trains on)."""
    full = DDPG(env, cfg, seed=seed).learn()
    interrupted = DDPG(env, cfg, seed=seed)

    class Crash(Exception):
        pass

    class CrashAt(Callback):
        def on_step(self, trainer):
            if trainer.step == crash_at:
                raise Crash

    with pytest.raises(Crash):
        interrupted.learn(callback=[Checkpointer(run_dir, cfg.checkpoint_interval, cfg.keep_checkpoints), CrashAt()])
    assert [p.name for p in list_checkpoints(run_dir)] == list(kept)  # due at 300 and 600, taken at episode ends
    [resumed], [path], skipped = load_latest(run_dir)
    assert path.name == kept[0] and not skipped and resumed.trainer.step == int(kept[0])
    return full, resumed


def test_checkpoint_resume_is_bit_identical(tmp_path):
    full, resumed = crash_and_resume(tmp_path, DDPGConfig(**SMALL, noise="ou"))
    resumed.learn()
    assert identical(model(full), model(resumed))
    assert numbers(full.trainer.history) == numbers(resumed.trainer.history)
    assert resumed.learner.num_updates == full.learner.num_updates
    for a, b in zip(full.learner.actor_optimizer.state.values(), resumed.learner.actor_optimizer.state.values()):
        assert torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_mid_episode_checkpoint_continues_with_a_fresh_episode(tmp_path):
    cfg = DDPGConfig(**SMALL)
    agent = DDPG("Pendulum-v1", cfg).learn(250)  # Pendulum episodes are 200 steps: 50 steps into the second
    assert not agent.trainer.at_episode_boundary
    agent.save(tmp_path / "c", training_state=True)
    loaded = DDPG.load(tmp_path / "c")
    assert loaded.trainer.step == 250 and loaded.trainer.at_episode_boundary
    loaded.learn(200)  # 200 more steps: to 450
    assert loaded.trainer.step == 450 and loaded.trainer.episodes == 2  # 200 + (250 -> 450: one new episode)


def test_non_finite_env_keeps_the_last_good_checkpoint(tmp_path):
    from ddpgkit.envs.make import make_env
    from ddpgkit.errors import NonFiniteError

    env = make_env("ddpgkit/NonFinite-v0", bad_step=350)  # 200-step episodes: a checkpoint at 200 comes first
    agent = DDPG(env, DDPGConfig(**{**SMALL, "checkpoint_interval": 100}))
    with pytest.raises(NonFiniteError, match="step 349"):
        agent.learn(callback=Checkpointer(tmp_path, 100, 2))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["200"]
    good = DDPG.load(tmp_path / "checkpoints" / "200", env=make_env("ddpgkit/NonFinite-v0", bad_step=10**9))
    assert good.trainer.step == 200 and all(torch.isfinite(t).all() for t in good.model_tensors().values())


def test_prune_keeps_newest_valid(tmp_path):
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL))
    for step in (100, 200, 300, 400):
        agent.save(tmp_path / "checkpoints" / str(step))
    (tmp_path / "checkpoints" / "500").mkdir()  # a newer, invalid one (no manifest)
    (tmp_path / "checkpoints" / ".400.abc.tmp").mkdir()  # a temporary of a killed save
    prune_checkpoints(tmp_path, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["300", "400", "500"]


def test_prune_keeps_the_step_the_group_committed(tmp_path):
    import json

    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL))
    for step in (100, 200, 300):
        agent.save(tmp_path / "checkpoints" / str(step))
    (tmp_path / "checkpoints" / "committed.json").write_text(json.dumps({"step": 100, "runs": [tmp_path.name]}))
    prune_checkpoints(tmp_path, keep=1)  # 300 is the newest; 100 is what every run of the group has
    assert sorted(p.name for p in list_checkpoints(tmp_path)) == ["100", "300"]


def test_load_latest_skips_a_corrupt_newest(tmp_path):
    agent = DDPG("Pendulum-v1", DDPGConfig(**SMALL)).learn(300)
    agent.save(tmp_path / "checkpoints" / "200", training_state=True)
    agent.save(tmp_path / "checkpoints" / "300", training_state=True)
    f = tmp_path / "checkpoints" / "300" / "training.safetensors"
    f.write_bytes(f.read_bytes()[:-1])
    [loaded], [path], skipped = load_latest(tmp_path)
    assert path.name == "200" and len(skipped) == 1 and "training.safetensors" in skipped[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_agent_checkpoint_is_refused(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("ck")
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(8,), total_steps=300, learning_starts=50, batch_size=8,
                                           buffer_size=400, eval_episodes=1))
    agent.learn(60)
    p = agent.save(d / "c", training_state=True)
    name = data.draw(st.sampled_from(["model.safetensors", "training.safetensors", "manifest.json"]))
    blob = bytearray((p / name).read_bytes())
    i = data.draw(st.integers(0, 999_999)) * len(blob) // 1_000_000  # sizes vary: draw a position
    if data.draw(st.booleans()):
        blob = blob[:i]
    else:
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    (p / name).write_bytes(bytes(blob))
    try:
        loaded = DDPG.load(p)
    except CheckpointError:
        return
    # only a change invisible to the manifest's canonical JSON (whitespace) may load: then it is the truth
    assert name == "manifest.json" and identical(model(agent), model(loaded))


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, at_least: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [int(p.name) for p in list_checkpoints(run) if (p / "manifest.json").exists()]
        if steps and max(steps) >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before a checkpoint at {at_least}: {proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint in time")


def _popen(*args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("ddpgkit")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    r = run_subprocess("train", *CLI_FAST, "--out", run)
    assert r.code == 0, r.err
    return run


def _final(run: Path):
    summary = json.loads((run / "summary.json").read_text())
    return DDPG.load(run / summary["checkpoint"]), summary


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = _popen("train", *CLI_FAST, "--out", str(run))
    _wait_for_checkpoint(run, proc, 600)
    time.sleep(0.05)  # somewhere after it: mid-episode, perhaps mid-save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    r = run_subprocess("train", *CLI_FAST, "--out", run, "--resume")
    assert r.code == 0, r.err
    assert "resuming:" in r.out
    ours, summary = _final(run)
    ref, ref_summary = _final(uninterrupted)
    assert identical(model(ours), model(ref))  # bit-identical weights, targets too
    assert numbers(read_metrics(run)) == numbers(read_metrics(uninterrupted))
    assert summary["final_eval_mean"] == ref_summary["final_eval_mean"]


def test_sigint_saves_and_resume_command_continues(tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = _popen("train", *CLI_FAST, "--out", str(run))
    _wait_for_checkpoint(run, proc, 400)
    proc.send_signal(signal.SIGINT)
    out, errtext = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT
    lines = [line for line in errtext.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stopped: SIGINT at step") and "ddpgkit resume" in lines[0]
    assert "Traceback" not in errtext
    r = run_subprocess("resume", run)
    assert r.code == 0, r.err
    ours, _ = _final(run)
    ref, _ = _final(uninterrupted)
    assert identical(model(ours), model(ref))


def test_sigterm_saves_too(tmp_path):
    run = tmp_path / "run"
    proc = _popen("train", *CLI_FAST, "--out", str(run))
    _wait_for_checkpoint(run, proc, 200)
    proc.send_signal(signal.SIGTERM)
    _, errtext = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "stopped: SIGTERM" in errtext


def test_resume_extends_a_finished_run(uninterrupted, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    assert_one_line_error(run_cli(capsys, "resume", run), "already has 1,400 steps")
    r = run_cli(capsys, "resume", run, "--steps", "1600")
    assert r.code == 0, r.err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 1600 and summary["resumed"] is True


def test_resume_errors(tmp_path, capsys, uninterrupted):
    assert_one_line_error(run_cli(capsys, "resume", tmp_path / "none"), "no such run directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli(capsys, "resume", empty), "no checkpoints")
    r = run_cli(capsys, "train", *CLI_FAST, "--gamma", "0.9", "--out", uninterrupted, "--resume")
    assert_one_line_error(r, "resume continues the run's own config, but gamma differs")
    assert_one_line_error(run_cli(capsys, "train", *CLI_FAST, "--out", tmp_path / "x", "--resume", "--overwrite"),
                          "exclude each other")


def test_full_disk_during_checkpoint_keeps_the_last_good_one(tmp_path):
    """A real write failure from the OS: the file-size limit makes writes beyond it fail (EFBIG)."""
    run = tmp_path / "run"
    args = [*CLI_FAST, "--out", str(run), "--steps", "600"]
    assert run_subprocess("train", *args).code == 0
    good = list_checkpoints(run)[0]
    chunks = run / "checkpoints" / ".chunks"  # the buffer's chunk files, shared by the checkpoints

    def contents():  # the checkpoint's own files and the chunks its manifest references
        return {p.name: p.read_bytes() for p in [*good.iterdir(), *(chunks / n for n in read_manifest(good)["shared"])]}

    before = contents()
    # the next checkpoint's training state and buffer chunk will not fit
    limit = max((chunks / n).stat().st_size for n in read_manifest(good)["shared"]) + 1

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    exe = Path(sys.executable).with_name("ddpgkit")
    p = subprocess.run([str(exe), "resume", str(run), "--steps", "1400"], capture_output=True, text=True,
                       preexec_fn=limit_file_size, timeout=300)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "File too large" in lines[0] and "Traceback" not in p.stderr
    assert contents() == before  # untouched
    assert not [q for q in (run / "checkpoints").iterdir() if q.name.startswith(".") and q != chunks]
    assert not [q for q in chunks.iterdir() if q.name.endswith(".tmp")]  # no temporaries left
    [resumed], [path], _ = load_latest(run)
    assert path == good


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_unwritable_run_dir(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert_one_line_error(run_cli(capsys, "train", *CLI_FAST, "--out", ro / "run"), "ermission")


_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=4),
                               st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False)),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)


def _same(a, b) -> bool:
    """JSON values equal, with numbers compared by value (a config coerces 1 to 1.0) but a bool
    never equal to a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def saved_agent(tmp_path_factory):
    """An agent saved at an episode end (200 steps of Pendulum), with its training state."""
    d = tmp_path_factory.mktemp("edit-src")
    agent = DDPG("Pendulum-v1", DDPGConfig(hidden=(8,), total_steps=300, learning_starts=50, batch_size=8,
                                           buffer_size=400, eval_episodes=1, eval_interval=100))
    agent.learn(200)
    return agent, agent.save(d / "c", training_state=True)


def test_an_unedited_checkpoint_reloads_to_the_same_metadata(saved_agent, tmp_path):
    from ddpgkit.storage.checkpoint import read_manifest

    agent, p = saved_agent
    again = DDPG.load(p).save(tmp_path / "again", training_state=True)
    assert _same(read_manifest(again)["meta"], read_manifest(p)["meta"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_edited_metadata_with_a_recomputed_checksum_loads_exactly_or_fails_cleanly(saved_agent, tmp_path_factory,
                                                                                     data):
    """Someone edits the manifest and recomputes its checksum. Loading either fails with one clear
    DDPGKitError, or gives an agent that is what the file says: the saved weights, and saving it again
    writes back exactly the (edited) metadata — nothing coerced, dropped or half-loaded."""
    import shutil

    from ddpgkit.errors import DDPGKitError
    from ddpgkit.storage.manifest import manifest_checksum, read_manifest

    agent, src = saved_agent
    d = tmp_path_factory.mktemp("edit")
    p = d / "c"
    shutil.copytree(src, p)
    m = json.loads((p / "manifest.json").read_text())
    meta = m["meta"]
    path = data.draw(st.sampled_from([
        ("obs_dim",), ("act_dim",), ("action_low",), ("env_id",), ("num_updates",), ("config", "gamma"),
        ("config", "hidden"), ("config", "bogus"), ("training", "buffer", "size"), ("training", "buffer", "pos"),
        ("training", "trainer", "step"), ("training", "trainer", "history"), ("training", "numpy_rng"),
        ("training", "env_rng"), ("training", "python_rng"),
        ("training", "learner", "actor_optimizer", "param_groups"), ("bogus",), ("training", "learner", "bogus"),
        ("training", "version"), ("training", "trainer", "last_eval"), ("training", "trainer", "seeded"),
        ("training", "trainer", "wall_s"), ("step",), ("training", "trainer", "episodes"),
        ("training", "buffer", "added"), ("training", "buffer", "chunk_rows"), ("training", "buffer", "chunk_files"),
    ]))
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(_json)
    m["checksum"] = manifest_checksum(m)
    (p / "manifest.json").write_text(json.dumps(m))
    try:
        loaded = DDPG.load(p)
    except DDPGKitError as e:
        assert "\n" not in str(e)
        return
    assert identical(model(agent), model(loaded))
    again = loaded.save(d / "again", training_state=True)
    assert _same(read_manifest(again)["meta"], meta), f"{path} = {target[path[-1]]!r} loaded as something else"


def test_train_resume_applies_device_and_threads(uninterrupted, tmp_path, capsys, monkeypatch):
    """`train ... --resume --device X --threads N` continues on X with N threads (docs/guide/checkpoints.md: those
    flags are accepted on resume); the run's config.toml and new checkpoints record them."""
    import shutil

    from ddpgkit.config.ddpg import DDPGConfig

    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    assert DDPGConfig.load(run / "config.toml").device == "auto"
    calls, set_threads = [], torch.set_num_threads

    def recorded(n):  # torch's own, recorded: the run sets 2, and 1 back when it ends
        calls.append(n)
        set_threads(n)

    monkeypatch.setattr(torch, "set_num_threads", recorded)
    try:
        r = run_cli(capsys, "train", *CLI_FAST, "--steps", "1600", "--device", "cpu", "--threads", "2",
                    "--out", run, "--resume")
        assert r.code == 0, r.err
        assert calls == [2, 1] and torch.get_num_threads() == 1  # the run used them, and put torch's back
    finally:
        torch.set_num_threads(1)
    saved = DDPGConfig.load(run / "config.toml")
    assert (saved.device, saved.threads, saved.total_steps) == ("cpu", 2, 1600)
    final, _ = _final(run)
    assert (final.config.device, final.config.threads) == ("cpu", 2)
    try:
        r = run_cli(capsys, "resume", run, "--steps", "1800", "--threads", "1")
        assert r.code == 0, r.err
    finally:
        torch.set_num_threads(1)
    assert DDPGConfig.load(run / "config.toml").threads == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error case needs a machine without CUDA")
def test_resume_on_a_missing_device_is_refused(uninterrupted, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    r = run_cli(capsys, "train", *CLI_FAST, "--steps", "1600", "--device", "cuda:0", "--out", run, "--resume")
    assert_one_line_error(r, "CUDA is not available")
    r = run_cli(capsys, "resume", run, "--steps", "1600", "--device", "cuda")
    assert_one_line_error(r, "CUDA is not available")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


@pytest.mark.parametrize("seeds", [[3], [3, 4]])
def test_a_resume_between_two_actor_steps_logs_what_the_uninterrupted_run_logs(tmp_path, seeds):
    """policy_frequency 2, a checkpoint after an odd number of updates: the next update has no actor step and
    reports the last actor loss, which the checkpoint holds (learner.last_actor_loss; format 1 restored 0) —
    for a single run and for each member of a group."""
    from ddpgkit import resume_experiment, run_experiment
    from ddpgkit.config.ddpg import DDPGConfig

    cfg = DDPGConfig(hidden=(16, 16), batch_size=32, learning_starts=101, total_steps=400, policy_frequency=2,
                     checkpoint_interval=200, eval_interval=200, eval_episodes=2, buffer_size=1000)
    full = run_experiment("Pendulum-v1", cfg, [tmp_path / f"full{s}" for s in seeds], seeds=seeds)
    parts = [tmp_path / f"part{s}" for s in seeds]
    first = run_experiment("Pendulum-v1", cfg.replace(total_steps=200), parts, seeds=seeds)
    assert first[0].agent.learner.num_updates % 2 == 1  # the checkpoint falls between two actor steps
    resumed = resume_experiment(parts, total_steps=400).run()
    timing = {"steps_per_s", "wall_s"}
    for a, b in zip(full, resumed, strict=True):
        rows = [[{k: v for k, v in r.items() if k not in timing} for r in x.agent.trainer.history] for x in (a, b)]
        assert rows[0] == rows[1]
        mine, theirs = a.agent.model_tensors(), b.agent.model_tensors()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
