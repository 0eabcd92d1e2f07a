"""Sweeps: a grid of env ids × seeds × values of any :class:`~ddpgkit.DDPGConfig` field, each trial an
ordinary run directory trained by :func:`~ddpgkit.experiments.run.prepare_experiment`, scheduled on Ray.

A spec is a TOML file::

    envs = ["Pendulum-v1"]          # required: Gymnasium ids
    seeds = "0-9"                   # required: a list of seeds, a range "a-b" (inclusive) or "0-4,10"
    preset = "pendulum"             # optional: the base preset [default: each env's entry in the
                                    #   hyperparameter table, else the general defaults]
    cpus_per_trial = 1              # optional (default 1); gpus_per_trial = 0.0 (a fraction is fine)
    max_retries = 3                 # optional: retries of a trial whose worker process or node dies
    seeds_per_task = 0              # optional: seeds trained together in one worker (ddpgkit.agents.group),
                                    #   0 = every seed of a combination (default), 1 = one run a task

    [config]                        # optional: DDPGConfig values for every trial
    total_steps = 20000

    [grid]                          # optional: a list of values per DDPGConfig field (or "preset")
    tau = [0.005, 0.01]

Each trial's config comes from :func:`~ddpgkit.config.resolve.resolve_config`, as ``ddpgkit train``'s does:
the base (``preset``, else the env's table entry), then ``[config]`` and the grid's values; a warm-up
too long for ``total_steps`` is adapted the same way and said in the same words (:attr:`Trial.notes`).

Trials run as Ray tasks: the seeds of one env and combination, which share their config, train
together in one task as one experiment (a group of seeds, :class:`ddpgkit.agents.group.DDPGGroup`, one run
directory each; split into tasks of ``seeds_per_task``; one a task where the config cannot be stacked:
``backward = autograd`` or ``compile``). A trial checkpoints as ``ddpgkit train`` does; if its worker dies (kill -9,
a lost node) Ray runs it again and it resumes from its newest checkpoint (``resume=True``), ending with
the weights an uninterrupted trial has. A trial that fails on its own (an unknown env, NaN from the
env, a bad value) is reported with its one-line error and the others go on. Running the same sweep
again skips finished trials and resumes unfinished ones.

Ray: without ``address`` a local instance is started on this machine's cores, listening on 127.0.0.1
only, with token authentication on, and stopped at the end. With ``address`` the sweep joins that cluster
with its token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``); the token is never
written into the sweep directory. Every node must see the sweep directory at the same path (a shared
file system), as the trials write their run directories there.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import itertools
import json
import logging
import math
import os
import re
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any

from ..agents.group import stackable
from ..config.ddpg import DDPGConfig
from ..config.presets import PRESETS
from ..config.resolve import resolve_config
from ..config.seeds import parse_seeds
from ..errors import ConfigError, DDPGKitError, NonFiniteError, RunError, RunFinished, one_line
from ..storage.atomic import atomic_write_text, ensure_writable_dir
from ..storage.rundir import METRICS, RunLock, read_metrics, read_summary, run_diverged, run_finished
from .run import prepare_experiment

# Ray reads its environment once, when it is imported (an optional extra: imported by _import_ray):
# RAY_AUTH_MODE, and, for a local instance, the switch that keeps its node address on loopback.
AUTH_MODE, LOOPBACK = "RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

SPEC_KEYS = {"envs", "seeds", "preset", "cpus_per_trial", "gpus_per_trial", "max_retries", "seeds_per_task", "config",
             "grid"}
TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"


class SweepError(DDPGKitError, ValueError):
    """A sweep spec is invalid, or the sweep cannot run (no Ray, no token, no cluster)."""


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: an env, a preset, the values that vary, a seed, its config, its run directory, where
    its config came from and what was adapted (:func:`~ddpgkit.config.resolve.resolve_config`, recorded in the
    run)."""

    name: str
    env_id: str
    preset: str | None
    varied: dict[str, Any]
    seed: int
    config: DDPGConfig
    run_dir: Path
    origin: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass
