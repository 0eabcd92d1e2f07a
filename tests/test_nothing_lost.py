"""Nothing lost, whatever happens to a run (issue 23): each case here failed before it was fixed."""

import json
import os
import signal

import pytest
import torch

from ddpgkit import DDPG, Callback, DDPGConfig, run_experiment
from ddpgkit.storage.rundir import checkpoints_by_step, read_committed, read_metrics

TINY = DDPGConfig(hidden=(16, 16), batch_size=32, learning_starts=100, total_steps=600, checkpoint_interval=200,
                  keep_checkpoints=1, eval_interval=200, eval_episodes=2, buffer_size=1000)
TIMING = {"steps_per_s", "wall_s"}


class Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, and what was on disk stays as it was."""


def _rows(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


def _same_runs(a_dirs, b_dirs):
    for a, b in zip(a_dirs, b_dirs, strict=True):
        assert _rows(a) == _rows(b)
        ours, theirs = DDPG.load(a / "checkpoints" / "600").model_tensors(), \
            DDPG.load(b / "checkpoints" / "600").model_tensors()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def _kill_at(monkeypatch, where, nth):
    """Raise Killed at the ``nth`` call of ``where``: a training checkpoint's save, the commit record's write,
    or a run directory's pruning."""
    import ddpgkit.training.callbacks as callbacks

    calls = {"n": 0}

    def counting(real):
        def wrapper(*args, **kwargs):
            if where != "save" or kwargs.get("training_state"):
                calls["n"] += 1
                if calls["n"] == nth:
                    raise Killed(f"{where} #{nth}")
            return real(*args, **kwargs)
        return wrapper

    if where == "save":
        monkeypatch.setattr(DDPG, "save", counting(DDPG.save))
    elif where == "commit record":
        monkeypatch.setattr(callbacks, "atomic_write_json", counting(callbacks.atomic_write_json))
    else:
        monkeypatch.setattr(callbacks, "prune_checkpoints", counting(callbacks.prune_checkpoints))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    dirs = [root / f"s{s}" for s in (0, 1, 2)]
    run_experiment("Pendulum-v1", TINY, dirs, seeds=[0, 1, 2])
    return dirs


@pytest.mark.parametrize("where,nth,what", [
    ("save", 2, "the first checkpoint, between the first and the second run's save"),
    ("save", 3, "the first checkpoint, between the second and the third run's save"),
    ("save", 5, "the second checkpoint (keep_checkpoints 1), between two runs' saves"),
    ("commit record", 1, "every run saved, before the commit record"),
    ("commit record", 5, "the second checkpoint, between two runs' commit records"),
    ("prune", 5, "the second checkpoint committed, between two runs' pruning"),
])
def test_a_group_killed_at_any_point_of_a_checkpoint_resumes_exactly(uninterrupted, tmp_path, monkeypatch, where,
                                                                     nth, what):
    dirs = [tmp_path / f"s{s}" for s in (0, 1, 2)]
    with monkeypatch.context() as m:
        _kill_at(m, where, nth)
        with pytest.raises(Killed):
            run_experiment("Pendulum-v1", TINY, dirs, seeds=[0, 1, 2])
    run_experiment("Pendulum-v1", TINY, dirs, seeds=[0, 1, 2], resume=True)  # the same command, plus --resume
    _same_runs(uninterrupted, dirs)
    record = read_committed(dirs[0])
    assert record == {"step": 600, "runs": ["s0", "s1", "s2"]}
    assert all(sorted(checkpoints_by_step(d)) == [600] for d in dirs)  # keep_checkpoints 1, after the commit


