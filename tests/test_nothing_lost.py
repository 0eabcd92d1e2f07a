"""Nothing lost, whatever happens to a run (issue 23): each case here failed before it was fixed."""

import pytest
import torch

from ddpgkit import DDPG, DDPGConfig, run_experiment
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