class SweepSpec:
    envs: list[str]
    seeds: list[int]
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_retries: int = 3
    seeds_per_task: int = 0

    @classmethod
    def load(cls, path: str | Path) -> SweepSpec:
        """Read a spec from a TOML file; an unreadable file, invalid TOML or a bad key raises SweepError naming it."""
        return cls.from_dict(read_spec(path, SweepError), str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> SweepSpec:
        """Build from a parsed TOML mapping; unknown keys and wrong types are named in the error
        (``source``: where the mapping came from)."""
        envs = spec_envs(data, SPEC_KEYS, source, SweepError)
        seeds = _parse_seeds(data.get("seeds"), source)
        preset = data.get("preset")
        if preset is not None and preset not in PRESETS:
            raise SweepError(f"{source}: unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        config, grid = data.get("config", {}), data.get("grid", {})
        if not isinstance(config, dict) or not isinstance(grid, dict):
            raise SweepError(f"{source}: [config] and [grid] must be tables")
        known = {f.name for f in fields(DDPGConfig)}
        for table, keys in (("config", config), ("grid", grid)):
            for key in keys:
                if key in ("seed",):
                    raise SweepError(f"{source}: [{table}] cannot set seed; list seeds in `seeds`")
                if key not in known and not (table == "grid" and key == "preset"):
                    close = difflib.get_close_matches(key, known, n=1)
                    raise SweepError(f"{source}: [{table}] unknown key {key!r}"
                                     + (f"; did you mean {close[0]!r}?" if close else ""))
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"{source}: [grid] {key} must be a non-empty list of values")
            if key == "preset" and any(v not in PRESETS for v in values):
                raise SweepError(f"{source}: [grid] preset values must be among {', '.join(PRESETS)}")
        res = {}
        for key, default in (("cpus_per_trial", 1.0), ("gpus_per_trial", 0.0)):
            v = data.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise SweepError(f"{source}: {key} must be a number >= 0, got {v!r}")
            res[key] = float(v)
        if res["cpus_per_trial"] <= 0:
            raise SweepError(f"{source}: cpus_per_trial must be > 0")
        retries = data.get("max_retries", 3)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise SweepError(f"{source}: max_retries must be an integer >= 0, got {retries!r}")
        per_task = data.get("seeds_per_task", 0)
        if isinstance(per_task, bool) or not isinstance(per_task, int) or per_task < 0:
            raise SweepError(f"{source}: seeds_per_task must be an integer >= 0 (0: all seeds of a combination), "
                             f"got {per_task!r}")
        spec = cls(list(envs), seeds, preset, dict(config), {k: list(v) for k, v in grid.items()},
                   res["cpus_per_trial"], res["gpus_per_trial"], retries, per_task)
        spec.trials(Path("."))  # every combination must be a valid config, named now rather than mid-sweep
        return spec

    def trials(self, out: Path) -> list[Trial]:
        """Every trial: envs × grid combinations × seeds, in that order."""
        keys = list(self.grid)
        combos = list(itertools.product(*(self.grid[k] for k in keys))) or [()]
        out_trials, names = [], set()
        for env_id in self.envs:
            for combo in combos:
                varied = dict(zip(keys, combo))
                preset = varied.get("preset", self.preset)
                values = {k: v for k, v in varied.items() if k != "preset"}
                for seed in self.seeds:
                    try:
                        resolved = resolve_config(env_id, preset, values={**self.config, **values, "seed": seed})
                    except ConfigError as e:
                        raise SweepError(f"{env_id} {_label(varied)} seed {seed}: {e}") from None
                    name = _slug(f"{env_id}-{_label(varied)}-s{seed}" if varied else f"{env_id}-s{seed}")
                    if name in names:
                        raise SweepError(f"two trials would share the run directory {name}")
                    names.add(name)
                    out_trials.append(Trial(name, env_id, preset, varied, seed, resolved.config, out / "runs" / name,
                                            resolved.origin, resolved.notes))
        return out_trials


    def tasks(self, trials: list[Trial]) -> list[list[Trial]]:
        """The trials grouped into worker tasks: consecutive trials of one env and combination (one config
        but the seed), at most ``seeds_per_task`` (0: all) to a task, one a task where a group cannot
        train the config stacked (:func:`ddpgkit.agents.group.stackable`)."""
        out: list[list[Trial]] = []
        for t in trials:
            last = out[-1] if out else None
            joins = (last is not None and last[0].env_id == t.env_id and last[0].varied == t.varied
                     and (self.seeds_per_task == 0 or len(last) < self.seeds_per_task) and stackable(t.config))
            if joins and last is not None:
                last.append(t)
            else:
                out.append([t])
        return out


def spec_envs(data: dict[str, Any], keys: set[str], source: str, error: type[Exception]) -> list[str]:
    """A spec's (a sweep's, a study's) keys checked against ``keys`` (an unknown one named with the nearest) and its
    ``envs``: a non-empty list of ids (one id alone taken as a list); ``error`` in one line otherwise."""
    for key in data:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            raise error(f"{source}: unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    envs = data.get("envs")
    if isinstance(envs, str):
        envs = [envs]
    if not (isinstance(envs, list) and envs and all(isinstance(e, str) and e for e in envs)):
        raise error(f"{source}: envs must be a non-empty list of Gymnasium ids")
    return list(envs)


def read_spec(path: str | Path, error: type[Exception]) -> dict[str, Any]:
    """A spec file's TOML mapping (a sweep's, a study's); an unreadable file or invalid TOML raises ``error`` naming
    the file in one line."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise error(f"{path}: invalid TOML: {one_line(e)}") from None


def _parse_seeds(value: Any, source: str) -> list[int]:
    if isinstance(value, str):  # "0-9", "0,3,7": the same text `train --seeds` takes
        try:
            return parse_seeds(value)
        except ConfigError:
            raise SweepError(f"{source}: seeds must be a list of integers or a range like '0-9', "
                             f"got {value!r}") from None
    if (isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in value) and len(set(value)) == len(value)):
        return list(value)
    raise SweepError(f"{source}: seeds must be a non-empty list of distinct integers >= 0 or a range like '0-9'")


def _label(varied: dict[str, Any]) -> str:
    return "-".join(f"{k}={'x'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in varied.items())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


# ---- one trial, in a worker process ------------------------------------------------------------

def run_task(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Train the trials of one task (``payload["trials"]``: their configs and run directories) together as one
    experiment (:func:`~ddpgkit.experiments.run.prepare_experiment`: a group of seeds, or a single run),
    resuming from their newest common checkpoint. One result per trial: ``{"status": "done", "summary":
    ...}`` (also when they had finished already: a retry after the final save, or a re-run; and for runs that
    diverged, whose summary says so), or ``{"status": "failed", "error": one line}``; a dying worker process is
    Ray's to retry."""
    trials = payload["trials"]
    run_dirs = [Path(t["run_dir"]) for t in trials]
    try:
        configs = [DDPGConfig.from_dict(t["config"], "trial") for t in trials]
        try:
            exp = prepare_experiment(payload["env_id"], configs[0], run_dirs, seeds=[c.seed for c in configs],
                                     preset=payload["preset"], resume=True, origin=payload.get("origin"))
        except RunFinished:
            return [{"status": "done", "summary": read_summary(d)} for d in run_dirs]
        try:
            return [{"status": "done", "summary": r.summary} for r in exp.run()]
        except NonFiniteError:  # the task's last training run diverged: every run of it has its diverged summary
            if all(run_diverged(d) for d in run_dirs):
                return [{"status": "done", "summary": read_summary(d)} for d in run_dirs]
            raise
    except DDPGKitError as e:
        return [{"status": "failed", "error": one_line(e)}] * len(trials)
    except Exception as e:  # noqa: BLE001 - a task's own failure must not stop the others
        return [{"status": "failed", "error": one_line(f"{type(e).__name__}: {e}")}] * len(trials)


# ---- the driver --------------------------------------------------------------------------------

@dataclass
class TrialStatus:
    """What the driver knows of a trial: state pending/running/done/failed/skipped (finished before), or diverged
    (its update turned non-finite: it stopped, its group went on), and its progress read from its run directory
    (steps, env steps/s, the latest evaluation)."""

    trial: Trial
    state: str = "pending"
    steps: int = 0
    steps_per_s: float | None = None
    last_eval: float | None = None
    final_eval: float | None = None
    best_eval: float | None = None
    wall_s: float | None = None
    error: str | None = None

    def refresh(self) -> None:
        """Read the progress from the run directory's metrics.csv (written and flushed while it trains)."""
        if not (self.trial.run_dir / METRICS).is_file():
            return
        try:
            rows = read_metrics(self.trial.run_dir)
        except RunError:
            return  # a row being written
        if rows:
            self.steps = int(rows[-1]["step"] or 0)
            rates = [r["steps_per_s"] for r in rows if r.get("steps_per_s") is not None]
            self.steps_per_s = rates[-1] if rates else None
            evals = [r["eval_mean"] for r in rows if r.get("eval_mean") is not None]
            self.last_eval = evals[-1] if evals else None
            self.best_eval = max(evals) if evals else None


@dataclass
class SweepResult:
    out: Path
    statuses: list[TrialStatus]
    files: list[Path]

    @property
    def failed(self) -> list[TrialStatus]:
        """The trials that did not finish (after their retries)."""
        return [s for s in self.statuses if s.state == "failed"]


RESULT_COLUMNS = ("trial", "env_id", "varied", "seed", "status", "final_eval", "best_eval", "steps", "wall_s",
                  "run_dir", "error")


def _finished(trial: Trial) -> bool:
    return run_finished(trial.run_dir, trial.config.total_steps)


def token_available() -> bool:
    """Whether this process can present a Ray auth token: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH
    names, or ~/.ray/auth_token (Ray's own order)."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return True
    path = os.environ.get(TOKEN_PATH_ENV)
    if path:
        try:
            return bool(Path(path).read_text().strip())
        except OSError:
            return False
    try:
        return bool((Path.home() / ".ray" / "auth_token").read_text().strip())
    except OSError:
        return False


@contextlib.contextmanager
def _stderr_to(log: Path) -> Iterator[None]:
    """Send this process's file descriptor 2 to ``log`` for a while: Ray's C++ client writes its retry
    warnings there directly (many lines while it waits for a cluster), which would bury the one line
    a failure gets."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "ab") as fh:
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _import_ray(local: bool) -> ModuleType:
    """Import Ray set up for this sweep: token authentication on, and for a local instance the node
    address 127.0.0.1, on which Ray's servers listen on loopback only (Ray's setting for single-machine
    clusters, the default on macOS and Windows; on Linux its servers otherwise listen on every
    interface). Ray reads both once, at import, so a process that imported it otherwise is refused."""
    if "ray" not in sys.modules:
        os.environ.setdefault(AUTH_MODE, "token")
        if local:
            os.environ[LOOPBACK] = "0"
        else:
            os.environ.pop(LOOPBACK, None)
    try:
        import ray  # an optional extra: pip install 'ddpgkit[ray]'
    except ImportError:
        raise SweepError("ddpgkit sweep runs on Ray, which is not installed: pip install 'ddpgkit[ray]'") from None
    mode = os.environ.get(AUTH_MODE, "").lower()
    if mode != "token":
        raise SweepError(f"{AUTH_MODE}={mode or '(unset)'} when Ray was imported: ddpgkit keeps Ray's token "
                         "authentication on (an unauthenticated cluster runs code for anyone who reaches its ports); "
                         f"set {AUTH_MODE}=token before Ray is imported")
    if local and os.environ.get(LOOPBACK) != "0":
        raise SweepError("Ray was imported before the sweep could keep its local instance on 127.0.0.1 (on Linux "
                         f"Ray otherwise listens on every interface): run the sweep in a fresh process, or set "
                         f"{LOOPBACK}=0 before importing Ray")
    if not local and os.environ.get(LOOPBACK) == "0":
        raise SweepError(f"this process's Ray was set up for a local instance ({LOOPBACK}=0); join a cluster from "
                         "a fresh process")
    return ray


def _start_ray(address: str | None, num_cpus: int | None) -> ModuleType:
    ray = _import_ray(local=address is None)
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False,
                 configure_logging=True)
    try:
        if address is None:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), **quiet)  # always a new instance
        else:
            if not token_available():
                raise SweepError(f"--address {address}: no Ray auth token here; set {TOKEN_ENV} (or {TOKEN_PATH_ENV}) "
                                 "to the cluster's token, or put it in ~/.ray/auth_token (ray get-auth-token)")
            quiet.pop("include_dashboard")
            ray.init(address=address, **quiet)
    except SweepError:
        raise
    except Exception as e:  # ConnectionError, RayError, RuntimeError, ...: one line, whatever Ray raised
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise SweepError(f"cannot start {where}: {one_line(e)[:300]}") from None
    return ray