def test_a_run_of_100k_one_step_episodes_resumes(tmp_path):
    """Every metrics row used to ride in every checkpoint's manifest (~0.85 kB a row): past ~79k rows it outgrew
    the reader's 64 MiB cap, and a long run wrote checkpoints it could not load. The history is in chunk files
    now; the manifest stays small however long the run."""
    from ddpgkit import resume_experiment
    from ddpgkit.storage.manifest import read_manifest

    cfg = DDPGConfig(hidden=(8,), batch_size=16, buffer_size=1000, learning_starts=99_900, total_steps=100_000,
                     eval_interval=0, eval_episodes=1, checkpoint_interval=0, health_interval=0)
    run = tmp_path / "run"
    [first] = run_experiment("ddpgkit/Mirror-v0", cfg, run)  # one-step episodes: a metrics row a step
    assert len(first.agent.trainer.history) == 100_001  # and the final evaluation's
    assert (first.checkpoint / "manifest.json").stat().st_size < 100_000
    assert read_manifest(first.checkpoint)["meta"]["training"]["history"]["rows"] == 100_001
    [second] = resume_experiment(run, total_steps=100_050).run()
    history = second.agent.trainer.history
    assert len(history) == 100_052 and history[:100_001] == first.agent.trainer.history
    assert len(read_metrics(run)) == 100_052


def test_a_checkpoint_whose_manifest_a_reader_would_refuse_is_not_written(tmp_path, monkeypatch):
    import ddpgkit.storage.checkpoint as checkpoint
    from ddpgkit.errors import CheckpointError

    agent = DDPG("Pendulum-v1", TINY, seed=0).learn(150)
    good = agent.save(tmp_path / "c", training_state=True)
    before = sorted(p.name for p in good.iterdir())
    monkeypatch.setattr(checkpoint, "MAX_MANIFEST_BYTES", 2_000)  # the reader's cap, made small
    with pytest.raises(CheckpointError, match="over the 2,000 a reader accepts"):
        agent.save(tmp_path / "c", training_state=True)
    assert sorted(p.name for p in good.iterdir()) == before  # the good checkpoint is untouched
    assert DDPG.load(good).num_timesteps == 150
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


FLAGS = ["--steps", "300", "--learning-starts", "100", "--hidden", "16,16", "--batch-size", "32", "--buffer-size",
         "1000", "--eval-interval", "0", "--eval-episodes", "2"]


def test_overwrite_refuses_a_folder_ddpgkit_did_not_make(tmp_path, capsys):
    from tests.clihelp import assert_one_line_error, run_cli

    mine = tmp_path / "my-project"
    mine.mkdir()
    (mine / "config.toml").write_text("[tool]\nname = 'mine'\n")
    (mine / "notes.txt").write_text("keep me")
    r = run_cli(capsys, "train", "Pendulum-v1", *FLAGS, "--out", mine, "--overwrite")
    assert_one_line_error(r, str(mine), "not a run directory ddpgkit made")
    assert (mine / "config.toml").read_text() == "[tool]\nname = 'mine'\n" and (mine / "notes.txt").exists()
    assert sorted(p.name for p in mine.iterdir()) == ["config.toml", "notes.txt"]  # not even a lock file left


def test_overwrite_removes_everything_a_run_wrote_and_nothing_else(tmp_path, capsys):
    from tests.clihelp import run_cli

    run = tmp_path / "run"
    assert run_cli(capsys, "train", "Pendulum-v1", *FLAGS, "--out", run, "--tensorboard").code == 0
    assert run_cli(capsys, "inspect", run).code == 0
    (run / "nonfinite_batch.safetensors").write_bytes(b"a batch an earlier run broke on")
    (run / "notes.txt").write_text("mine")
    for marker in (True, False):  # a run made before markers is recognised by what only ddpgkit writes
        if not marker:
            (run / ".ddpgkit-run").unlink()
        (run / "tensorboard").mkdir(exist_ok=True)
        r = run_cli(capsys, "train", "Pendulum-v1", *FLAGS, "--steps", "200", "--out", run, "--overwrite")
        assert r.code == 0, r.err
        left = sorted(p.name for p in run.iterdir())
        assert "notes.txt" in left and "inspect" not in left and "nonfinite_batch.safetensors" not in left
        assert "tensorboard" not in left and (run / ".ddpgkit-run").exists()
        assert json.loads((run / "summary.json").read_text())["steps"] == 200


