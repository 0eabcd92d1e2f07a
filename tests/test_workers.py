"""Seeds split over worker processes (`train --seeds --workers`): the shares, each share's numbers against the
same group in one process, Ctrl-C and resume, a killed parent, a failing worker, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddpgkit import DDPG, DDPGConfig
from ddpgkit.config.seeds import seed_ranges
from ddpgkit.errors import ConfigError, RunError
from ddpgkit.experiments.run import run_experiment
from ddpgkit.experiments.workers import run_workers, split_seeds
from ddpgkit.storage.rundir import list_checkpoints, read_metrics

from tests.clihelp import assert_one_line_error, run_cli, run_subprocess

TINY = DDPGConfig(hidden=(16, 16), total_steps=600, learning_starts=100, batch_size=32, buffer_size=5000,
                  eval_interval=200, eval_episodes=2, checkpoint_interval=200, keep_checkpoints=3)
TIMING = ("steps_per_s", "wall_s")


def numbers(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def same_weights(a: DDPG, b: DDPG) -> bool:
    ta, tb = a.model_tensors(), b.model_tensors()
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize("n, workers, shares", [
    (10, 2, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]),
    (10, 3, [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]),
    (3, 5, [[0], [1], [2]]),
    (4, 1, [[0, 1, 2, 3]]),
])
def test_split_seeds_contiguous_shares_within_one_of_each_other(n, workers, shares):
    assert split_seeds(list(range(n)), workers) == shares
    assert split_seeds([10 + s for s in range(n)], workers) == [[10 + s for s in share] for share in shares]


def test_split_seeds_refuses_no_workers_and_seed_ranges_reads_back():
    with pytest.raises(ConfigError, match="workers"):
        split_seeds([0, 1], 0)
    assert seed_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert seed_ranges([3]) == "3"


def test_each_worker_trains_its_share_as_that_group_in_one_process_would(tmp_path):
    """Seeds 0-3 over 2 workers: seeds 0-1 and 2-3 are bit for bit the in-process groups [0, 1] and [2, 3]."""
    results = run_workers("Pendulum-v1", TINY, range(4), [tmp_path / f"w{s}" for s in range(4)], workers=2,
                          tensorboard=True)
    assert [r.summary["seed"] for r in results] == [0, 1, 2, 3]
    assert all(any((r.run_dir / "tensorboard").iterdir()) for r in results)
    for share in ([0, 1], [2, 3]):
        alone = run_experiment("Pendulum-v1", TINY, [tmp_path / f"g{s}" for s in share], seeds=share)
        for s, g in zip(share, alone):
            w = results[s]
            assert w.summary["group_seeds"] == share
            assert same_weights(w.agent, g.agent)
            assert numbers(read_metrics(w.run_dir)) == numbers(read_metrics(g.run_dir))
            assert w.summary["final_eval_mean"] == g.summary["final_eval_mean"]


CLI = ["Pendulum-v1", "--seeds", "0-3", "--workers", "2", "--steps", "2400", "--learning-starts", "100",
       "--batch-size", "32", "--hidden", "16,16", "--buffer-size", "5000", "--eval-interval", "400",
       "--eval-episodes", "2", "--checkpoint-interval", "200"]
RUNS = [f"Pendulum-v1-s{s}" for s in range(4)]


def _wait_for_checkpoints(proc: subprocess.Popen, runs: list[Path], step: int) -> None:
    deadline = time.time() + 180
    while time.time() < deadline and not all(any((p / "manifest.json").exists() and int(p.name) >= step
                                                 for p in list_checkpoints(r) if p.name.isdigit()) for r in runs):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)


def _same_as(runs: list[Path], reference: Path) -> None:
    for run in runs:
        ref = reference / run.name
        ours, theirs = (json.loads((d / "summary.json").read_text()) for d in (run, ref))
        assert same_weights(DDPG.load(run / ours["checkpoint"]), DDPG.load(ref / theirs["checkpoint"]))
        assert numbers(read_metrics(run)) == numbers(read_metrics(ref))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    r = run_subprocess("train", *CLI, "--out", out)
    assert r.code == 0, r.err
    assert "4 seeds in 2 processes: 0-1 | 2-3" in r.out and "final evaluation: seed 3:" in r.out
    return out


def _start(out: Path, checkpoint_step: int) -> tuple[subprocess.Popen, list[Path]]:
    """`ddpgkit train CLI --out out` started, returned once every run holds a checkpoint of that step."""
    exe = Path(sys.executable).with_name("ddpgkit")
    proc = subprocess.Popen([str(exe), "train", *CLI, "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    runs = [out / r for r in RUNS]
    _wait_for_checkpoints(proc, runs, checkpoint_step)
    return proc, runs


def test_ctrl_c_saves_every_worker_and_resume_continues_to_the_uninterrupted_numbers(tmp_path, uninterrupted):
    proc, runs = _start(tmp_path / "stopped", 400)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the parent (the workers sit in their own group)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "SIGINT" in lines[0] and "--workers 2" in lines[0], err
    r = run_subprocess("resume", *runs, "--workers", "2")
    assert r.code == 0, r.err
    assert "resuming: seeds 0-1" in r.out and "resuming: seeds 2-3" in r.out
    _same_as(runs, uninterrupted)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def test_workers_of_a_killed_parent_checkpoint_and_stop_and_the_runs_resume_exactly(tmp_path, uninterrupted):
    out = tmp_path / "orphaned"
    proc, runs = _start(out, 200)
    workers = [k for k in _children(proc.pid)
               if "multiprocessing" in Path(f"/proc/{k}/cmdline").read_text(errors="replace")
               and "resource_tracker" not in Path(f"/proc/{k}/cmdline").read_text(errors="replace")]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    deadline = time.time() + 120  # each notices within REPORT_EVERY steps, then saves at its episode's end
    while time.time() < deadline and any(Path(f"/proc/{k}").exists() and "Z" not in
                                         Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0]
                                         for k in workers):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{k}").exists() for k in workers if Path(f"/proc/{k}/stat").exists()
                   and "Z" not in Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0])
    for run in runs:
        assert [p for p in list_checkpoints(run) if p.name.isdigit()]
    r = run_subprocess("train", *CLI, "--out", out, "--resume")
    assert r.code == 0, r.err
    _same_as(runs, uninterrupted)


def _worker_pids(parent: int) -> list[int]:
    """The spawned workers among ``parent``'s children (not multiprocessing's resource tracker)."""
    def cmdline(k: int) -> str:
        return Path(f"/proc/{k}/cmdline").read_text(errors="replace")
    return [k for k in _children(parent) if "multiprocessing" in cmdline(k) and "resource_tracker" not in cmdline(k)]


def test_a_killed_worker_is_one_line_the_other_share_finishes_and_resume_completes_exactly(tmp_path, uninterrupted):
    out = tmp_path / "one-killed"
    proc, runs = _start(out, 400)
    workers = sorted(_worker_pids(proc.pid))
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # the first started: seeds 0-1
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "seeds 0-1" in lines[0] and "status -9" in lines[0], err
    assert all((run / "summary.json").exists() for run in runs[2:])  # seeds 2-3 finished their runs
    r = run_subprocess("train", *CLI, "--out", out, "--resume")
    assert r.code == 0, r.err
    assert "resuming: seeds 0-1" in r.out
    _same_as(runs, uninterrupted)


def test_a_failing_worker_is_one_line_naming_its_seeds(tmp_path, capsys):
    r = run_cli(capsys, "train", "ddpgkit/NonFinite-v0", "--seeds", "0-1", "--workers", "2", "--steps", "300",
                "--learning-starts", "50", "--hidden", "8,8", "--batch-size", "16", "--out", tmp_path)
    assert_one_line_error(r, "seeds 0: ")
    with pytest.raises(RunError, match="seeds 0: .*non-finite"):
        run_workers("ddpgkit/NonFinite-v0", TINY, [0, 1], [tmp_path / "a", tmp_path / "b"], workers=2)


def test_workers_bad_input_one_line(tmp_path, capsys):
    assert_one_line_error(run_cli(capsys, "train", "Pendulum-v1", "--workers", "2", "--out", tmp_path), "--seeds")
    assert_one_line_error(run_cli(capsys, "train", "Pendulum-v1", "--seeds", "0-1", "--workers", "0",
                                  "--out", tmp_path), "--workers")
    assert_one_line_error(run_cli(capsys, "train", "Nope-v0", "--seeds", "0-1", "--workers", "2",
                                  "--out", tmp_path), "Nope-v0")
    assert_one_line_error(run_cli(capsys, "resume", tmp_path / "x", "--workers", "2"), "2 or more")
    assert_one_line_error(run_cli(capsys, "resume", tmp_path / "x", tmp_path / "y", "--workers", "2"),
                          "no such run directory")
    existing = tmp_path / "taken"
    run_workers("Pendulum-v1", TINY.replace(total_steps=200, eval_interval=0), [0, 1],
                [existing / "a", existing / "b"], workers=2)
    before = (existing / "a" / "metrics.csv").read_bytes()
    with pytest.raises(RunError, match="already holds a run"):
        run_workers("Pendulum-v1", TINY, [0, 1], [existing / "a", existing / "b"], workers=2)
    assert (existing / "a" / "metrics.csv").read_bytes() == before  # nothing started, nothing touched


def _docstring_example() -> str:
    import ddpgkit.experiments.workers as module

    doc = module.__doc__
    block = doc[doc.index("::\n") + 3:doc.index("\n\n", doc.index("run_workers(\"Pendulum"))]
    return "\n".join(line[4:] for line in block.splitlines())


def test_the_module_docstring_example_runs_as_a_script(tmp_path):
    """The example, as a script (smaller: 2 seeds of a tiny config): spawned workers import it again, and its
    `if __name__ == "__main__":` keeps them from starting workers of their own."""
    code = _docstring_example()
    big = 'DDPGConfig.preset("pendulum"), seeds=range(10)'
    assert big in code and 'if __name__ == "__main__":' in code
    small = ('DDPGConfig.preset("pendulum", total_steps=300, learning_starts=100, batch_size=32, hidden=(16, 16), '
             'buffer_size=1000, eval_episodes=1), seeds=range(2)')
    script = tmp_path / "example.py"
    script.write_text(code.replace(big, small) + "\n    print(sorted(r.summary['seed'] for r in results))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "[0, 1]"
    assert (tmp_path / "runs" / "Pendulum-v1-s1" / "summary.json").is_file()


def test_a_script_that_starts_workers_when_imported_gets_one_clear_error(tmp_path):
    """Without the `__main__` guard every spawned worker would start workers again while it starts (Python's
    own error is a page about bootstrapping, then "can only join a started process"); each says instead what to
    do. This also guards the private multiprocessing flag the check reads."""
    code = _docstring_example().replace('if __name__ == "__main__":', "if True:")
    code = code.replace('DDPGConfig.preset("pendulum")',
                        'DDPGConfig.preset("pendulum", total_steps=300, learning_starts=100)')
    (tmp_path / "unguarded.py").write_text(code)
    out = subprocess.run([sys.executable, "unguarded.py"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode != 0
    assert 'a script must start them under `if __name__ == "__main__":`' in out.stderr
    assert "bootstrapping phase" not in out.stderr