def run_sweep(spec: SweepSpec, out: str | Path, *, address: str | None = None, num_cpus: int | None = None,
              on_progress: Callable[[list[TrialStatus]], None] | None = None, poll_s: float = 1.0) -> SweepResult:
    """Run every trial of ``spec`` under ``out`` on Ray (module doc) and write results.csv and
    results.md there. ``on_progress`` is called with every trial's status about every ``poll_s``."""
    out = ensure_writable_dir(Path(out).resolve())
    lock = RunLock(out, what="sweep")  # one driver per sweep directory (its trials lock their run directories)
    try:
        return _run_sweep(spec, out, address, num_cpus, on_progress, poll_s)
    finally:
        lock.release()


def _run_sweep(spec: SweepSpec, out: Path, address: str | None, num_cpus: int | None,
               on_progress: Callable[[list[TrialStatus]], None] | None, poll_s: float) -> SweepResult:
    trials = spec.trials(out)
    statuses = [TrialStatus(t) for t in trials]
    todo = []
    for s in statuses:
        if _finished(s.trial):
            s.state = "diverged" if run_diverged(s.trial.run_dir) else "skipped"
            _fill_from_summary(s)
        else:
            todo.append(s)
    (out / "runs").mkdir(exist_ok=True)
    started = time.perf_counter()
    if todo:
        with _stderr_to(out / "ray-driver.log"):  # Ray's own console output, kept out of the way
            ray = _start_ray(address, num_cpus)
        try:
            remote = ray.remote(run_task)
            refs = {}
            by_trial = {s.trial.name: s for s in todo}
            for task in spec.tasks([s.trial for s in todo]):
                t = task[0]
                payload = {"env_id": t.env_id, "preset": t.preset, "origin": t.origin,
                           "trials": [{"config": x.config.to_dict(), "run_dir": str(x.run_dir)} for x in task]}
                name = t.name if len(task) == 1 else f"{t.name}+{len(task) - 1}"
                ref = remote.options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial,
                                     max_retries=spec.max_retries, retry_exceptions=False,
                                     name=f"ddpgkit-trial:{name}").remote(payload)
                refs[ref] = [by_trial[x.name] for x in task]
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=poll_s)
                for ref in ready:
                    _collect(ray, refs[ref], ref)
                for s in todo:
                    if s.state in ("pending", "running"):
                        s.refresh()
                        if s.steps > 0:
                            s.state = "running"
                if on_progress is not None:
                    on_progress(statuses)
        finally:
            with _stderr_to(out / "ray-driver.log"):
                ray.shutdown()
    elapsed = time.perf_counter() - started
    files = _write_results(out, statuses, elapsed)
    if on_progress is not None:
        on_progress(statuses)
    return SweepResult(out, statuses, files)


