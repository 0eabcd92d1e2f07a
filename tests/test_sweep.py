"""`ddpgkit sweep` on real Ray instances: a local one, and a two-node cluster on loopback with token
authentication; a worker killed with kill -9 mid-trial; a driver killed and the sweep run again.

The Ray tests share one xdist group (they start and stop clusters; run one at a time)."""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from ddpgkit import DDPG, run_experiment
from ddpgkit.experiments.sweep import SweepError, SweepSpec, run_sweep
from ddpgkit.storage.rundir import list_checkpoints, read_summary

from tests.clihelp import assert_one_line_error, run_cli

TINY = {"total_steps": 1200, "learning_starts": 100, "hidden": [16, 16], "batch_size": 32, "eval_interval": 400,
        "eval_episodes": 2, "checkpoint_interval": 200}
RAY_BIN = Path(sys.executable).with_name("ray")
DDPGKIT_BIN = Path(sys.executable).with_name("ddpgkit")


def spec_dict(**changes):
    return {"envs": ["Pendulum-v1"], "seeds": [0, 1], "preset": "pendulum", "config": dict(TINY), **changes}


def model(path: Path) -> dict[str, torch.Tensor]:
    return DDPG.load(path, training_state=False).model_tensors()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def final_checkpoint(run: Path) -> Path:
    return run / read_summary(run)["checkpoint"]


