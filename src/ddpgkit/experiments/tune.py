"""Hyperparameter search whose every trial is a group of seeds: ``ddpgkit tune``.

A spec is a TOML file::

    envs = ["Pendulum-v1"]          # required: Gymnasium ids (several: one configuration for all, see normalize)
    preset = "pendulum"             # optional: the base [default: each env's entry in the hyperparameter table]
    trials = 20                     # required: trials in the study
    budget = 20000                  # required: env steps a trial's run trains (total_steps)
    tune_seeds = "0-4"              # required: the seeds of every trial, trained together as one group
    test_seeds = "100-109"          # required: the seeds the best and the base configuration are tested on
                                    #   (never the tuning seeds: Eimer et al. 2023)
    objective = "final"             # optional: "final" (IQM of the runs' final evaluations, default) or "auc"
                                    #   (the area under the IQM curve: the mean of the IQM over the evaluations)
    pruner = "median"               # optional: "median" (default), "halving" (successive halving) or "none"
    seed = 0                        # optional: the sampler's seed (TPE, multivariate)
    parallel = 2                    # optional: trials at once [default: the Ray instance's CPUs / cpus_per_trial]
    cpus_per_trial = 1              # optional: CPUs of one trial's task (one per env)

    [config]                        # optional: fixed DDPGConfig values of every trial (eval_interval, ...)
    eval_episodes = 10

    [space]                         # optional [default: DEFAULT_SPACE, the zoo's DDPG space]
    tau = {low = 0.001, high = 0.05, log = true}        # a float range (log scale with log = true)
    batch_size = {choices = [64, 128, 256]}             # choices (lists such as hidden = [[64, 64], [256, 256]])
    updates_per_step = {low = 1, high = 4, int = true}  # an integer range

    [normalize]                     # required with several envs: each env's score range, [low, high]
    "Pendulum-v1" = [-1500, -150]

The search is Optuna's (TPE, multivariate, seeded), its study a journal file in the tune directory
(``study.journal``): killing the driver at any moment and running the same command again continues the study —
finished, pruned and failed trials are kept; trials in flight are resumed from their runs' checkpoints (each run is
an ordinary run directory, ``trials/NNNN/ENV-sSEED``) and counted once. A trial trains its config on the tuning
seeds as one group (:func:`~ddpgkit.experiments.run.prepare_experiment`, one Ray task per env, run by the sweep's
:func:`~ddpgkit.experiments.sweep.run_task` on a Ray instance started as the sweep starts it: local on loopback, or
``address`` with its token). At every evaluation the driver reports the group's IQM (normalized, averaged over envs)
at that env step to the pruner, and a trial the pruner stops is cancelled and recorded as pruned with the step it
reached. A trial that fails or diverges is recorded as failed with its one line; the study goes on.

:func:`finish` (at the end, or ``ddpgkit tune DIR --finish``): the best trial's configuration is written as
``best.toml`` (every field, for ``ddpgkit train --config``) and ``test_sweep.toml`` (a sweep spec of it on the test
seeds), then it and the base configuration are trained on the test seeds (``test/tuned-NNNN``, ``test/base``) and
reported with :func:`~ddpgkit.analysis.report.make_report` (IQM with CI of each, P(tuned > base)). ``tune.md``
lists the trials, Optuna's parameter importances and two figures (the objective over trials, each parameter
against it).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.figure import subplots
from ..analysis.report import Report, make_report
from ..analysis.stats import iqm, stratified_bootstrap_ci
from ..config.ddpg import DDPGConfig
from ..config.hyperparams import defaults_for
from ..config.presets import PRESETS
from ..config.resolve import resolve_config
from ..config.seeds import parse_seeds, seed_ranges
from ..errors import ConfigError, one_line
from ..storage.atomic import atomic_write_text, ensure_writable_dir
from ..storage.rundir import RunError, RunLock, read_metrics, read_summary, run_finished
from .sweep import SweepError, _start_ray, _stderr_to, read_spec, run_task, spec_envs

SPEC_KEYS = {"envs", "preset", "trials", "budget", "tune_seeds", "test_seeds", "objective", "pruner", "seed",
             "parallel", "cpus_per_trial", "config", "space", "normalize"}
OBJECTIVES = ("final", "auc")
PRUNERS = ("median", "halving", "none")

#: The default search space, rl-baselines3-zoo's DDPG/TD3 space (its hyperparams_opt.py), in ddpgkit's fields
#: (the zoo's one learning rate for both networks is two here; its noise std range [0, 1] is kept at [0, 0.5], where
#: DDPG explores at all without saturating the actions).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "gamma": {"choices": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]},
    "actor_lr": {"low": 1e-5, "high": 1e-2, "log": True},
    "critic_lr": {"low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"choices": [16, 32, 64, 100, 128, 256, 512]},
    "tau": {"choices": [0.001, 0.005, 0.01, 0.02, 0.05, 0.08]},
    "noise": {"choices": ["gaussian", "ou"]},
    "noise_scale": {"low": 0.0, "high": 0.5},
    "hidden": {"choices": [[64, 64], [256, 256], [400, 300]]},
    "updates_per_step": {"choices": [1, 2]},
}


class TuneError(SweepError):
    """A tune spec or directory is invalid, or the study cannot run."""


@dataclass(frozen=True)
class Param:
    """One dimension of the search space: a float or integer range (``log`` scale) or ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> Any:
        """The Optuna distribution (choices that are lists, such as ``hidden``, as the strings "64-64")."""
        import optuna  # noqa: PLC0415 - the tune extra, imported when a study starts

        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution([_encode(c) for c in self.choices])
        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def value(self, sampled: Any) -> Any:
        """The config value of a sampled one."""
        return _decode(sampled) if self.choices is not None else sampled