def _collect(ray: ModuleType, statuses: list[TrialStatus], ref: Any) -> None:
    try:
        results = ray.get(ref)
    except ray.exceptions.RayError as e:  # the worker died more often than max_retries, or the node was lost
        for status in statuses:
            status.state, status.error = "failed", one_line(f"{type(e).__name__}: {e}")[:300]
        return
    for status, result in zip(statuses, results):
        if result["status"] == "done":
            status.state = "diverged" if result["summary"].get("status") == "diverged" else "done"
            _fill_from_summary(status, result["summary"])
        else:
            status.state, status.error = "failed", result["error"]
            status.refresh()


def _fill_from_summary(status: TrialStatus, summary: dict[str, Any] | None = None) -> None:
    summary = summary if summary is not None else read_summary(status.trial.run_dir)
    status.refresh()
    status.steps = int(summary.get("steps", status.steps))
    status.final_eval = summary.get("final_eval_mean")
    status.wall_s = summary.get("train_s")


def _write_results(out: Path, statuses: list[TrialStatus], elapsed: float) -> list[Path]:
    rows = []
    for s in statuses:
        t = s.trial
        rows.append({"trial": t.name, "env_id": t.env_id, "varied": _label(t.varied) or "-", "seed": t.seed,
                     "status": s.state, "final_eval": _num(s.final_eval), "best_eval": _num(s.best_eval),
                     "steps": s.steps, "wall_s": _num(s.wall_s), "run_dir": str(t.run_dir.relative_to(out)),
                     "error": s.error or ""})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = atomic_write_text(out / "results.csv", buf.getvalue())
    md_path = atomic_write_text(out / "results.md", results_markdown(rows, elapsed))
    json_path = atomic_write_text(out / "sweep.json", json.dumps({"trials": rows, "driver_wall_s": elapsed},
                                                                  indent=1) + "\n")
    return [csv_path, md_path, json_path]


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def results_markdown(rows: list[dict[str, Any]], elapsed: float | None = None) -> str:
    """The results table: a row per trial (what differs from the base config, seed, status, final and
    best evaluation, steps, training time)."""
    lines = ["| env | varied | seed | status | final eval | best eval | steps | train s |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        status = r["status"] + (f": {r['error']}" if r.get("error") else "")
        lines.append(f"| {r['env_id']} | {r['varied']} | {r['seed']} | {status} | {r['final_eval']} | "
                     f"{r['best_eval']} | {r['steps']} | {r['wall_s']} |")
    if elapsed is not None:
        lines.append(f"\nsweep wall time: {elapsed:.1f} s")
    return "\n".join(lines) + "\n"