def test_one_writer_per_run_directory(tmp_path):
    from ddpgkit import prepare_experiment, resume_experiment
    from ddpgkit.errors import RunError

    run = tmp_path / "run"
    first = prepare_experiment("Pendulum-v1", TINY.replace(total_steps=300), run)
    pid = f"process {os.getpid()}"
    with pytest.raises(RunError, match=f"{run} is in use by {pid} on .*: one process writes a run at a time"):
        prepare_experiment("Pendulum-v1", TINY.replace(total_steps=300), run, resume=True)
    with pytest.raises(RunError, match="is in use by"):
        resume_experiment(run)
    first.run()  # the lock goes with the run's end
    [longer] = resume_experiment(run, total_steps=400).run()
    assert longer.summary["steps"] == 400
    with prepare_experiment("Pendulum-v1", TINY, tmp_path / "other") as prepared:  # prepared, never run: closed
        assert prepared.run_dirs == [tmp_path / "other"]
    prepare_experiment("Pendulum-v1", TINY, tmp_path / "other", overwrite=True).close()


def test_a_second_train_resume_of_a_running_run_refuses_in_one_line(tmp_path):
    import subprocess
    import sys
    import time

    from tests.clihelp import assert_one_line_error, run_subprocess

    run = tmp_path / "run"
    exe = [sys.executable, "-m", "ddpgkit.cli"]
    args = ["train", "Pendulum-v1", *FLAGS, "--steps", "40000", "--checkpoint-interval", "200", "--out", str(run)]
    proc = subprocess.Popen([*exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "200").exists():
            assert proc.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.2)
        second = run_subprocess(*args, "--resume")
        assert_one_line_error(second, f"{run} is in use by process {proc.pid}")
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    assert proc.returncode == 128 + 15  # SIGTERM: it saved and stopped, untouched by the second
    saved = max(checkpoints_by_step(run))
    r = run_subprocess("resume", run, "--steps", saved + 200)  # the one writer gone, the run continues
    assert r.code == 0, r.err


def test_a_sweep_directory_has_one_driver(tmp_path):
    from ddpgkit.errors import RunError
    from ddpgkit.experiments.sweep import SweepSpec, run_sweep
    from ddpgkit.storage.rundir import RunLock

    out = tmp_path / "sweep"
    held = RunLock(out, what="sweep")
    try:
        spec = SweepSpec.from_dict({"envs": ["Pendulum-v1"], "seeds": [0], "config": {"total_steps": 300}})
        with pytest.raises(RunError, match="one process writes a sweep at a time"):
            run_sweep(spec, out)
    finally:
        held.release()


def test_a_checkpoint_of_a_torch_with_other_adam_options_resumes_exactly(tmp_path):
    """Adam's param groups had to match this torch's keys exactly: a release that adds an option would strand
    every checkpoint. Only the settings that change a step are compared and restored now."""
    import shutil

    from ddpgkit import resume_experiment
    from ddpgkit.storage.manifest import manifest_checksum

    cfg = TINY.replace(total_steps=400)
    [full] = run_experiment("Pendulum-v1", cfg, tmp_path / "full")
    run = tmp_path / "run"
    run_experiment("Pendulum-v1", cfg.replace(total_steps=200), run)
    ckpt = run / "checkpoints" / "200"
    m = json.loads((ckpt / "manifest.json").read_text())
    for opt in ("actor_optimizer", "critic_optimizer"):
        for group in m["meta"]["training"]["learner"][opt]["param_groups"]:
            group["a_future_option"] = True  # a newer torch's
            del group["differentiable"], group["decoupled_weight_decay"]  # an older torch's lacks these
    m["checksum"] = manifest_checksum(m)
    (ckpt / "manifest.json").write_text(json.dumps(m))
    [resumed] = resume_experiment(run, total_steps=400).run()
    ours, ref = resumed.agent.model_tensors(), full.agent.model_tensors()
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    group = resumed.agent.learner.actor_optimizer.param_groups[0]
    assert "a_future_option" not in group and group["decoupled_weight_decay"] is False and group["fused"] is True
    shutil.rmtree(run)