def _encode(choice: Any) -> Any:
    return "-".join(map(str, choice)) if isinstance(choice, list) else choice


def _decode(choice: Any) -> Any:
    if isinstance(choice, str) and choice and all(p.isdigit() for p in choice.split("-")):
        return [int(p) for p in choice.split("-")]
    return choice


def _param(name: str, data: Any, source: str) -> Param:
    where = f"{source}: [space] {name}"
    if not isinstance(data, dict):
        raise TuneError(f"{where} must be a table: {{low, high[, log, int]}} or {{choices = [...]}}")
    unknown = set(data) - {"low", "high", "log", "int", "choices"}
    if unknown:
        raise TuneError(f"{where}: unknown key {sorted(unknown)[0]!r} (keys: low, high, log, int, choices)")
    if "choices" in data:
        choices = data["choices"]
        if set(data) != {"choices"} or not isinstance(choices, list) or not choices:
            raise TuneError(f"{where}: choices must be a non-empty list, alone in its table")
        return Param(name, choices=tuple(choices))
    low, high = data.get("low"), data.get("high")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
    if not numbers or not low < high:
        raise TuneError(f"{where}: needs numbers low < high, got {low!r}, {high!r}")
    log, integer = data.get("log", False), data.get("int", False)
    if not isinstance(log, bool) or not isinstance(integer, bool):
        raise TuneError(f"{where}: log and int must be true or false")
    if log and low <= 0:
        raise TuneError(f"{where}: a log scale needs low > 0, got {low!r}")
    if integer and not (float(low).is_integer() and float(high).is_integer()):
        raise TuneError(f"{where}: an integer range needs integer bounds, got {low!r}, {high!r}")
    return Param(name, float(low), float(high), log, integer)