def session_processes(sids: set[int]) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) in sids:
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def end_sessions(sids: set[int], timeout: float = 30) -> None:
    for sid in sids:
        try:
            os.killpg(sid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while session_processes(sids) and time.time() < deadline:
        time.sleep(0.2)
    for pid in session_processes(sids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_sessions(sids: set[int]) -> None:
    """kill -9 every process of the sessions at once (a lost machine: the driver, its Ray instance and the worker
    mid-trial), then :func:`end_sessions` for any process started while they were listed."""
    for pid in session_processes(sids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end_sessions(sids, timeout=5)


# ---- the spec (no Ray needed) ------------------------------------------------------------------

def test_spec_expands_envs_grid_and_seeds(tmp_path):
    spec = SweepSpec.from_dict(spec_dict(seeds="3-5", grid={"tau": [0.01, 0.02], "hidden": [[8], [16, 16]]}))
    trials = spec.trials(tmp_path)
    assert len(trials) == 2 * 2 * 3 and [t.seed for t in trials[:3]] == [3, 4, 5]
    t = trials[-1]
    assert t.varied == {"tau": 0.02, "hidden": [16, 16]} and t.config.tau == 0.02 and t.config.hidden == (16, 16)
    assert t.config.total_steps == 1200 and t.config.learning_starts == 100 and t.config.gamma == 0.98  # preset
    assert t.run_dir == tmp_path / "runs" / "Pendulum-v1-tau=0.02-hidden=16x16-s5"
    assert len({x.run_dir for x in trials}) == len(trials)


@pytest.mark.parametrize("changes,match", [
    ({"seed": [1]}, "unknown key 'seed'; did you mean 'seeds'"),
    ({"seeds": "5-1"}, "seeds must be"),
    ({"grid": {"taux": [1]}}, "unknown key 'taux'; did you mean 'tau'"),
    ({"grid": {"tau": []}}, "non-empty list"),
    ({"grid": {"tau": [0.01, 0.0]}}, "Pendulum-v1 tau=0.0 seed 0: .*tau must be in"),
    ({"config": {"seed": 3}}, "cannot set seed"),
    ({"preset": "atari"}, "unknown preset"),
    ({"cpus_per_trial": 0}, "cpus_per_trial must be > 0"),
])
def test_bad_specs_are_named(changes, match):
    with pytest.raises(SweepError, match=match):
        SweepSpec.from_dict(spec_dict(**changes))


def test_sweep_command_bad_spec_one_line(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('envs = ["Pendulum-v1"]\nseeds = [0]\n[grid]\nbatchsize = [1]\n')
    assert_one_line_error(run_cli(capsys, "sweep", spec, "--out", tmp_path / "o"), "s.toml", "batchsize")
    assert_one_line_error(run_cli(capsys, "sweep", tmp_path / "none.toml"), "none.toml", "cannot read")


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as where the extra is not installed
    with pytest.raises(SweepError, match=r"pip install 'ddpgkit\[ray\]'"):
        run_sweep(SweepSpec.from_dict(spec_dict(seeds=[0])), tmp_path / "o")


# ---- on Ray ------------------------------------------------------------------------------------
# (Ray is not imported here: the sweep imports it, set up for the cluster it starts.)

pytestmark = [pytest.mark.xdist_group("ray"),
              pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                 reason="the `ray` extra (the README's set-up installs it)")]


def test_two_trial_sweep_on_a_local_instance(tmp_path, capsys):
    """Two seeds of one config through the CLI: one task training them as a group, ordinary run
    directories bit-identical to run_experiment's with the same seeds (`train --seeds`), a results table, no
    Ray process left, and a re-run that skips them."""
    spec = tmp_path / "two.toml"
    spec.write_text('envs = ["Pendulum-v1"]\nseeds = [0, 1]\npreset = "pendulum"\n[config]\n'
                    + "".join(f"{k} = {v}\n" for k, v in TINY.items()))
    out = tmp_path / "sweep"
    proc = subprocess.Popen([str(DDPGKIT_BIN), "sweep", str(spec), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stderr == ""  # no progress display without a terminal, and no Ray console noise
    assert "| Pendulum-v1 | - | 0 | done |" in stdout and "| Pendulum-v1 | - | 1 | done |" in stdout
    time.sleep(1)
    assert not session_processes({proc.pid})  # the local Ray instance was stopped: nothing left behind
    for name in ("results.csv", "results.md", "sweep.json"):
        assert (out / name).is_file()
    trials = SweepSpec.load(spec).trials(out)
    assert [len(task) for task in SweepSpec.load(spec).tasks(trials)] == [2]
    refs = run_experiment("Pendulum-v1", trials[0].config, [tmp_path / "ref0", tmp_path / "ref1"], seeds=[0, 1],
                          preset="pendulum")
    for t, ref in zip(trials, refs):
        assert same(model(final_checkpoint(t.run_dir)), ref.agent.model_tensors())
    r = run_cli(capsys, "eval", trials[0].run_dir, "--episodes", "2")  # an ordinary run directory
    assert r.code == 0 and "return:" in r.out
    again = run_sweep(SweepSpec.load(spec), out)
    assert [s.state for s in again.statuses] == ["skipped", "skipped"]


@pytest.mark.parametrize("per_task", [2, 1])
def test_a_diverged_trial_is_shown_as_such_and_its_group_finishes(tmp_path, capsys, per_task):
    """Seed 1 diverges: in a group of two (the other finishes), or alone in its task (a single run, which
    stops — still a result of the sweep, not a failure)."""
    spec = tmp_path / "diverging.toml"
    spec.write_text(f'envs = ["ddpgkit/HugeRewardForSeed1-v0"]\nseeds = [0, 1]\nseeds_per_task = {per_task}\n[config]\n'
                    + "".join(f"{k} = {v}\n" for k, v in {**TINY, "total_steps": 600, "batch_size": 64}.items()))
    r = run_cli(capsys, "sweep", spec, "--out", tmp_path / "o")
    assert r.code == 0, r.err  # a diverged seed is a result of the sweep, not a failure of it
    assert "| ddpgkit/HugeRewardForSeed1-v0 | - | 0 | done |" in r.out
    assert "| ddpgkit/HugeRewardForSeed1-v0 | - | 1 | diverged |" in r.out
    again = run_sweep(SweepSpec.load(spec), tmp_path / "o")
    assert [s.state for s in again.statuses] == ["skipped", "diverged"]


def test_a_failing_trial_is_reported_and_the_others_finish(tmp_path, capsys):
    spec = tmp_path / "mixed.toml"
    spec.write_text('envs = ["Pendulum-v1", "ddpgkit/NonFinite-v0"]\nseeds = [0]\n[config]\n'
                    + "".join(f"{k} = {v}\n" for k, v in TINY.items()))
    r = run_cli(capsys, "sweep", spec, "--out", tmp_path / "o")
    assert_one_line_error(r, "1 of 2 trials failed", "non-finite observation at step 49")
    assert "| ddpgkit/NonFinite-v0 | - | 0 | failed: the environment returned a non-finite observation" in r.out
    assert "| Pendulum-v1 | - | 0 | done |" in r.out


def _checkpoint_steps(run: Path) -> list[int]:
    return [int(p.name) for p in list_checkpoints(run) if (p / "manifest.json").is_file() and p.name.isdigit()]


def _worker_writing(metrics: Path) -> int | None:
    """The pid of the process holding ``metrics`` open (the Ray worker training that trial)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fd in (d / "fd").iterdir():
                if os.readlink(fd) == str(metrics):
                    return int(d.name)
        except OSError:
            continue
    return None


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def listening_addresses(pids: set[int]) -> list[str]:
    """The local addresses (hex, as in /proc/net/tcp*) of the TCP sockets these processes listen on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                found.append(cols[1].split(":")[0])
    return found


LOOPBACK_HEX = ("0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000")


def test_kill9_of_a_worker_mid_trial_resumes_to_the_uninterrupted_weights(tmp_path):
    """A worker training a group of two seeds is killed; Ray's retry resumes both from their common checkpoint
    and they end with the weights of an uninterrupted group."""
    spec = SweepSpec.from_dict(spec_dict(seeds=[3, 4], config={**TINY, "total_steps": 4000}))
    out = tmp_path / "sweep"
    trials = spec.trials(out)
    trial = trials[0]
    killed: dict[str, int] = {}

    def killer() -> None:
        deadline = time.time() + 240
        while time.time() < deadline:
            steps = _checkpoint_steps(trial.run_dir)
            if steps and max(steps) >= 600:
                pid = _worker_writing((trial.run_dir / "metrics.csv").resolve())
                if pid is not None:
                    killed["listening"] = listening_addresses(descendants(os.getpid()))
                    os.kill(pid, signal.SIGKILL)
                    killed.update(pid=pid, after=max(steps))
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=killer)
    thread.start()
    result = run_sweep(spec, out)
    thread.join()
    assert killed, "no worker was killed"
    # the local Ray instance (GCS, raylet, workers: this process's descendants) listened on loopback only
    assert len(killed["listening"]) >= 3 and set(killed["listening"]) <= set(LOOPBACK_HEX), killed["listening"]
    refs = run_experiment("Pendulum-v1", trial.config, [tmp_path / "ref3", tmp_path / "ref4"], seeds=[3, 4],
                          preset="pendulum")
    for status, t, ref in zip(result.statuses, trials, refs):
        assert status.state == "done", status.error
        summary = read_summary(t.run_dir)
        assert summary["resumed"] is True and summary["steps"] == 4000  # resumed from a checkpoint, not from 0
        assert same(model(final_checkpoint(t.run_dir)), ref.agent.model_tensors())


def test_a_killed_driver_then_the_same_command_finishes_the_sweep(tmp_path):
    spec = tmp_path / "s.toml"
    config = {**TINY, "total_steps": 8000}  # long enough that the driver dies before its trials end
    spec.write_text('envs = ["Pendulum-v1"]\nseeds = [0, 1]\npreset = "pendulum"\n[config]\n'
                    + "".join(f"{k} = {v}\n" for k, v in config.items()))
    out = tmp_path / "sweep"
    trials = SweepSpec.load(spec).trials(out)
    proc = subprocess.Popen([str(DDPGKIT_BIN), "sweep", str(spec), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not any(max(_checkpoint_steps(t.run_dir), default=0) >= 600 for t in trials):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    end_sessions({proc.pid})  # what the dead driver's local Ray instance left
    assert not (out / "results.csv").exists()
    # interrupted: a checkpoint, no summary (a trial that had finished before the kill proves nothing here)
    started = [t for t in trials if _checkpoint_steps(t.run_dir) and not (t.run_dir / "summary.json").exists()]
    assert started
    r = subprocess.run([str(DDPGKIT_BIN), "sweep", str(spec), "--out", str(out)], capture_output=True, text=True,
                       timeout=300, start_new_session=True)
    assert r.returncode == 0, r.stderr
    refs = run_experiment("Pendulum-v1", trials[0].config, [tmp_path / "ref0", tmp_path / "ref1"], seeds=[0, 1],
                          preset="pendulum")
    for t, ref in zip(trials, refs):
        summary = read_summary(t.run_dir)
        assert summary["steps"] == 8000
        if t in started:
            assert summary["resumed"] is True
        assert same(model(final_checkpoint(t.run_dir)), ref.agent.model_tensors())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    address: str
    token: str
    worker_session: int  # the session of the worker node's processes (ray start, its raylet, its workers)


@pytest.fixture
def cluster(tmp_path):
    """A head node and a worker node on this machine (loopback address), token authentication on."""
    token = secrets.token_hex(16)
    home = tmp_path / "cluster-home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # nothing inherited from a local sweep
    env = dict(base, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, HOME=str(home))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    head = subprocess.Popen([str(RAY_BIN), "start", "--head", "--port", str(port), "--include-dashboard", "false",
                             *common], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    procs = [head]
    try:
        probe = (f"import logging, ray; ray.init(address='{address}', logging_level=logging.ERROR); "
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.time() + 90
        while time.time() < deadline:
            n = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout.strip()
            if n == "1" and len(procs) == 1:
                procs.append(subprocess.Popen([str(RAY_BIN), "start", "--address", address, *common], env=env,
                                              start_new_session=True, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            if n == "2":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the two-node cluster did not come up")
        yield Cluster(address, token, procs[1].pid)
    finally:
        end_sessions({p.pid for p in procs})


def test_the_same_spec_runs_on_a_cluster_address_with_its_token(cluster, tmp_path):
    """One trial a task (seeds_per_task = 1), so that both nodes' CPUs are used."""
    address, token = cluster.address, cluster.token
    spec = tmp_path / "two.toml"
    spec.write_text('envs = ["Pendulum-v1"]\nseeds = [0, 1]\npreset = "pendulum"\nseeds_per_task = 1\n[config]\n'
                    + "".join(f"{k} = {v}\n" for k, v in TINY.items()))
    home = tmp_path / "client-home"  # no token file here: only what the environment gives
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    with_token = dict(base, HOME=str(home), RAY_AUTH_TOKEN=token)
    out = tmp_path / "sweep"
    r = subprocess.run([str(DDPGKIT_BIN), "sweep", str(spec), "--out", str(out), "--address", address],
                       env=with_token, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("| done |") == 2
    trials = SweepSpec.load(spec).trials(out)  # one run a task: the same weights as run_experiment's
    [ref] = run_experiment("Pendulum-v1", trials[1].config, tmp_path / "ref", preset="pendulum")
    assert same(model(final_checkpoint(trials[1].run_dir)), ref.agent.model_tensors())
    # nothing of the sweep carries the token
    for f in out.rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f
    # without a token: refused before connecting, one line
    r = subprocess.run([str(DDPGKIT_BIN), "sweep", str(spec), "--out", str(tmp_path / "x"), "--address", address],
                       env=dict(base, HOME=str(home)), capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "no Ray auth token" in lines[0]


def test_a_client_without_the_token_is_refused_by_the_cluster(cluster, tmp_path):
    """The cluster itself refuses a client that presents a wrong token, or none (auth disabled)."""
    address, token = cluster.address, cluster.token
    home = tmp_path / "h"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    connect = (f"import logging, ray\ntry:\n    ray.init(address='{address}', logging_level=logging.ERROR)\n"
               "    print('CONNECTED')\nexcept Exception as e:\n    print('REFUSED', type(e).__name__)")
    for env in (dict(base, HOME=str(home), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-" + token),
                dict(base, HOME=str(home), RAY_AUTH_MODE="disabled")):
        r = subprocess.run([sys.executable, "-c", connect], env=env, capture_output=True, text=True, timeout=120)
        assert "REFUSED" in r.stdout and "CONNECTED" not in r.stdout, r.stdout + r.stderr
        assert "InvalidAuthToken" in r.stderr  # the server's answer
    good = subprocess.run([sys.executable, "-c", connect], env=dict(base, HOME=str(home), RAY_AUTH_MODE="token",
                                                                     RAY_AUTH_TOKEN=token),
                          capture_output=True, text=True, timeout=120)
    assert "CONNECTED" in good.stdout


def test_a_node_lost_mid_trial_its_group_finishes_on_the_other_with_the_uninterrupted_weights(cluster, tmp_path):
    """Two groups of two seeds, one task on each node. Once the worker node's group has a checkpoint, every process
    of that node (its raylet, its Ray worker) is killed at once: the node is lost. Ray retries the task on the head
    node, which resumes the group from its common checkpoint; both groups end with the weights of uninterrupted
    runs of their seeds."""
    spec = tmp_path / "lost.toml"
    config = {**TINY, "total_steps": 4000}
    spec.write_text('envs = ["Pendulum-v1"]\nseeds = [0, 1, 2, 3]\npreset = "pendulum"\nseeds_per_task = 2\n'
                    "[config]\n" + "".join(f"{k} = {v}\n" for k, v in config.items()))
    home = tmp_path / "client-home"
    home.mkdir()
    env = dict({k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, HOME=str(home),
               RAY_AUTH_TOKEN=cluster.token)
    out = tmp_path / "sweep"
    trials = SweepSpec.load(spec).trials(out)
    driver = subprocess.Popen([str(DDPGKIT_BIN), "sweep", str(spec), "--out", str(out), "--address", cluster.address],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lost = None
    try:
        deadline = time.time() + 240
        while lost is None and time.time() < deadline and driver.poll() is None:
            for t in trials:
                pid = _worker_writing((t.run_dir / "metrics.csv").resolve()) if t.run_dir.exists() else None
                steps = _checkpoint_steps(t.run_dir) if t.run_dir.exists() else []
                if pid is not None and os.getsid(pid) == cluster.worker_session and steps and max(steps) >= 600:
                    lost = t.run_dir
                    for p in session_processes({cluster.worker_session}):  # the whole node at once
                        try:
                            os.kill(p, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    break
            time.sleep(0.05)
        stdout, stderr = driver.communicate(timeout=420)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert lost is not None, "no group trained on the worker node long enough to lose it"
    assert driver.returncode == 0, stderr
    assert stdout.count("| done |") == 4, stdout
    by_seed = {t.config.seed: t for t in trials}
    for seeds in ([0, 1], [2, 3]):
        runs = [by_seed[s].run_dir for s in seeds]
        refs = run_experiment("Pendulum-v1", by_seed[seeds[0]].config, [tmp_path / f"ref{s}" for s in seeds],
                              seeds=seeds, preset="pendulum")
        for run, ref in zip(runs, refs):
            summary = read_summary(run)
            assert summary["steps"] == 4000
            if lost in runs:  # the lost node's group continued from its checkpoint on the head node, not from 0
                assert summary["resumed"] is True
            assert same(model(final_checkpoint(run)), ref.agent.model_tensors()), run