DIVERGE = DDPGConfig(hidden=(16, 16), batch_size=64, learning_starts=100, total_steps=800, checkpoint_interval=200,
                     keep_checkpoints=3, eval_interval=200, eval_episodes=2, buffer_size=1000)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Seeds 0-2 on the env where the huge reward never comes."""
    root = tmp_path_factory.mktemp("ref")
    return run_experiment("ddpgkit/HugeRewardNever-v0", DIVERGE, [root / f"s{s}" for s in (0, 1, 2)], seeds=[0, 1, 2])


def _same_as_reference(result, ref):
    assert _rows(result.run_dir) == _rows(ref.run_dir)
    ours, theirs = result.agent.model_tensors(), ref.agent.model_tensors()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_one_diverging_seed_does_not_take_its_group_down(reference, tmp_path):
    from safetensors.torch import load_file

    dirs = [tmp_path / f"s{s}" for s in (0, 1, 2)]
    results = run_experiment("ddpgkit/HugeRewardForSeed1-v0", DIVERGE, dirs, seeds=[0, 1, 2])
    gone = results[1].summary
    assert gone["status"] == "diverged" and "critic loss of seed 1" in gone["signal"]
    assert 300 < gone["diverged_at"] < 800 and gone["final_eval_mean"] is None
    assert load_file(dirs[1] / gone["batch"])["reward"].max() == pytest.approx(1e30, rel=1e-6)
    assert not (dirs[1] / "checkpoints" / "800").exists()  # it stopped where it diverged
    for k in (0, 2):  # the others finished with exactly the numbers they have without it
        assert results[k].summary["status"] == "finished" and results[k].summary["steps"] == 800
        _same_as_reference(results[k], reference[k])
    assert read_committed(dirs[0])["step"] == 800


def test_a_group_killed_after_a_divergence_resumes_the_others_exactly(reference, tmp_path, monkeypatch):
    dirs = [tmp_path / f"s{s}" for s in (0, 1, 2)]
    with monkeypatch.context() as m:  # killed after seed 1 diverged (at step 309): at the first save of step 800
        _kill_at(m, "save", 8)  # 200: 3 saves; 400 and 600: the other two runs' (seed 1 saves no more)
        with pytest.raises(Killed):
            run_experiment("ddpgkit/HugeRewardForSeed1-v0", DIVERGE, dirs, seeds=[0, 1, 2])
    assert json.loads((dirs[1] / "summary.json").read_text())["status"] == "diverged"
    results = run_experiment("ddpgkit/HugeRewardForSeed1-v0", DIVERGE, dirs, seeds=[0, 1, 2], resume=True)
    assert results[1].summary["status"] == "diverged" and results[0].summary["resumed"]
    for k in (0, 2):
        _same_as_reference(results[k], reference[k])


def test_a_report_counts_diverged_runs_as_failures(tmp_path):
    from ddpgkit import make_report

    dirs = [tmp_path / "runs" / f"s{s}" for s in (0, 1, 2)]
    run_experiment("ddpgkit/HugeRewardForSeed1-v0", DIVERGE.replace(total_steps=600), dirs, seeds=[0, 1, 2])
    report = make_report([tmp_path / "runs"], tmp_path / "report", reps=200)
    [group] = report.groups
    assert [r.seed for r in group.runs] == [0, 2] and [r.seed for r in group.diverged] == [1]
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["groups"][0]["diverged"][0]["seed"] == 1 and not data["skipped"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| 2 | 1 |" in md and "diverged at step" in md


def test_the_report_command_names_diverged_runs_even_when_all_diverged(tmp_path, capsys):
    from tests.clihelp import run_cli

    dirs = [tmp_path / "runs" / f"s{s}" for s in (0, 1, 2)]
    run_experiment("ddpgkit/HugeRewardForSeed1-v0", DIVERGE.replace(total_steps=600), dirs, seeds=[0, 1, 2])
    r = run_cli(capsys, "report", tmp_path / "runs", "--out", tmp_path / "report", "--reps", "200")
    assert r.code == 0, r.err
    assert "(n=2, 1 diverged (counted as failures, not in the statistics)): final IQM" in r.out
    only = tmp_path / "runs" / "s1"  # the diverged run alone: nothing to estimate, said in one line
    r = run_cli(capsys, "report", only, "--out", tmp_path / "report1", "--reps", "200")
    assert r.code == 1 and r.err == "error: every run found diverged (1); there is nothing to estimate\n"
    other = tmp_path / "other"  # beside a group that finished: the diverged group is named, and no traceback
    run_experiment("ddpgkit/HugeRewardForSeed1-v0", DIVERGE.replace(total_steps=600, tau=0.01), other, seeds=[0])
    r = run_cli(capsys, "report", only, other, "--out", tmp_path / "report2", "--reps", "200")
    assert r.code == 0, r.err
    assert "(n=0, 1 diverged (counted as failures, not in the statistics)): no finished run" in r.out
    assert "(n=1): final IQM" in r.out


# ---- item 9: leaks and what a resumed run shows ------------------------------------------------------------

class _KillAtStep(Callback):
    def __init__(self, step):
        self.step = step

    def on_step(self, trainer):
        if trainer.step == self.step:
            raise Killed


def test_a_resumed_runs_tensorboard_drops_the_abandoned_timeline(tmp_path):
    """Killed at step 700 (its checkpoint: 400; rows at every 200), resumed: TensorBoard shows each step once, as
    metrics.csv has it (without purge_step it showed the first attempt's row at 600 beside the resumed run's)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ddpgkit.experiments.run import prepare_experiment, resume_experiment

    run = tmp_path / "run"
    cfg = TINY.replace(total_steps=1000, checkpoint_interval=400)
    with pytest.raises(Killed):
        prepare_experiment("Pendulum-v1", cfg, run).run(_KillAtStep(700), tensorboard=True)
    resume_experiment(run).run(tensorboard=True)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [r["step"] for r in read_metrics(run)] == [200, 200, 400, 400, 600, 600, 800, 800, 1000, 1000]
    for tag, column in (("return/episode", "episode_return"), ("loss/critic", "critic_loss")):
        expected = [(r["step"], r[column]) for r in read_metrics(run) if r[column] is not None]
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in expected]
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6)  # float32 in the file


