"""The life of a training run, as a library call: everything ``ddpgkit train`` and ``ddpgkit resume``
do, callable from Python, a notebook or a worker process.

    result = run_experiment("Pendulum-v1", DDPGConfig.preset("pendulum"), "runs/pendulum-s0")
    result.summary["final_eval_mean"], result.checkpoint

A run writes its directory (:mod:`ddpgkit.storage.rundir`): config.toml first, metrics.csv rows and
periodic checkpoints while it trains, then the final checkpoint (unless the last periodic one was
taken at the same step), learning_curve.png and summary.json. ``resume=True`` continues the run in
that directory from its newest checkpoint that loads (bit-identically when it was taken at an episode
end), or starts it if it has none. :func:`prepare_experiment` does the set-up alone, so a caller can
report what is about to run (the CLI prints it) before :meth:`Experiment.run` trains.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import save as st_save

from ..agents.ddpg import DDPG
from ..agents.group import DDPGGroup, check_groupable
from ..algo.health import health_warnings
from ..analysis.plots import plot_learning_curves
from ..config.ddpg import DDPGConfig
from ..config.hyperparams import Defaults, defaults_for
from ..errors import CheckpointError, ConfigError, NonFiniteError, NonFiniteUpdate, RunError, RunInterrupted
from ..storage.atomic import atomic_write_bytes
from ..storage.checkpoint import versions
from ..storage.rundir import (
    CONFIG,
    CURVE,
    METRICS,
    best_checkpoint_dir,
    checkpoints_by_step,
    list_checkpoints,
    prepare_run_dir,
    prune_checkpoints,
    read_metrics,
    read_origin,
    refuse_existing_run,
    write_metrics,
    write_summary,
)
from ..training.callbacks import Checkpointer, MetricsCSV
from ..training.loop import METRIC_COLUMNS, Callback, Trainer
from ..training.tensorboard import TensorBoardSink

TENSORBOARD = "tensorboard"  # <run>/tensorboard: the optional TensorBoard mirror of metrics.csv

# what may differ between a run's own config and the one given to resume it
RESUMABLE_CHANGES = ("total_steps", "device", "threads")


def default_run_dir(env_id: str, seed: int) -> Path:
    """``runs/<env id>-s<seed>`` (a ``/`` in the id becomes ``_``)."""
    return Path("runs") / f"{env_id.replace('/', '_')}-s{seed}"


def load_latest(run: str | Path, device: str | None = None) -> tuple[DDPG, Path, list[str]]:
    """The agent of the newest checkpoint of ``run`` that loads completely (checksums, shapes,
    training state), its path, and why any newer ones were skipped."""
    skipped: list[str] = []
    for p in list_checkpoints(run):
        try:
            return DDPG.load(p, device=device), p, skipped
        except CheckpointError as e:
            skipped.append(str(e))
    if skipped:
        raise RunError(f"{run}: no valid checkpoint ({skipped[0]})")
    raise RunError(f"{run}: no checkpoints; is this a ddpgkit run directory?")


@dataclass
class RunResult:
    """What a finished run left: its directory, the trained agent, summary.json's content, the
    final checkpoint, and every checkpoint saved by this call (step, path) in order."""

    run_dir: Path
    agent: DDPG
    summary: dict[str, Any]
    checkpoint: Path
    saved: list[tuple[int, Path]] = field(default_factory=list)


@dataclass
class Experiment:
    """A run ready to train: the agent (fresh, or loaded from ``resumed_from``), its directory, the
    preset name and the origin of its hyperparameters to record (``{"defaults": ..., "source": ...}``,
    see :mod:`ddpgkit.config.hyperparams`), and the newer checkpoints that were skipped because they did not load."""

    agent: DDPG
    run_dir: Path
    preset: str | None = None
    resumed_from: Path | None = None
    skipped: list[str] = field(default_factory=list)
    origin: dict[str, str] | None = None

    @property
    def total_steps(self) -> int:
        """The environment steps the run trains to (``config.total_steps``)."""
        return self.agent.config.total_steps

    def run(self, callbacks: Callback | Iterable[Callback] = (), handle_signals: bool = False,
            tensorboard: bool = False) -> RunResult:
        """Train to ``config.total_steps``, writing the run directory (module doc), and return the result.

        ``handle_signals`` (main thread only): SIGINT/SIGTERM save a checkpoint at the end of the
        current episode and stop (a second signal saves at once), then :class:`~ddpgkit.errors.RunInterrupted` is raised
        with exit status 128 + signal. Any other exception leaves the last periodic checkpoint as it was.
        ``tensorboard``: also write every metrics row to ``<run>/tensorboard`` (the optional extra).
        """
        return _run_together([self], callbacks, handle_signals, tensorboard)[0]

    def _begin(self, extra: list[Callback], boundary: Callable[[Trainer], bool] | None = None,
               patience: int | None = None) -> tuple[MetricsCSV, Checkpointer, list[Callback]]:
        """Write config.toml (and, resumed, the checkpoint's metrics rows); the run's callbacks."""
        agent, run = self.agent, self.run_dir
        cfg = agent.config
        if self.resumed_from is not None:  # the metrics rows of the checkpoint, dropping any written after it
            write_metrics(run / METRICS, METRIC_COLUMNS, agent.trainer.history if agent.trainer else [])
        cfg.save(run / CONFIG, self.origin)
        metrics = MetricsCSV(run / METRICS)
        checkpointer = Checkpointer(run, cfg.checkpoint_interval, cfg.keep_checkpoints, boundary, patience)
        return metrics, checkpointer, [metrics, checkpointer, *extra]

    def _finish(self, checkpointer: Checkpointer, wall: float, group: list[int] | None) -> RunResult:
        """The final checkpoint, the learning curve and summary.json, after training."""
        agent, run, cfg = self.agent, self.run_dir, self.agent.config
        env_id = agent.env_id or "custom env"
        trainer = agent.trainer
        assert trainer is not None  # training made it
        ckpt = checkpointer.save(trainer)  # the final state, unless the last periodic checkpoint is this step
        prune_checkpoints(run, cfg.keep_checkpoints)
        plot_learning_curves(run / CURVE, [(env_id, read_metrics(run / METRICS))], f"DDPG on {env_id}")
        mean, std = trainer.last_eval if trainer.last_eval is not None else (float("nan"), float("nan"))
        best_step, best_mean, best_std = checkpointer.best if checkpointer.best else (None, float("nan"), float("nan"))
        summary = {
            "env_id": env_id, "seed": cfg.seed, "steps": trainer.step, "episodes": trainer.episodes,
            "final_eval_mean": mean, "final_eval_std": std, "eval_episodes": cfg.eval_episodes,
            "wall_s": wall, "train_s": trainer.wall_s, "steps_per_s": trainer.step / trainer.wall_s,
            "best_eval_mean": best_mean, "best_eval_std": best_std, "best_step": best_step,
            "best_checkpoint": str(best_checkpoint_dir(run).relative_to(run)) if best_step is not None else None,
            "checkpoint": str(ckpt.relative_to(run)), "preset": self.preset,
            "defaults": (self.origin or {}).get("defaults"), "resumed": self.resumed_from is not None,
            "group_seeds": group, "health_warnings": health_warnings(trainer.history), "versions": versions(),
        }
        write_summary(run, summary)
        return RunResult(run, agent, summary, ckpt, list(checkpointer.saved))


@dataclass
class GroupExperiment:
    """Several runs of one config and env that differ only in the seed, ready to train together in one
    process (:class:`ddpgkit.agents.group.DDPGGroup`): one ordinary run directory per seed."""

    experiments: list[Experiment]

    @property
    def total_steps(self) -> int:
        """The environment steps every member trains to."""
        return self.experiments[0].agent.config.total_steps

    @property
    def seeds(self) -> list[int]:
        """The members' seeds, in order."""
        return [e.agent.config.seed for e in self.experiments]

    def run(self, callbacks: Callback | Iterable[Callback] = (), handle_signals: bool = False,
            tensorboard: bool = False) -> list[RunResult]:
        """Train every seed to ``config.total_steps`` together, each writing its run directory as
        :meth:`Experiment.run` does; one :class:`RunResult` per seed, in order. ``callbacks`` see the
        first seed's trainer (every seed steps with it). Checkpoints are taken for every seed at the same
        step, at a moment when all of them are between episodes (waiting at most one episode's time
        limit, else mid-episode), so the group resumes from them exactly. Signals as in
        :meth:`Experiment.run` (and ``tensorboard``, for every seed's run directory)."""
        return _run_together(self.experiments, callbacks, handle_signals, tensorboard)


def _run_together(experiments: list[Experiment], callbacks: Callback | Iterable[Callback],
                  handle_signals: bool, tensorboard: bool = False) -> list[RunResult]:
    """The life of one run, or of a group of runs trained together (module doc)."""
    extra = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    sinks = [TensorBoardSink(e.run_dir / TENSORBOARD) for e in experiments] if tensorboard else []
    group = DDPGGroup([e.agent for e in experiments]) if len(experiments) > 1 else None
    boundary: Callable[[Trainer], bool] | None = None
    patience = None
    if group is not None:
        boundary = lambda trainer: group.at_episode_boundary  # noqa: E731 - one line, read once
        spec = experiments[0].agent.env.spec
        patience = (spec.max_episode_steps if spec is not None and spec.max_episode_steps else None) or 1000
    begun = [e._begin((extra if i == 0 else []) + sinks[i:i + 1], boundary, patience)
             for i, e in enumerate(experiments)]
    checkpointers = [cp for _, cp, _ in begun]
    signals: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        signals.append(signum)
        for cp in checkpointers:
            cp.request_stop(force=len(signals) > 1)

    handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if handle_signals else {}
    start = time.perf_counter()
    total = experiments[0].agent.config.total_steps
    try:
        if group is None:
            experiments[0].agent.learn_until(total, callback=begun[0][2])
        else:
            group.learn_until(total, member_callbacks=[cbs for _, _, cbs in begun])
    except NonFiniteUpdate as e:
        raise _keep_broken_batch(e, experiments, checkpointers) from None
    finally:
        for metrics, _, _ in begun:
            metrics.close()
        for sink in sinks:
            sink.close()
        for s, old in handlers.items():
            signal.signal(s, old)
    if signals:
        name = signal.Signals(signals[0]).name
        step = experiments[0].agent.num_timesteps
        saved = [str(cp.saved[-1][1]) if cp.saved else "no checkpoint" for cp in checkpointers]
        where = saved[0] if len(saved) == 1 else f"{len(saved)} checkpoints ({saved[0]}, ...)"
        cmd = "ddpgkit resume " + " ".join(str(e.run_dir) for e in experiments)
        raise RunInterrupted(f"{name} at step {step:,}: saved {where}; continue with: {cmd}", 128 + signals[0])
    wall = time.perf_counter() - start
    seeds = group.seeds if group is not None else None
    return [e._finish(cp, wall, seeds) for e, cp in zip(experiments, checkpointers)]


BROKEN_BATCH = "nonfinite_batch.safetensors"


def _keep_broken_batch(e: NonFiniteUpdate, experiments: list[Experiment], checkpointers: list[Checkpointer]
                       ) -> NonFiniteError:
    """Write the batch an update broke on into the run directory (a group: that seed's, and its slice),
    and say in one line what happened and what was left."""
    k = e.member if e.member is not None else 0
    batch = e.batch if e.member is None else type(e.batch)(*(field[k] for field in e.batch))
    run = experiments[k].run_dir
    path = run / BROKEN_BATCH
    atomic_write_bytes(path, st_save({name: t.detach().contiguous().cpu() for name, t in batch._asdict().items()}))
    saved = [s for s, _ in checkpointers[k].saved] or [int(p.name) for p in list_checkpoints(run) if p.name.isdigit()]
    last = f"the last checkpoint (step {max(saved):,}) is as it was" if saved else "no checkpoint was taken yet"
    return NonFiniteError(f"{e}; {last}; the batch: {path}")


def _check_same_run(agent: DDPG, env_id: str, config: DDPGConfig) -> None:
    if agent.env_id != env_id:
        raise ConfigError(f"resume: the run trained {agent.env_id}, not {env_id}")
    saved, given = agent.config.to_dict(), config.to_dict()
    for key in saved:
        if key not in RESUMABLE_CHANGES and saved[key] != given[key]:
            raise ConfigError(f"resume continues the run's own config, but {key} differs "
                              f"(run: {saved[key]!r}, given: {given[key]!r})")


def _continue_from(agent: DDPG, ckpt: Path, run: Path, skipped: list[str], preset: str | None,
                   total_steps: int, threads: int | None) -> Experiment:
    if agent.trainer is None:
        raise RunError(f"{ckpt}: holds no training state (saved with training_state=False); cannot resume")
    done = agent.trainer.step
    if total_steps <= done:
        raise RunError(f"{run} already has {done:,} steps; ask for more than that to train further")
    changes: dict[str, Any] = {"total_steps": total_steps}
    if threads is not None:
        changes["threads"] = threads
    agent.config = agent.config.replace(**changes)
    return Experiment(agent, run, preset, resumed_from=ckpt, skipped=skipped, origin=read_origin(run))


def origin_of(defaults: Defaults) -> dict[str, str]:
    """What a run records of the base its hyperparameters started from (config.toml's ``[origin]``)."""
    return {"defaults": defaults.name, "source": defaults.source}


GIVEN = {"defaults": "given", "source": "a DDPGConfig given by the caller"}


def prepare_experiment(env: str, config: DDPGConfig | None = None, run_dir: str | Path | None = None, *,
                       preset: str | None = None, resume: bool = False, overwrite: bool = False,
                       origin: dict[str, str] | None = None) -> Experiment:
    """Set up a run of DDPG on ``env`` in ``run_dir`` (``runs/<env>-s<seed>`` by default).

    ``config`` defaults to :func:`ddpgkit.config.hyperparams.defaults_for` ``(env, preset)``: the preset if
    named, else the env's entry in the hyperparameter table, else the general defaults. ``origin``
    says where a given ``config`` came from (default: "given"); it is recorded in config.toml's
    ``[origin]`` table and summary.json, as ``preset`` is in summary.json. A directory that already
    holds a run is refused unless ``overwrite`` (its run files
    are removed) or ``resume``: then the run continues from its newest checkpoint that loads, with the
    given config's ``total_steps``, ``device`` and ``threads``; any other difference is a ConfigError.
    """
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other")
    if config is None:
        defaults = defaults_for(env, preset)
        config, origin = defaults.config, origin_of(defaults)
    run = Path(run_dir) if run_dir is not None else default_run_dir(env, config.seed)
    if resume and list_checkpoints(run):
        agent, ckpt, skipped = load_latest(run, device=config.device)
        _check_same_run(agent, env, config)
        return _continue_from(agent, ckpt, run, skipped, preset, config.total_steps, config.threads)
    agent = DDPG(env, config)
    prepare_run_dir(run, overwrite or resume)
    return Experiment(agent, run, preset, origin=origin or GIVEN)


def resume_experiment(run_dir: str | Path, total_steps: int | None = None, device: str | None = None,
                      threads: int | None = None) -> Experiment:
    """Continue the run in ``run_dir`` from its newest checkpoint that loads, to ``total_steps``
    (default: the run's own), on ``device`` and with ``threads`` when given (else the run's)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"{run}: no such run directory")
    agent, ckpt, skipped = load_latest(run, device)
    steps = total_steps if total_steps is not None else agent.config.total_steps
    return _continue_from(agent, ckpt, run, skipped, None, steps, threads)


def run_experiment(env: str, config: DDPGConfig | None = None, run_dir: str | Path | None = None, *,
                   preset: str | None = None, resume: bool = False, overwrite: bool = False,
                   origin: dict[str, str] | None = None, callbacks: Callback | Iterable[Callback] = (),
                   handle_signals: bool = False) -> RunResult:
    """:func:`prepare_experiment` then :meth:`Experiment.run`: train DDPG on ``env`` into a run
    directory, the same files and numbers as ``ddpgkit train``."""
    exp = prepare_experiment(env, config, run_dir, preset=preset, resume=resume, overwrite=overwrite, origin=origin)
    return exp.run(callbacks, handle_signals=handle_signals)


def load_group_latest(run_dirs: Sequence[str | Path], device: str | None = None
                      ) -> tuple[list[DDPG], list[Path], list[str]]:
    """The agents of a group's newest step at which every run directory holds a checkpoint that loads,
    their checkpoints, and why any newer ones were skipped (a group resumes all its seeds from one step)."""
    found = [checkpoints_by_step(r) for r in run_dirs]
    steps = sorted(set.intersection(*(set(f) for f in found)), reverse=True) if found else []
    skipped: list[str] = []
    for step in steps:
        try:
            agents = [DDPG.load(f[step], device=device) for f in found]
            return agents, [f[step] for f in found], skipped
        except CheckpointError as e:
            skipped.append(str(e))
    have = [str(r) for r, f in zip(run_dirs, found) if f]
    if skipped:
        raise RunError(f"no step at which every run of the group has a valid checkpoint ({skipped[0]})")
    if have:
        raise RunError(f"the group's run directories have no checkpoint at a common step ({', '.join(have)} have some)")
    raise RunError("the group's run directories have no checkpoints")


def group_run_dirs(env: str, seeds: Sequence[int], parent: str | Path | None = None) -> list[Path]:
    """Where a group's runs go: ``runs/<env id>-s<seed>`` each, or ``<parent>/<env id>-s<seed>``."""
    if parent is None:
        return [default_run_dir(env, s) for s in seeds]
    return [Path(parent) / default_run_dir(env, s).name for s in seeds]


def seed_run_dirs(env: str, seeds: Sequence[int], run_dirs: Sequence[str | Path] | None = None) -> list[Path]:
    """One run directory per seed: ``run_dirs`` as paths, or :func:`group_run_dirs`'s; ConfigError unless there
    are as many as seeds, all different."""
    dirs = [Path(d) for d in run_dirs] if run_dirs is not None else group_run_dirs(env, seeds)
    if len(dirs) != len(seeds):
        raise ConfigError(f"{len(dirs)} run directories for {len(seeds)} seeds")
    if len(set(dirs)) != len(dirs):
        raise ConfigError("every seed of a group needs its own run directory")
    return dirs


def prepare_group(env: str, config: DDPGConfig | None = None, seeds: Sequence[int] = range(10),
                  run_dirs: Sequence[str | Path] | None = None, *, preset: str | None = None, resume: bool = False,
                  overwrite: bool = False, origin: dict[str, str] | None = None) -> GroupExperiment | Experiment:
    """:func:`prepare_experiment` for several seeds of one config trained together in this process
    (``ddpgkit train --seeds``): one ordinary run directory per seed (``run_dirs``, default
    :func:`group_run_dirs`). One seed gives an ordinary :class:`Experiment`. ``resume`` continues every
    seed from the newest step at which all have a checkpoint that loads, or starts them all when none
    has any."""
    seeds = list(seeds)
    if config is None:
        defaults = defaults_for(env, preset)
        config, origin = defaults.config, origin_of(defaults)
    configs = [config.replace(seed=s) for s in seeds]
    if len(configs) > 1:
        check_groupable(configs)
    dirs = seed_run_dirs(env, seeds, run_dirs)
    if len(seeds) == 1:
        return prepare_experiment(env, configs[0], dirs[0], preset=preset, resume=resume, overwrite=overwrite,
                                  origin=origin)
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other")
    if resume and any(list_checkpoints(d) for d in dirs):
        agents, ckpts, skipped = load_group_latest(dirs, config.device)
        exps = []
        for agent, ckpt, run, c in zip(agents, ckpts, dirs, configs):
            _check_same_run(agent, env, c)
            exps.append(_continue_from(agent, ckpt, run, skipped, preset, c.total_steps, c.threads))
        return GroupExperiment(exps)
    if not (overwrite or resume):  # refuse before any directory is touched
        for d in dirs:
            refuse_existing_run(d)
    exps = []
    for c, d in zip(configs, dirs):
        agent = DDPG(env, c)
        prepare_run_dir(d, overwrite or resume)
        exps.append(Experiment(agent, d, preset, origin=origin or GIVEN))
    return GroupExperiment(exps)


def resume_group(run_dirs: Sequence[str | Path], total_steps: int | None = None, device: str | None = None,
                 threads: int | None = None) -> GroupExperiment:
    """Continue a group (:func:`prepare_group`) from the newest step at which every one of its run
    directories has a checkpoint that loads (``ddpgkit resume RUN RUN ...``)."""
    for r in run_dirs:
        if not Path(r).is_dir():
            raise RunError(f"{r}: no such run directory")
    agents, ckpts, skipped = load_group_latest(run_dirs, device)
    check_groupable([a.config for a in agents])
    steps = total_steps if total_steps is not None else agents[0].config.total_steps
    return GroupExperiment([_continue_from(a, c, Path(r), skipped, None, steps, threads)
                            for a, c, r in zip(agents, ckpts, run_dirs)])


def run_group(env: str, config: DDPGConfig | None = None, seeds: Sequence[int] = range(10),
              run_dirs: Sequence[str | Path] | None = None, *, preset: str | None = None, resume: bool = False,
              overwrite: bool = False, origin: dict[str, str] | None = None,
              callbacks: Callback | Iterable[Callback] = (), handle_signals: bool = False) -> list[RunResult]:
    """:func:`prepare_group` then run: train ``seeds`` of one config together, one run directory each
    (the same files as ``ddpgkit train --seeds``)."""
    exp = prepare_group(env, config, seeds, run_dirs, preset=preset, resume=resume, overwrite=overwrite, origin=origin)
    out = exp.run(callbacks, handle_signals=handle_signals)
    return out if isinstance(out, list) else [out]