@dataclass
class TuneSpec:
    """A tune spec (module doc), validated when read."""

    envs: list[str]
    trials: int
    budget: int
    tune_seeds: list[int]
    test_seeds: list[int]
    preset: str | None = None
    objective: str = "final"
    pruner: str = "median"
    seed: int = 0
    parallel: int = 0
    cpus_per_trial: float = 1.0
    config: dict[str, Any] = field(default_factory=dict)
    space: list[Param] = field(default_factory=list)
    normalize: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> TuneSpec:
        """Read a spec; an unreadable file, invalid TOML or a bad key raises TuneError naming it."""
        return cls.from_dict(cls.raw(path), str(path))

    @staticmethod
    def raw(path: str | Path) -> dict[str, Any]:
        """The spec file's mapping as read (recorded in the tune directory), or TuneError in one line."""
        return read_spec(path, TuneError)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "spec") -> TuneSpec:
        """Build from a parsed mapping; every error names ``source`` and the key."""
        envs = spec_envs(data, SPEC_KEYS, source, TuneError)
        ints = {}
        for key, low in (("trials", 1), ("budget", 1), ("seed", 0), ("parallel", 0)):
            v = data.get(key, 0 if key in ("seed", "parallel") else None)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise TuneError(f"{source}: {key} must be an integer >= {low}, got {v!r}")
            ints[key] = v
        seeds = {}
        for key in ("tune_seeds", "test_seeds"):
            v = data.get(key)
            try:
                seeds[key] = parse_seeds(v) if isinstance(v, str) else list(v) if isinstance(v, list) else None
            except ConfigError:
                seeds[key] = None
            if not seeds[key] or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds[key]):
                raise TuneError(f"{source}: {key} must be a list of seeds or a range like '0-4', got {v!r}")
        overlap = set(seeds["tune_seeds"]) & set(seeds["test_seeds"])
        if overlap:
            raise TuneError(f"{source}: test_seeds must not include tuning seeds (both have {sorted(overlap)}): a "
                            "configuration is tested on seeds the search never saw")
        preset = data.get("preset")
        if preset is not None and preset not in PRESETS:
            raise TuneError(f"{source}: unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        objective, pruner = data.get("objective", "final"), data.get("pruner", "median")
        if objective not in OBJECTIVES:
            raise TuneError(f"{source}: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if pruner not in PRUNERS:
            raise TuneError(f"{source}: pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
        cpus = data.get("cpus_per_trial", 1.0)
        if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0:
            raise TuneError(f"{source}: cpus_per_trial must be a number > 0, got {cpus!r}")
        config, space, norm = data.get("config", {}), data.get("space"), data.get("normalize", {})
        if not isinstance(config, dict) or not isinstance(norm, dict) or not isinstance(space, (dict, type(None))):
            raise TuneError(f"{source}: [config], [space] and [normalize] must be tables")
        known = {f.name for f in fields(DDPGConfig)}
        for key in [*config, *(space or {})]:
            if key in ("seed", "total_steps"):
                raise TuneError(f"{source}: {key} is set by the spec (tune_seeds / test_seeds, budget), not in a table")
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                raise TuneError(f"{source}: unknown DDPGConfig field {key!r}"
                                + (f"; did you mean {close[0]!r}?" if close else ""))
        params = [_param(k, v, source) for k, v in (space if space is not None else DEFAULT_SPACE).items()]
        clash = set(config) & {p.name for p in params}
        if clash:
            raise TuneError(f"{source}: {sorted(clash)[0]} is both fixed in [config] and searched in [space]")
        ranges = {}
        if len(envs) > 1 or norm:
            for env in envs:
                r = norm.get(env)
                if not (isinstance(r, list) and len(r) == 2 and all(isinstance(x, (int, float)) for x in r)
                        and r[0] < r[1]):
                    raise TuneError(f"{source}: [normalize] needs {env!r} = [low, high] with low < high (several envs "
                                    "are scored on one scale)")
                ranges[env] = (float(r[0]), float(r[1]))
        spec = cls(list(envs), ints["trials"], ints["budget"], seeds["tune_seeds"], seeds["test_seeds"], preset,
                   objective, pruner, ints["seed"], ints["parallel"], float(cpus), dict(config), params, ranges)
        lows = {p.name: _low_value(p) for p in params}
        for p in params:  # every value of every dimension (the others at their first), checked now, not mid-study
            for v in ([p.value(_encode(c)) for c in p.choices] if p.choices is not None else
                      [int(p.low), int(p.high)] if p.integer else [p.low, p.high]):
                spec.configs({**lows, p.name: v}, spec.tune_seeds[:1])
        return spec

    def configs(self, values: dict[str, Any], seeds: list[int]) -> dict[str, list[DDPGConfig]]:
        """Each env's configs of ``values`` (a trial's parameters) over ``seeds``: base <- [config] <- values, with
        the budget (:func:`~ddpgkit.config.resolve.resolve_config`)."""
        out = {}
        for env in self.envs:
            try:
                out[env] = [resolve_config(env, self.preset, values={**self.config, **values,
                                                                     "total_steps": self.budget, "seed": s}).config
                            for s in seeds]
            except ConfigError as e:
                raise TuneError(f"{env} {values}: {e}") from None
        return out

    def score(self, env: str, value: float) -> float:
        """An env's score on the study's scale: normalized by its [normalize] range, or as it is (one env)."""
        if env not in self.normalize:
            return value
        low, high = self.normalize[env]
        return (value - low) / (high - low)


def _low_value(p: Param) -> Any:
    return p.value(_encode(p.choices[0])) if p.choices is not None else (int(p.low) if p.integer else p.low)


# ---- the study --------------------------------------------------------------------------------

@dataclass
class TrialState:
    """What the driver knows of one trial: its number, parameters, state (running / complete / pruned / failed),
    value, the step it reached and the error of a failed one."""

    number: int
    params: dict[str, Any]
    state: str = "running"
    value: float | None = None
    step: int = 0
    error: str | None = None
    low: float | None = None  # the objective's 95% interval over the seeds (stratified bootstrap) when complete
    high: float | None = None
    reported: set[int] = field(default_factory=set)


@dataclass
class TuneResult:
    out: Path
    trials: list[TrialState]
    best: TrialState | None
    files: list[Path]
    report: Report | None = None


def _optuna() -> Any:
    try:
        import optuna  # noqa: PLC0415 - the tune extra: pip install 'ddpgkit[tune]'
    except ImportError:
        raise TuneError("ddpgkit tune searches with Optuna, which is not installed: pip install 'ddpgkit[tune]'") \
            from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(spec: TuneSpec, out: Path) -> Any:
    """The study in ``out/study.journal`` (created, or loaded to continue): TPE (multivariate, seeded) and the
    spec's pruner, maximizing the objective."""
    optuna = _optuna()
    from optuna.storages import JournalStorage  # noqa: PLC0415
    from optuna.storages.journal import JournalFileBackend  # noqa: PLC0415

    storage = JournalStorage(JournalFileBackend(str(out / "study.journal")))
    # no trial is judged before a quarter of its budget (its first evaluations are mostly the warm-up's noise)
    pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=spec.budget // 4),
              "halving": optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, spec.budget // 4)),
              "none": optuna.pruners.NopPruner()}[spec.pruner]
    study = optuna.create_study(storage=storage, study_name="ddpgkit-tune", direction="maximize", pruner=pruner,
                                load_if_exists=True)
    # the sampler's generator from the seed and the trials so far: a continued study goes on from where it was,
    # rather than proposing its first trials' values again
    seed = spec.seed + 1_000_003 * len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(multivariate=True, seed=seed, n_startup_trials=min(5, spec.trials))
    return study


def trial_dir(out: Path, number: int) -> Path:
    """Where trial ``number``'s runs go."""
    return out / "trials" / f"{number:04d}"


def _payloads(spec: TuneSpec, configs: dict[str, list[DDPGConfig]], where: Path) -> list[dict[str, Any]]:
    """One Ray task per env: its seeds trained together as one group (:func:`~ddpgkit.experiments.sweep.run_task`)."""
    return [{"env_id": env, "preset": spec.preset, "origin": None,
             "trials": [{"config": c.to_dict(), "run_dir": str(where / f"{env.replace('/', '_')}-s{c.seed}")}
                        for c in cfgs]} for env, cfgs in configs.items()]


def curve(spec: TuneSpec, payloads: list[dict[str, Any]]) -> dict[int, float]:
    """The trial's objective curve so far, read from its runs' metrics.csv: at every evaluation step all its runs
    have reached, the mean over envs of the score of the IQM over seeds of the evaluation returns."""
    per_env = []
    for p in payloads:
        evals = []
        for t in p["trials"]:
            try:
                rows = read_metrics(Path(t["run_dir"]))
            except (RunError, OSError):
                rows = []
            evals.append({int(r["step"]): float(r["eval_mean"]) for r in rows if r.get("eval_mean") is not None})
        steps = set.intersection(*(set(e) for e in evals)) if evals else set()
        per_env.append({s: spec.score(p["env_id"], iqm(np.array([e[s] for e in evals]))) for s in steps})
    common = set.intersection(*(set(c) for c in per_env)) if per_env else set()
    return {s: float(np.mean([c[s] for c in per_env])) for s in sorted(common)}


def objective_value(spec: TuneSpec, payloads: list[dict[str, Any]]) -> tuple[float, float, float]:
    """The finished trial's objective with its 95% stratified-bootstrap interval over the seeds: ``final`` — the
    mean over envs of the score of the IQM of the runs' final evaluations (summary.json); ``auc`` — the mean of
    the objective curve over its evaluations (:func:`curve`)."""
    if spec.objective == "auc":
        c = curve(spec, payloads)
        value = float(np.mean(list(c.values()))) if c else math.nan
        return value, value, value
    finals = [np.array([read_summary(Path(t["run_dir"]))["final_eval_mean"] for t in p["trials"]], dtype=float)
              for p in payloads]
    value = float(np.mean([spec.score(p["env_id"], iqm(f)) for p, f in zip(payloads, finals)]))
    if len(finals) == 1:
        est = stratified_bootstrap_ci(finals[0], iqm, 2_000, seed=0)
        low, high = sorted((spec.score(payloads[0]["env_id"], est.low), spec.score(payloads[0]["env_id"], est.high)))
        return value, low, high
    return value, value, value


# ---- the driver --------------------------------------------------------------------------------

@dataclass
class _Running:
    """A trial in flight: its Optuna trial (None for one resumed after a driver restart, which is told by number and
    not pruned), its tasks' payloads, their Ray references and the results back so far."""

    state: TrialState
    trial: Any
    payloads: list[dict[str, Any]]
    refs: list[Any]
    results: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


SPEC_FILE, TRIALS_FILE = "tune_spec.json", "trials.json"
#: what a study may change when it is continued (how many trials, and how many run at once)
FREE_KEYS = ("trials", "parallel", "cpus_per_trial")


def _check_dir(spec: TuneSpec, raw: dict[str, Any], out: Path) -> None:
    """Record the spec in a new tune directory; refuse another spec on an existing one (one line)."""
    path = out / SPEC_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise TuneError(f"{path}: unreadable ({one_line(e)})") from None
        new = json.loads(json.dumps(raw))
        diff = sorted(k for k in set(saved) | set(new) if k not in FREE_KEYS and saved.get(k) != new.get(k))
        if diff:
            raise TuneError(f"{out} holds a study of another spec (differs in {', '.join(diff)}); use another --out, "
                            "or the same spec to continue it")
    atomic_write_text(path, json.dumps(raw, indent=1, sort_keys=True) + "\n")


def load_tune_dir(out: str | Path) -> tuple[TuneSpec, dict[str, Any]]:
    """The spec a tune directory was started with (for ``--finish`` and ``--propose``)."""
    path = Path(out) / SPEC_FILE
    if not path.is_file():
        raise TuneError(f"{out}: not a tune directory (no {SPEC_FILE})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TuneError(f"{path}: unreadable ({one_line(e)})") from None
    return TuneSpec.from_dict(raw, str(path)), raw


def _read_states(out: Path, study: Any) -> dict[int, TrialState]:
    """Every trial of the study as the driver knows it: state and value from the study, the rest from trials.json."""
    optuna = _optuna()
    try:
        extra = {int(k): v for k, v in json.loads((out / TRIALS_FILE).read_text(encoding="utf-8")).items()}
    except (OSError, ValueError):
        extra = {}
    names = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
             optuna.trial.TrialState.FAIL: "failed", optuna.trial.TrialState.RUNNING: "running",
             optuna.trial.TrialState.WAITING: "waiting"}
    states = {}
    for t in study.get_trials(deepcopy=False):
        e = {**extra.get(t.number, {}), **t.user_attrs}  # the trial's own record first
        states[t.number] = TrialState(t.number, dict(t.params), names[t.state], t.value, e.get("step", 0) or 0,
                                      e.get("error"), e.get("low"), e.get("high"))
    return states


def _write_states(out: Path, states: dict[int, TrialState]) -> None:
    atomic_write_text(out / TRIALS_FILE, json.dumps({n: {"state": s.state, "value": s.value, "step": s.step,
                                                         "error": s.error, "low": s.low, "high": s.high,
                                                         "params": s.params} for n, s in sorted(states.items())},
                                                    indent=1) + "\n")


def run_tune(spec: TuneSpec, out: str | Path, raw: dict[str, Any] | None = None, *, address: str | None = None,
             num_cpus: int | None = None, on_progress: Callable[[list[TrialState]], None] | None = None,
             poll_s: float = 1.0, finish_after: bool = True) -> TuneResult:
    """Run (or continue) the study of ``spec`` in ``out`` (module doc), then :func:`finish` it unless
    ``finish_after`` is False. ``raw``: the spec as read (recorded, so that ``--finish`` needs no spec file and
    another spec is refused); ``on_progress`` gets every trial's state about every ``poll_s``."""
    out = ensure_writable_dir(Path(out).resolve())
    lock = RunLock(out, what="tune")  # one driver per tune directory
    try:
        _check_dir(spec, raw if raw is not None else _raw_of(spec), out)
        states = _study(spec, out, address, num_cpus, on_progress, poll_s)
    finally:
        lock.release()
    if not finish_after:
        return TuneResult(out, sorted(states.values(), key=lambda s: s.number), _best(states), [])
    return finish(spec, out, address=address, num_cpus=num_cpus)


def _raw_of(spec: TuneSpec) -> dict[str, Any]:
    raw = {"envs": spec.envs, "trials": spec.trials, "budget": spec.budget, "tune_seeds": spec.tune_seeds,
           "test_seeds": spec.test_seeds, "objective": spec.objective, "pruner": spec.pruner, "seed": spec.seed,
           "parallel": spec.parallel, "cpus_per_trial": spec.cpus_per_trial, "config": spec.config,
           "space": {p.name: ({"choices": list(p.choices)} if p.choices is not None else
                              {"low": p.low, "high": p.high, "log": p.log, "int": p.integer}) for p in spec.space}}
    if spec.preset is not None:
        raw["preset"] = spec.preset
    if spec.normalize:
        raw["normalize"] = {k: list(v) for k, v in spec.normalize.items()}
    return raw


def _best(states: dict[int, TrialState]) -> TrialState | None:
    done = [s for s in states.values() if s.state == "complete" and s.value is not None]
    return max(done, key=lambda s: (s.value, -s.number)) if done else None


def _study(spec: TuneSpec, out: Path, address: str | None, num_cpus: int | None,
           on_progress: Callable[[list[TrialState]], None] | None, poll_s: float) -> dict[int, TrialState]:
    optuna = _optuna()
    study = open_study(spec, out)
    states = _read_states(out, study)
    resume = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    started = len(study.get_trials(deepcopy=False))
    dists = {p.name: p.distribution() for p in spec.space}
    by_name = {p.name: p for p in spec.space}
    if not resume and started >= spec.trials:
        return states
    with _stderr_to(out / "ray-driver.log"):
        ray = _start_ray(address, num_cpus)
    try:
        remote = ray.remote(run_task)
        per_trial = spec.cpus_per_trial * len(spec.envs)  # one task per env
        parallel = spec.parallel or max(1, int(ray.cluster_resources().get("CPU", 1) // per_trial))
        running: dict[int, _Running] = {}
        while resume or started < spec.trials or running:
            while len(running) < parallel and (resume or started < spec.trials):
                if resume:
                    frozen = resume.pop(0)
                    trial, number, sampled = running_trial(study, frozen), frozen.number, dict(frozen.params)
                    if set(sampled) != set(dists):  # the driver stopped while the trial was being proposed
                        state = states.setdefault(number, TrialState(number, sampled))
                        state.state, state.error = "failed", "the driver stopped while this trial was proposed"
                        _tell(study, trial, number, optuna.trial.TrialState.FAIL, error=state.error)
                        continue
                else:
                    trial = study.ask(dists)
                    number, sampled = trial.number, dict(trial.params)
                    started += 1
                state = states.setdefault(number, TrialState(number, sampled))
                state.state = "running"
                try:
                    configs = spec.configs({k: by_name[k].value(v) for k, v in sampled.items()}, spec.tune_seeds)
                except TuneError as e:  # a combination the config refuses: failed, in one line
                    state.state, state.error = "failed", one_line(e)
                    _tell(study, trial, number, optuna.trial.TrialState.FAIL, error=state.error)
                    continue
                payloads = _payloads(spec, configs, trial_dir(out, number))
                refs = [remote.options(num_cpus=spec.cpus_per_trial, max_retries=3, retry_exceptions=False,
                                       name=f"ddpgkit-tune:{number}:{p['env_id']}").remote(p) for p in payloads]
                running[number] = _Running(state, trial, payloads, refs)
            pending = [r for run in running.values() for k, r in enumerate(run.refs) if k not in run.results]
            ready, _ = ray.wait(pending, num_returns=1, timeout=poll_s) if pending else ([], [])
            for ref in ready:
                run = next(r for r in running.values() if ref in r.refs)
                run.results[run.refs.index(ref)] = _get(ray, ref, len(run.payloads[run.refs.index(ref)]["trials"]))
            for number in list(running):
                if _advance(spec, study, running[number], ray, optuna):
                    del running[number]
            _write_states(out, states)
            if on_progress is not None:
                on_progress(sorted(states.values(), key=lambda s: s.number))
    finally:
        with _stderr_to(out / "ray-driver.log"):
            ray.shutdown()
    _write_states(out, states)
    return states


def _get(ray: Any, ref: Any, n: int) -> list[dict[str, Any]]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:  # the worker died more often than its retries
        return [{"status": "failed", "error": one_line(f"{type(e).__name__}: {e}")[:300]}] * n


def running_trial(study: Any, frozen: Any) -> Any:
    """The Optuna ``Trial`` of a trial left running by a driver that stopped, so that it can be reported to the pruner
    again: built from its storage id, which Optuna keeps private (``FrozenTrial._trial_id``); None where that is gone
    (it is then told by number and not pruned)."""
    optuna = _optuna()
    trial_id = getattr(frozen, "_trial_id", None)
    if not isinstance(trial_id, int):
        return None
    return optuna.trial.Trial(study, trial_id)


def _tell(study: Any, trial: Any, number: int, state: Any, value: float | None = None, **attrs: Any) -> None:
    """Tell the study how the trial ended, with what the driver knows of it (error, step, interval) stored in the
    trial itself first, so that no kill between the two loses it."""
    if trial is not None:
        for key, v in attrs.items():
            trial.set_user_attr(key, v)
    study.tell(trial if trial is not None else number, value, state=state)


def _advance(spec: TuneSpec, study: Any, run: _Running, ray: Any, optuna: Any) -> bool:
    """Report the trial's new evaluations to the pruner, prune or finish it; True when it is over."""
    state = run.state
    if len(run.results) == len(run.refs):  # every env's task is back
        results = [r for k in sorted(run.results) for r in run.results[k]]
        failed = [r["error"] for r in results if r["status"] == "failed"]
        diverged = [r["summary"] for r in results if r["status"] == "done" and r["summary"].get("status") == "diverged"]
        if failed or diverged:
            state.state = "failed"
            state.error = failed[0] if failed else (f"seed {diverged[0].get('seed')} diverged at step "
                                                    f"{diverged[0].get('diverged_at')} ({diverged[0].get('signal')})")
            _tell(study, run.trial, state.number, optuna.trial.TrialState.FAIL, error=state.error, step=state.step)
            return True
        if run.trial is not None:  # the evaluations not yet reported (the tasks may all end within one poll)
            for step, value in curve(spec, run.payloads).items():
                if step not in state.reported and step < spec.budget:
                    run.trial.report(value, step)
                    state.reported.add(step)
        value, low, high = objective_value(spec, run.payloads)
        if not math.isfinite(value):
            state.state, state.error = "failed", f"the objective is {value} (a run without a finite final evaluation)"
            _tell(study, run.trial, state.number, optuna.trial.TrialState.FAIL, error=state.error, step=spec.budget)
            return True
        state.state, state.value, state.low, state.high, state.step = "complete", value, low, high, spec.budget
        _tell(study, run.trial, state.number, optuna.trial.TrialState.COMPLETE, value, step=spec.budget, low=low,
              high=high)
        return True
    points = curve(spec, run.payloads)
    if points:
        state.step = max(points)
    if run.trial is None:
        return False  # resumed after a restart without its Optuna trial (running_trial): finished by number
    for step, value in points.items():
        if step in state.reported or step >= spec.budget:
            continue
        run.trial.report(value, step)
        state.reported.add(step)
        if run.trial.should_prune():
            for k, ref in enumerate(run.refs):
                if k not in run.results:
                    ray.cancel(ref, force=True)
            state.state, state.step = "pruned", step
            _tell(study, run.trial, state.number, optuna.trial.TrialState.PRUNED, step=step)
            return True
    return False


# ---- the end: the best configuration on the test seeds ----------------------------------------

def best_values(spec: TuneSpec, state: TrialState) -> dict[str, Any]:
    """The config values of a trial's parameters."""
    by_name = {p.name: p for p in spec.space}
    return {k: by_name[k].value(v) for k, v in state.params.items() if k in by_name}


def finish(spec: TuneSpec, out: str | Path, *, address: str | None = None, num_cpus: int | None = None) -> TuneResult:
    """The best trial's configuration written (best.toml, test_sweep.toml), trained on the test seeds beside the base
    configuration, both reported; tune.md written. Also on a study stopped early (``ddpgkit tune DIR --finish``)."""
    out = Path(out).resolve()
    lock = RunLock(out, what="tune")
    try:
        study = open_study(spec, out)
        states = _read_states(out, study)
        best = _best(states)
        if best is None:
            raise TuneError(f"{out}: no trial has finished yet; nothing to test")
        values = best_values(spec, best)
        tuned, base = spec.configs(values, spec.test_seeds), spec.configs({}, spec.test_seeds)
        if tuned == base:
            raise TuneError(f"{out}: the best trial ({best.number}) is the base configuration itself; there is no "
                            "tuned configuration to test against it")
        files = _write_best(spec, out, best, values, tuned)
        test = out / "test"
        tuned_dir = test / f"tuned-{best.number:04d}"  # the trial's number: a later, better trial gets its own runs
        jobs = {"tuned": _payloads(spec, tuned, tuned_dir), "base": _payloads(spec, base, test / "base")}
        todo = [p for ps in jobs.values() for p in ps
                if not all(run_finished(Path(t["run_dir"]), spec.budget) for t in p["trials"])]
        if todo:
            with _stderr_to(out / "ray-driver.log"):
                ray = _start_ray(address, num_cpus)
            try:
                remote = ray.remote(run_task)
                refs = [remote.options(num_cpus=spec.cpus_per_trial, max_retries=3, retry_exceptions=False,
                                       name=f"ddpgkit-tune-test:{p['env_id']}").remote(p) for p in todo]
                results = [r for ref in refs for r in _get(ray, ref, len(todo[refs.index(ref)]["trials"]))]
            finally:
                with _stderr_to(out / "ray-driver.log"):
                    ray.shutdown()
            failed = [r["error"] for r in results if r["status"] == "failed"]
            if failed:
                raise TuneError(f"testing on the test seeds failed: {failed[0]}")
        report = make_report([tuned_dir, test / "base"], test / "report")
        files += report.files
        files.append(write_tune_md(spec, out, study, states, best, report))
    finally:
        lock.release()
    return TuneResult(out, sorted(states.values(), key=lambda s: s.number), best, files, report)


def _write_best(spec: TuneSpec, out: Path, best: TrialState, values: dict[str, Any],
                tuned: dict[str, list[DDPGConfig]]) -> list[Path]:
    env = spec.envs[0]
    origin = {"tuned": f"ddpgkit tune {out}: trial {best.number} of {len(spec.envs)} env(s), objective "
                       f"{spec.objective} = {best.value:.4g} on seeds {seed_ranges(spec.tune_seeds)}",
              "base": f"preset:{spec.preset}" if spec.preset else f"table:{env}"}
    paths = [tuned[env][0].replace(seed=0).save(out / "best.toml", origin)]
    lines = [f"# the best configuration of {out} (trial {best.number}) on the test seeds, as a sweep",
             f"envs = {json.dumps(spec.envs)}", f"seeds = {json.dumps(spec.test_seeds)}"]
    if spec.preset is not None:
        lines.append(f"preset = {json.dumps(spec.preset)}")
    lines.append("\n[config]")
    for k, v in {**spec.config, **values, "total_steps": spec.budget}.items():
        lines.append(f"{k} = {_toml(v)}")
    paths.append(atomic_write_text(out / "test_sweep.toml", "\n".join(lines) + "\n"))
    return paths


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return json.dumps(v) if isinstance(v, list) else repr(v)


def importances(study: Any) -> dict[str, float] | None:
    """Optuna's parameter importances (its default evaluator, PED-ANOVA in Optuna 5.1) over the finished trials; None
    with fewer than two."""
    optuna = _optuna()
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        return None
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every finished trial has one value: nothing to attribute
        return None


def write_tune_md(spec: TuneSpec, out: Path, study: Any, states: dict[int, TrialState], best: TrialState,
                  report: Report | None) -> Path:
    """tune.md: the trials, the importances, the test against the base and the two figures."""
    figures = [_objective_figure(out / "objective.png", states), _params_figure(out / "params.png", spec, states)]
    rows = sorted(states.values(), key=lambda s: s.number)
    counts = {k: sum(s.state == k for s in rows) for k in ("complete", "pruned", "failed", "running")}
    lines = [f"# ddpgkit tune: {', '.join(spec.envs)}", "",
             f"{len(rows)} trials ({counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} "
             f"failed, {counts['running']} running), each trained on seeds {seed_ranges(spec.tune_seeds)} as one group "
             "for "
             f"{spec.budget:,} steps; objective: {_objective_words(spec)}; sampler TPE (multivariate, seed "
             f"{spec.seed}); pruner {spec.pruner}. Base: {_base_words(spec)}.",
             "", f"Best: trial {best.number}, objective {best.value:.4g}"
             + (f" [{best.low:.4g}, {best.high:.4g}]" if best.low is not None and best.low != best.high else "")
             + f": {json.dumps(best_values(spec, best))}", "",
             "| trial | state | objective [95% CI over seeds] | step reached | parameters | error |",
             "|---:|---|---|---:|---|---|"]
    for s in rows:
        value = "" if s.value is None else f"{s.value:.4g}"
        if s.value is not None and s.low is not None and s.low != s.high:
            value += f" [{s.low:.4g}, {s.high:.4g}]"
        lines.append(f"| {s.number} | {s.state} | {value} | {s.step:,} | {json.dumps(best_values(spec, s))} | "
                     f"{s.error or ''} |")
    imp = importances(study)
    lines += ["", "Parameter importances (Optuna's default evaluator, PED-ANOVA in 5.1, over the finished trials):", ""]
    lines += [f"* {k}: {v:.2f}" for k, v in imp.items()] if imp else ["* fewer than two finished trials differ"]
    if report is not None:
        lines += ["", f"On the test seeds {seed_ranges(spec.test_seeds)} (never seen by the search), the tuned "
                  "configuration beside the base (test/report/report.md):", ""]
        for g in report.groups:
            s = g.stats
            if s:
                lines.append(f"* {g.label} (n={len(g.runs)}): final IQM {s['final IQM']}, mean {s['final mean']}")
        lines += [f"* P({x} > {y}) = {e.value:.2f} [{e.low:.2f}, {e.high:.2f}]" for x, y, e in report.improvements]
    lines += [""] + [f"![{f.stem}]({f.name})" for f in figures]
    return atomic_write_text(out / "tune.md", "\n".join(lines) + "\n")


def _base_words(spec: TuneSpec) -> str:
    return f"preset {spec.preset}" if spec.preset else "each env's entry in the hyperparameter table"


def _objective_words(spec: TuneSpec) -> str:
    what = ("the IQM over the seeds of the runs' final evaluations" if spec.objective == "final" else
            "the area under the IQM curve (its mean over the evaluations)")
    return what + (" (each env's normalized by [normalize], averaged)" if spec.normalize else "")


def _objective_figure(path: Path, states: dict[int, TrialState]) -> Path:
    rows = sorted(states.values(), key=lambda s: s.number)
    fig, ax = subplots(figsize=(7, 4))
    done = [s for s in rows if s.state == "complete" and s.value is not None]
    ax.plot([s.number for s in done], [s.value for s in done], "o", color="C0", label="complete")
    pruned = [s for s in rows if s.state == "pruned" and s.value is not None]
    if pruned:
        ax.plot([s.number for s in pruned], [s.value for s in pruned], "x", color="C3", label="pruned (last report)")
    best, xs, ys = -math.inf, [], []
    for s in done:
        best = max(best, s.value)
        xs.append(s.number)
        ys.append(best)
    ax.step(xs, ys, where="post", color="black", alpha=0.6, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _params_figure(path: Path, spec: TuneSpec, states: dict[int, TrialState]) -> Path:
    params = spec.space
    cols = min(3, len(params)) or 1
    rows_n = -(-len(params) // cols) or 1
    fig, axes = subplots(rows_n, cols, figsize=(4 * cols, 3 * rows_n), squeeze=False)
    done = [s for s in states.values() if s.state == "complete" and s.value is not None]
    for ax, p in zip(axes.flat, params):
        xs = [s.params.get(p.name) for s in done]
        ys = [s.value for s in done]
        if p.choices is not None:
            labels = [str(_encode(c)) for c in p.choices]
            ax.plot([labels.index(str(x)) for x in xs if str(x) in labels],
                    [y for x, y in zip(xs, ys) if str(x) in labels], "o", alpha=0.7)
            ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30)
        else:
            ax.plot(xs, ys, "o", alpha=0.7)
            if p.log:
                ax.set_xscale("log")
        ax.set_title(p.name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("objective")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


#: The DDPGConfig fields that say how a run is watched, saved or computed rather than what it learns. A proposed
#: table entry leaves them out (a study sets them for its own runs).
RUN_SETTINGS = ("seed", "eval_interval", "eval_episodes", "health_interval", "checkpoint_interval",
                "keep_checkpoints", "device", "threads", "compile")


def propose_entry(out: str | Path) -> str:
    """The tuned values as a hyperparameter-table entry (config/hyperparams.py's ENV_HYPERPARAMS), "measured here"
    with the test report's numbers: the values of best.toml that differ from the general defaults, less the
    :data:`RUN_SETTINGS`; ``total_steps`` the base's (the table's training length for the task; the study's budget
    where the base is the general defaults), the budget the values were tuned at said in the source."""
    out = Path(out)
    spec, _ = load_tune_dir(out)
    if not (out / "best.toml").is_file() or not (out / "test" / "report" / "report.json").is_file():
        raise TuneError(f"{out}: not finished (no best.toml and test report): run `ddpgkit tune {out} --finish`")
    tuned = DDPGConfig.load(out / "best.toml").to_dict()
    base = defaults_for(spec.envs[0], spec.preset)
    tuned["total_steps"] = spec.budget if base.name == "general" else base.config.total_steps
    default = DDPGConfig().to_dict()
    values = {k: v for k, v in tuned.items() if v != default[k] and k not in RUN_SETTINGS}
    report = json.loads((out / "test" / "report" / "report.json").read_text(encoding="utf-8"))
    def group(kind: str) -> dict[str, Any] | None:  # the env's group whose runs are in test/<kind>...
        return next((g for g in report["groups"] if g["env_id"] == spec.envs[0] and g["runs"] and g["stats"]
                     and all(Path(r).parent.name.split("-")[0] == kind for r in g["runs"])), None)

    tuned_g, base_g = group("tuned"), group("base")
    if tuned_g is None or base_g is None:
        raise TuneError(f"{out}: the test report has no finished {'tuned' if tuned_g is None else 'base'} runs of "
                        f"{spec.envs[0]}")
    t, b = tuned_g["stats"]["final IQM"], base_g["stats"]["final IQM"]
    pi = next((p for p in report["probability_of_improvement"] if p["x"] == tuned_g["label"]
               and p["y"] == base_g["label"]), None)
    words = (f"ddpgkit tune ({out}): {spec.trials} trials on seeds {seed_ranges(spec.tune_seeds)}, "
             f"tuned at {spec.budget:,} steps; "
             f"measured here on test seeds {seed_ranges(spec.test_seeds)}: final IQM {t['value']:.1f} [{t['low']:.1f}, "
             f"{t['high']:.1f}] against the base's {b['value']:.1f} [{b['low']:.1f}, {b['high']:.1f}]")
    if pi is not None:
        words += f", P(tuned > base) = {pi['value']:.2f} [{pi['low']:.2f}, {pi['high']:.2f}]"
    body = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in values.items())
    return f'"{spec.envs[0]}": EnvEntry(dict({body}),\n    "{words} (benchmarks/README.md)"),'