def test_files_opened_before_a_failing_setup_are_closed(tmp_path, monkeypatch):
    """The second run's config cannot be written: the first run's metrics.csv and both TensorBoard files,
    opened already, are closed, and the run directories are unlocked."""
    import ddpgkit.experiments.run as run_module
    from ddpgkit.experiments.run import prepare_experiment
    from ddpgkit.training.callbacks import MetricsCSV
    from ddpgkit.training.tensorboard import TensorBoardSink

    opened, closed = [], []
    for cls in (MetricsCSV, TensorBoardSink):  # the real classes, recorded
        def init(self, *a, _real=cls.__init__, **k):
            _real(self, *a, **k)
            opened.append(self)

        def close(self, _real=cls.close):
            _real(self)
            closed.append(self)

        monkeypatch.setattr(cls, "__init__", init)
        monkeypatch.setattr(cls, "close", close)
    real_begin = run_module._begin

    def failing(run, *a, **k):
        if run.agent.config.seed == 1:
            raise OSError("disk full")
        return real_begin(run, *a, **k)

    monkeypatch.setattr(run_module, "_begin", failing)
    dirs = [tmp_path / "s0", tmp_path / "s1"]
    experiment = prepare_experiment("Pendulum-v1", TINY, dirs, seeds=[0, 1])
    with pytest.raises(OSError, match="disk full"):
        experiment.run(tensorboard=True)
    assert [type(o).__name__ for o in opened] == ["TensorBoardSink", "TensorBoardSink", "MetricsCSV"]
    assert sorted(map(id, closed)) == sorted(map(id, opened))
    prepare_experiment("Pendulum-v1", TINY, dirs, seeds=[0, 1], overwrite=True).close()  # unlocked


def test_resume_never_starts_over_a_finished_run_beside_a_new_one(tmp_path):
    """Only a group whose first commit was interrupted starts again on --resume. A finished run (here one from
    before group commits: no committed.json) given beside a new directory is refused, and left as it was."""
    from ddpgkit.errors import RunError
    from ddpgkit.storage.rundir import read_summary

    s0, s1 = tmp_path / "s0", tmp_path / "s1"
    run_experiment("Pendulum-v1", TINY, s0)
    (s0 / "checkpoints" / "committed.json").unlink()
    before = sorted(p.relative_to(s0) for p in s0.rglob("*"))
    with pytest.raises(RunError, match="no checkpoint at a common step"):
        run_experiment("Pendulum-v1", TINY, [s0, s1], seeds=[0, 1], resume=True)
    assert sorted(p.relative_to(s0) for p in s0.rglob("*")) == before
    assert read_summary(s0)["status"] == "finished"


def test_a_group_whose_first_member_diverged_counts_the_steps_of_the_others():
    """Seed 1 first: it diverges at step 309; the group's num_timesteps is the others' (600), and learn(200)
    trains them 200 more steps."""
    from ddpgkit import DDPGGroup

    group = DDPGGroup.create("ddpgkit/HugeRewardForSeed1-v0", DIVERGE, seeds=[1, 0]).learn(600)
    assert [m.num_timesteps for m in group.members] == [309, 600] and group.num_timesteps == 600
    group.learn(200)
    assert [m.num_timesteps for m in group.members] == [309, 800]


class _Interrupt(Callback):
    def on_step(self, trainer):
        if trainer.step == 250:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, as a notebook's interrupt button sends it


def test_an_interrupted_run_unlocks_its_directory_even_while_its_exception_is_kept(tmp_path):
    """A notebook keeps the last exception and its frames: the interrupted Experiment must still let the same
    process resume its run directory (before: "in use by process <its own pid>")."""
    from ddpgkit.errors import RunInterrupted
    from ddpgkit.experiments.run import prepare_experiment, resume_experiment

    run = tmp_path / "run"
    with pytest.raises(RunInterrupted) as info:
        prepare_experiment("Pendulum-v1", TINY, run).run(_Interrupt(), handle_signals=True)
    kept = info.value  # noqa: F841 - held, as IPython holds sys.last_value
    [result] = resume_experiment(run).run()
    assert result.summary["steps"] == 600 and result.summary["resumed"]


def test_members_that_diverge_in_the_same_update_each_leave_their_summary(tmp_path, monkeypatch):
    """Every member's batch turns infinite in one update (the rewards of their batches, from step 300): the run
    fails in one line, and each member — not only the one the error names — has its broken batch and a
    diverged summary (before: the second had neither, and needed another --resume to settle)."""
    from ddpgkit import DDPGGroup
    from ddpgkit.errors import NonFiniteError
    from ddpgkit.experiments.run import prepare_experiment
    from ddpgkit.storage.rundir import read_summary

    real = DDPGGroup.sample

    def poisoned(self, batch_size):  # the real batches, their rewards made infinite once step 300 is reached
        batch = real(self, batch_size)
        if self.members[0].trainer.step >= 300:
            batch.reward.fill_(float("inf"))
        return batch

    monkeypatch.setattr(DDPGGroup, "sample", poisoned)
    dirs = [tmp_path / "s0", tmp_path / "s1"]
    with pytest.raises(NonFiniteError, match="every member of the group has diverged"):
        prepare_experiment("Pendulum-v1", TINY, dirs, seeds=[0, 1]).run()
    for d in dirs:
        summary = read_summary(d)
        assert summary["status"] == "diverged" and summary["diverged_at"] == 300, d
        assert (d / "nonfinite_batch.safetensors").is_file()


def test_a_retired_member_keeps_the_weights_it_had_when_it_stopped():
    """With critic weight decay (Adam adds wd·θ to a zero gradient) and soft target updates, a retired member's
    slices would still move; all four of its networks stay as they were when it diverged, while the others
    learn on."""
    from ddpgkit import DDPGGroup

    cfg = DIVERGE.replace(critic_weight_decay=1e-2, total_steps=600)
    group = DDPGGroup.create("ddpgkit/HugeRewardForSeed1-v0", cfg, seeds=[0, 1]).learn_until(320)
    assert group.learner.retired == {1}  # seed 1 diverged at step 309
    frozen = {k: v.clone() for k, v in group.members[1].model_tensors().items()}
    other = {k: v.clone() for k, v in group.members[0].model_tensors().items()}
    group.learn_until(600)
    assert all(torch.equal(frozen[k], v) for k, v in group.members[1].model_tensors().items())
    assert not any(torch.equal(other[k], v) for k, v in group.members[0].model_tensors().items()
                   if k.endswith(("weight", "bias")) and "action_" not in k)  # its weights (not the bounds)
