"""The life of training runs, as a library call: everything ``ddpgkit train`` and ``ddpgkit resume`` do,
callable from Python, a notebook or a worker process.

    [result] = run_experiment("Pendulum-v1", DDPGConfig.preset("pendulum"), "runs/pendulum-s0")
    results = run_experiment("Pendulum-v1", DDPGConfig.preset("pendulum"), seeds=range(4))  # trained together
    result.summary["final_eval_mean"], result.checkpoint

An :class:`Experiment` is the runs of one config and env that differ only in the seed, one run directory
each, trained together in this process by one :class:`~ddpgkit.agents.group.DDPGGroup`. A single run is
the group of one: the same code from preparing its directory to its summary, with one agent's numbers
(``train --seed 3`` and ``train --seeds 3`` are the same run).

Every run writes its directory (:mod:`ddpgkit.storage.rundir`): config.toml first, metrics.csv rows and
periodic checkpoints while it trains, then the final checkpoint (unless the last periodic one was taken at
the same step), learning_curve.png and summary.json. ``resume=True`` continues the runs from the newest step
at which every one of them has a checkpoint that loads (bit-identically when it was taken at an episode
end), or starts them if they have none. :func:`prepare_experiment` does the set-up alone, so a caller can
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
from ..config.resolve import ResolvedConfig, resolve_config
from ..errors import (
    CheckpointError,
    ConfigError,
    NonFiniteError,
    NonFiniteUpdate,
    RunError,
    RunFinished,
    RunInterrupted,
)
from ..storage.atomic import atomic_write_bytes
from ..storage.checkpoint import versions
from ..storage.rundir import (
    BROKEN_BATCH,
    CONFIG,
    CURVE,
    METRICS,
    TENSORBOARD,
    RunLock,
    best_checkpoint_dir,
    check_run_dirs,
    checkpoint_dir,
    checkpoints_by_step,
    list_checkpoints,
    mark_run_dir,
    prepare_run_dir,
    read_committed,
    read_metrics,
    read_origin,
    read_summary,
    run_diverged,
    run_finished,
    write_metrics,
    write_summary,
)
from ..training.callbacks import Checkpointer, GroupCommit, MetricsCSV
from ..training.loop import METRIC_COLUMNS, Callback, Trainer
from ..training.tensorboard import TensorBoardSink

#: What may differ between a run's own config and the one given to resume it.
RESUMABLE_CHANGES = ("total_steps", "device", "threads")


def default_run_dir(env_id: str, seed: int) -> Path:
    """``runs/<env id>-s<seed>`` (a ``/`` in the id becomes ``_``)."""
    return Path("runs") / f"{env_id.replace('/', '_')}-s{seed}"


def run_dirs_for(env_id: str, seeds: Sequence[int], run_dirs: str | Path | Sequence[str | Path] | None = None,
                 parent: str | Path | None = None) -> list[Path]:
    """One run directory per seed: ``run_dirs`` (one path for one seed, or one per seed), else
    ``<parent>/<env id>-s<seed>`` (``parent`` defaults to ``runs``). ConfigError unless there are as many as
    seeds, all different."""
    if run_dirs is None:
        dirs = [default_run_dir(env_id, s) if parent is None else Path(parent) / default_run_dir(env_id, s).name
                for s in seeds]
    else:
        dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    if len(dirs) != len(seeds):
        raise ConfigError(f"{len(dirs)} run directories for {len(seeds)} seeds")
    if len(set(dirs)) != len(dirs):
        raise ConfigError("every seed needs its own run directory")
    return dirs


def load_latest(run_dirs: str | Path | Sequence[str | Path], device: str | None = None
                ) -> tuple[list[DDPG], list[Path], list[str]]:
    """The agents of the newest step at which every run directory holds a checkpoint that loads completely
    (checksums, shapes, training state), their checkpoints, and why any newer ones were skipped. One run
    directory: its newest checkpoint that loads. (The runs of a group resume from one step, together.)"""
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    found = [checkpoints_by_step(d) for d in dirs]
    steps = sorted(set.intersection(*(set(f) for f in found)), reverse=True) if found else []
    skipped: list[str] = []
    for step in steps:
        try:
            agents = [DDPG.load(f[step], device=device) for f in found]
            return agents, [f[step] for f in found], skipped
        except CheckpointError as e:
            skipped.append(str(e))
    where = str(dirs[0]) if len(dirs) == 1 else "the group's run directories"
    if skipped:
        what = "a valid checkpoint" if len(dirs) == 1 else "a step at which every run has a valid checkpoint"
        raise RunError(f"{where}: no {what} ({skipped[0]})")
    have = [str(d) for d, f in zip(dirs, found) if f]
    if have:
        why = "" if any(read_committed(d) for d in dirs) else (
            "; the group's first checkpoint was interrupted before every run had saved it: `ddpgkit train ... "
            "--resume` starts them again")
        raise RunError(f"{where}: no checkpoint at a common step ({', '.join(have)} have some){why}")
    raise RunError(f"{where}: no checkpoints; is this a ddpgkit run directory?")


@dataclass
class RunResult:
    """What a finished run left: its directory, the trained agent, summary.json's content, the
    final checkpoint, and every checkpoint saved by this call (step, path) in order."""

    run_dir: Path
    agent: DDPG
    summary: dict[str, Any]
    checkpoint: Path | None  # None: a run that diverged before its first checkpoint
    saved: list[tuple[int, Path]] = field(default_factory=list)


@dataclass
class Run:
    """One run of an experiment: its agent (fresh, or loaded from ``resumed_from``) and its directory."""

    agent: DDPG
    run_dir: Path
    resumed_from: Path | None = None
    origin: dict[str, str] | None = None  # config.toml's [origin]: where the hyperparameters came from
    retired: bool = False  # it diverged before (summary.json says so): it keeps its place in the group, frozen


#: what a run of an experiment opens and makes before training: its metrics.csv writer, its checkpointer, and
#: all its own callbacks (those two, and any sinks)
_Begun = tuple[MetricsCSV, Checkpointer, list[Callback]]


@dataclass
class Experiment:
    """Runs of one config and env that differ only in the seed, ready to train together in this process
    (module doc): ``runs`` in seed order, the preset name to record, and the newer checkpoints that were
    skipped because they did not load."""

    runs: list[Run]
    preset: str | None = None
    skipped: list[str] = field(default_factory=list)
    locks: list[RunLock] = field(default_factory=list, repr=False)  # one writer per run directory, until run() ends

    def close(self) -> None:
        """Let other processes write these run directories (what :meth:`run` does when it ends; for an
        experiment prepared and not run)."""
        for lock in self.locks:
            lock.release()

    def __enter__(self) -> Experiment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def agents(self) -> list[DDPG]:
        """The runs' agents, in order."""
        return [r.agent for r in self.runs]

    @property
    def run_dirs(self) -> list[Path]:
        """The runs' directories, in order."""
        return [r.run_dir for r in self.runs]

    @property
    def seeds(self) -> list[int]:
        """The runs' seeds, in order."""
        return [r.agent.config.seed for r in self.runs]

    @property
    def total_steps(self) -> int:
        """The environment steps every run trains to (``config.total_steps``)."""
        return self.runs[0].agent.config.total_steps

    @property
    def active(self) -> list[Run]:
        """The runs that train (all but those that diverged before)."""
        return [r for r in self.runs if not r.retired]

    @property
    def step(self) -> int:
        """The step the runs start from (0, or their checkpoints')."""
        return self.active[0].agent.num_timesteps

    @property
    def resumed_from(self) -> Path | None:
        """The first run's checkpoint when resumed (every run resumes from the same step), else None."""
        return self.active[0].resumed_from

    @property
    def origin(self) -> dict[str, str] | None:
        """Where the runs' hyperparameters came from (config.toml's ``[origin]``)."""
        return self.runs[0].origin

    def run(self, callbacks: Callback | Iterable[Callback] = (), handle_signals: bool = False,
            tensorboard: bool = False) -> list[RunResult]:
        """Train every run to ``config.total_steps`` together, writing its run directory (module doc); one
        :class:`RunResult` per run, in order.

        ``callbacks`` see every run (each hook once per run, with that run's trainer). Checkpoints are taken for
        every run at the same step, at a moment when all of them are between episodes (a group waits at most one
        episode's time limit, else saves mid-episode), so the runs resume from them exactly.
        ``handle_signals`` (main thread only): SIGINT/SIGTERM save a checkpoint at the end of the current
        episode and stop (a second signal saves at once), then :class:`~ddpgkit.errors.RunInterrupted` is raised
        with exit status 128 + signal. Any other exception leaves the last periodic checkpoints as they were.
        ``tensorboard``: also write every metrics row to ``<run>/tensorboard`` (the optional extra).
        """
        shared = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
        active = self.active
        # what is opened before training starts is closed if a later part of the setup fails
        sinks: dict[Path, TensorBoardSink] = {}
        begun: dict[Path, _Begun] = {}
        try:
            for r in active if tensorboard else []:  # a resumed run's TensorBoard drops what came after its checkpoint
                purge = r.agent.num_timesteps + 1 if r.resumed_from is not None else None
                sinks[r.run_dir] = TensorBoardSink(r.run_dir / TENSORBOARD, purge_step=purge)
            group, commit = self._setup(sinks, begun)
        except BaseException:
            for metrics, _, _ in begun.values():
                metrics.close()
            for sink in sinks.values():
                sink.close()
            self.close()
            raise
        return self._train(group, begun, sinks, commit, shared, handle_signals)

    def _setup(self, sinks: dict[Path, TensorBoardSink], begun: dict[Path, _Begun]) -> tuple[DDPGGroup, GroupCommit]:
        """The group of the runs and their checkpoint commit; each run's files opened and callbacks made, added
        to ``begun`` one by one (so that a failure closes what was opened)."""
        active = self.active
        group = DDPGGroup(self.agents, retired=[k for k, r in enumerate(self.runs) if r.retired])
        boundary: Callable[[Trainer], bool] | None = None
        patience = None
        if len(self.runs) > 1:  # one agent is between episodes at every episode's end; a group may wait for it
            boundary = lambda trainer: group.at_episode_boundary  # noqa: E731 - one line, read once
            spec = self.runs[0].agent.env.spec
            patience = (spec.max_episode_steps if spec is not None and spec.max_episode_steps else None) or 1000
        # one commit for all runs that train; a run that diverges leaves it (_Diverged)
        commit = GroupCommit([r.run_dir for r in active], self.runs[0].agent.config.keep_checkpoints)
        for r in active:
            begun[r.run_dir] = _begin(r, boundary, patience, commit, [sinks[r.run_dir]] if sinks else [])
        return group, commit

    def _train(self, group: DDPGGroup, begun: dict[Path, _Begun],
               sinks: dict[Path, TensorBoardSink], commit: GroupCommit, shared: list[Callback],
               handle_signals: bool) -> list[RunResult]:
        """:meth:`run` from the start of training: the loop, then the final checkpoints and summaries."""
        active = self.active
        checkpointers = {d: cp for d, (_, cp, _) in begun.items()}
        diverged = {r.run_dir: _Diverged(r, self.preset, commit, checkpointers[r.run_dir],
                                         self.seeds if len(self.runs) > 1 else None) for r in active}
        signals: list[int] = []

        def on_signal(signum: int, frame: Any) -> None:
            signals.append(signum)
            for cp in checkpointers.values():
                cp.request_stop(force=len(signals) > 1)

        handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if handle_signals else {}
        start = time.perf_counter()
        own = [None if r.retired else [*begun[r.run_dir][2], diverged[r.run_dir]] for r in self.runs]
        try:
            group.learn_until(self.total_steps, shared, own)
        except NonFiniteUpdate as e:  # a single run's, or a group's last member's: the run ends here
            k = e.member if e.member is not None else 0
            try:
                error = diverged[self.runs[k].run_dir].fail(e)  # its files, written while the lock is held
            finally:
                self.close()
            raise error from None
        except BaseException:
            self.close()
            raise
        finally:
            for metrics, _, _ in begun.values():
                metrics.close()
            for sink in sinks.values():
                sink.close()
            for s, old in handlers.items():
                signal.signal(s, old)
        if signals:
            self.close()
            name = signal.Signals(signals[0]).name
            saved = [str(cp.saved[-1][1]) if cp.saved else "no checkpoint" for cp in checkpointers.values()]
            where = saved[0] if len(saved) == 1 else f"{len(saved)} checkpoints ({saved[0]}, ...)"
            cmd = "ddpgkit resume " + " ".join(str(d) for d in self.run_dirs)
            raise RunInterrupted(f"{name} at step {self.step:,}: saved {where}; continue with: {cmd}",
                                 128 + signals[0])
        wall = time.perf_counter() - start
        seeds = self.seeds if len(self.runs) > 1 else None
        # the final checkpoints first, committed as one (a periodic one of the same step is not written again),
        # then each run's curve and summary: a run with a summary has its final checkpoint committed
        try:
            training = [r for r in active if not r.agent.trainer.retired]
            finals = {r.run_dir: checkpointers[r.run_dir].save(r.agent.trainer) for r in training}
            return [_finish(r, checkpointers[r.run_dir], finals[r.run_dir], wall, self.preset, seeds)
                    if r.run_dir in finals else _diverged_result(r) for r in self.runs]
        finally:
            self.close()


def _begin(run: Run, boundary: Callable[[Trainer], bool] | None, patience: int | None, commit: GroupCommit,
           extra: list[Callback]) -> _Begun:
    """Write config.toml (and, resumed, the checkpoint's metrics rows); the run's own callbacks."""
    agent, directory = run.agent, run.run_dir
    cfg = agent.config
    if run.resumed_from is not None:  # the metrics rows of the checkpoint, dropping any written after it
        write_metrics(directory / METRICS, METRIC_COLUMNS, agent.trainer.history if agent.trainer else [])
    mark_run_dir(directory)
    origin = dict(run.origin or {})
    if agent.obs_layout.keys is not None:  # a Dict env's keys, in the order the networks read them
        origin["observation"] = agent.obs_layout.describe()
    cfg.save(directory / CONFIG, origin or None)
    metrics = MetricsCSV(directory / METRICS)
    checkpointer = Checkpointer(directory, cfg.checkpoint_interval, cfg.keep_checkpoints, boundary, patience, commit)
    return metrics, checkpointer, [metrics, checkpointer, *extra]


def _finish(run: Run, checkpointer: Checkpointer, ckpt: Path, wall: float, preset: str | None,
            group: list[int] | None) -> RunResult:
    """The learning curve and summary.json, after training and the final checkpoint ``ckpt``."""
    agent, directory = run.agent, run.run_dir
    env_id = agent.env_id or "custom env"
    trainer = agent.trainer
    assert trainer is not None  # training made it
    plot_learning_curves(directory / CURVE, [(env_id, read_metrics(directory / METRICS))],
                         f"{run.agent.config.algorithm()} on {env_id}")
    summary = _summary(run, trainer, preset, group, "finished", ckpt, checkpointer.best, wall)
    write_summary(directory, summary)
    return RunResult(directory, agent, summary, ckpt, list(checkpointer.saved))


def _summary(run: Run, trainer: Trainer, preset: str | None, group: list[int] | None, status: str,
             checkpoint: Path | None, best: tuple[int, float, float] | None, wall: float) -> dict[str, Any]:
    """summary.json's content: ``status`` "finished" (trained to total_steps) or "diverged"."""
    agent, directory, cfg = run.agent, run.run_dir, run.agent.config
    mean, std = trainer.last_eval if trainer.last_eval is not None else (float("nan"), float("nan"))
    if status != "finished":
        mean, std = float("nan"), float("nan")  # no final evaluation of a run that did not finish
    best_step, best_mean, best_std = best if best else (None, float("nan"), float("nan"))
    evals = [r for r in trainer.history if r.get("eval_mean") is not None]
    # goal envs: the share of the final evaluation's episodes that ended in success (None where not reported)
    success = evals[-1].get("eval_success_rate") if evals and status == "finished" else None
    return {
        "env_id": agent.env_id or "custom env", "seed": cfg.seed, "status": status, "steps": trainer.step,
        "episodes": trainer.episodes, "final_eval_mean": mean, "final_eval_std": std,
        "final_eval_success_rate": success,
        "eval_episodes": cfg.eval_episodes, "wall_s": wall, "train_s": trainer.elapsed_s,
        "steps_per_s": trainer.step / trainer.elapsed_s if trainer.elapsed_s > 0 else None,
        "best_eval_mean": best_mean, "best_eval_std": best_std, "best_step": best_step,
        "best_checkpoint": (str(best_checkpoint_dir(directory).relative_to(directory)) if best_step is not None
                            else None),
        "checkpoint": str(checkpoint.relative_to(directory)) if checkpoint is not None else None, "preset": preset,
        "defaults": (run.origin or {}).get("defaults"), "resumed": run.resumed_from is not None,
        "group_seeds": group, "health_warnings": health_warnings(trainer.history), "versions": versions(),
    }


def result_of(run_dir: str | Path, saved: Sequence[tuple[int, Path]] = ()) -> RunResult:
    """The result a finished or diverged run left in its directory: its summary.json and the agent of the
    checkpoint it names (a run that diverged before its first checkpoint: an agent built from its config)."""
    d = Path(run_dir)
    summary = read_summary(d)
    ckpt = d / summary["checkpoint"] if summary.get("checkpoint") else None
    if ckpt is not None:  # the policy and its step, without the replay buffer (a result is for evaluating)
        agent = DDPG.load(ckpt, training_state=False)
    else:
        agent = DDPG(summary["env_id"], DDPGConfig.load(d / CONFIG))
    return RunResult(d, agent, summary, ckpt, list(saved))


def finished_results(run_dirs: Sequence[str | Path]) -> list[RunResult]:
    """The results finished (or diverged) runs left in their directories, in order (:func:`result_of`)."""
    return [result_of(d) for d in run_dirs]


class _Diverged(Callback):
    """What a run that diverged leaves: the batch its update broke on (:data:`BROKEN_BATCH`) and a summary.json
    whose ``status`` is ``diverged`` (with the step and the signal); in a group it also leaves the group's
    checkpoint commit, and the others go on."""

    def __init__(self, run: Run, preset: str | None, commit: GroupCommit, checkpointer: Checkpointer,
                 group: list[int] | None) -> None:
        self.run, self.preset, self.commit, self.checkpointer, self.group = run, preset, commit, checkpointer, group

    def on_diverged(self, trainer: Trainer, error: NonFiniteUpdate) -> None:
        """A group's member diverged: its files, and it leaves the commit."""
        self._write(error)
        self.commit.retire(self.run.run_dir)

    def fail(self, error: NonFiniteUpdate) -> NonFiniteError:
        """A single run (or a group's last member) diverged: its files, and the one line the run fails with."""
        path = self._write(error)
        saved = [s for s, _ in self.checkpointer.saved] or [int(p.name) for p in list_checkpoints(self.run.run_dir)
                                                             if p.name.isdigit()]
        last = f"the last checkpoint (step {max(saved):,}) is as it was" if saved else "no checkpoint was taken yet"
        return NonFiniteError(f"{error}; {last}; the batch: {path}")

    def _write(self, error: NonFiniteUpdate) -> Path:
        run, agent = self.run.run_dir, self.run.agent
        path = run / BROKEN_BATCH
        atomic_write_bytes(path, st_save({name: t.detach().contiguous().cpu() for name, t in
                                          error.batch._asdict().items() if t is not None}))
        trainer = agent.trainer
        saved = [s for s, _ in self.checkpointer.saved] or sorted(checkpoints_by_step(run))
        summary = _summary(self.run, trainer, self.preset, self.group, status="diverged",
                           checkpoint=checkpoint_dir(run, max(saved)) if saved else None,
                           best=self.checkpointer.best, wall=trainer.elapsed_s if trainer else 0.0)
        summary.update(diverged_at=error.step, signal=error.signal, batch=BROKEN_BATCH)
        write_summary(run, summary)
        return path


def _diverged_result(run: Run) -> RunResult:
    """The result a run that diverged left (now or before): its summary, its last checkpoint if any, and the
    agent as it was when it stopped."""
    summary = read_summary(run.run_dir)
    ckpt = summary.get("checkpoint")
    return RunResult(run.run_dir, run.agent, summary, run.run_dir / ckpt if ckpt else None)


def _never_committed(dirs: list[Path]) -> bool:
    """A group whose first checkpoint was interrupted before every run had saved it: none has ever committed one
    (``checkpoints/committed.json``) nor finished, the runs that still train have no step in common, and those
    with a checkpoint hold just that first one, of one step. It has nothing to resume from; its runs start
    again (their uncommitted checkpoints go with the run files). Anything else without a common step — runs of
    other groups, or of a ddpgkit from before group commits — is refused by :func:`load_latest`, never
    started over."""
    if len(dirs) < 2 or any(read_committed(d) for d in dirs):
        return False
    if any(run_finished(d) and not run_diverged(d) for d in dirs):
        return False
    training = [d for d in dirs if not run_diverged(d)] or dirs
    steps = [set(checkpoints_by_step(d)) for d in training]
    saved = {frozenset(s) for s in steps if s}
    return not set.intersection(*steps) and len(saved) == 1 and len(next(iter(saved))) == 1


def _check_same_run(agent: DDPG, env_id: str, config: DDPGConfig) -> None:
    if agent.env_id != env_id:
        raise ConfigError(f"resume: the run trained {agent.env_id}, not {env_id}")
    saved, given = agent.config.to_dict(), config.to_dict()
    for key in saved:
        if key not in RESUMABLE_CHANGES and saved[key] != given[key]:
            raise ConfigError(f"resume continues the run's own config, but {key} differs "
                              f"(run: {saved[key]!r}, given: {given[key]!r})")


def _load_for_resume(dirs: list[Path], device: str | None, env: str | None = None,
                     configs: list[DDPGConfig] | None = None
                     ) -> tuple[list[DDPG], list[Path | None], list[str], list[bool]]:
    """The agents a group resumes with: those still training from their newest common checkpoint
    (:func:`load_latest`), and each run that diverged before (its summary.json says so) retired, from its own
    newest checkpoint that loads or, without one, built afresh — its slice only keeps its place in the stack.
    (agents, their checkpoints, why newer checkpoints were skipped, which are retired.)"""
    retired = [run_diverged(d) for d in dirs]
    active = [d for d, gone in zip(dirs, retired) if not gone]
    if not active:
        raise RunFinished(f"{dirs[0] if len(dirs) == 1 else 'every run'} diverged: nothing left to train", dirs)
    loaded, ckpts, skipped = load_latest(active, device)
    by_dir = dict(zip(active, zip(loaded, ckpts)))
    agents: list[DDPG] = []
    checkpoints: list[Path | None] = []
    for k, d in enumerate(dirs):
        if d in by_dir:
            agent, ckpt = by_dir[d]
        else:
            agent, ckpt = _retired_agent(d, device, env or loaded[0].env_id, configs[k] if configs else None)
        agents.append(agent)
        checkpoints.append(ckpt)
    return agents, checkpoints, skipped, retired


def _retired_agent(run: Path, device: str | None, env: str | None, config: DDPGConfig | None
                   ) -> tuple[DDPG, Path | None]:
    for ckpt in list_checkpoints(run):
        try:
            return DDPG.load(ckpt, device=device), ckpt
        except CheckpointError:
            continue
    config = config if config is not None else DDPGConfig.load(run / CONFIG)
    if env is None:
        raise RunError(f"{run}: diverged before its first checkpoint, and no other run says which env it trained")
    return DDPG(env, config.replace(device=device) if device else config), None


def _resumed(agents: list[DDPG], checkpoints: list[Path | None], dirs: list[Path], skipped: list[str],
             preset: str | None, total_steps: int, threads: int | None, locks: list[RunLock],
             retired: list[bool]) -> Experiment:
    """The experiment that continues ``agents`` (loaded from ``checkpoints`` of ``dirs``) to ``total_steps``.
    RunFinished if every run has finished (or diverged) already; RunError if one has trained past it."""
    for agent, ckpt, gone in zip(agents, checkpoints, retired):
        if agent.trainer is None and not gone:
            raise RunError(f"{ckpt}: holds no training state (saved with training_state=False); cannot resume")
    active = [(a, d) for a, d, gone in zip(agents, dirs, retired) if not gone]
    done = active[0][0].num_timesteps
    where = str(dirs[0]) if len(dirs) == 1 else f"the {len(dirs)} runs ({dirs[0]}, ...)"
    if total_steps < done or all(run_finished(d, total_steps) for _, d in active):
        message = f"{where} already has {done:,} steps; ask for more than that to train further"
        if total_steps < done:
            raise RunError(message)
        raise RunFinished(message, dirs)
    changes: dict[str, Any] = {"total_steps": total_steps}
    if threads is not None:
        changes["threads"] = threads
    for agent in agents:
        agent.config = agent.config.replace(**changes)
    runs = [Run(a, d, resumed_from=c, origin=read_origin(d), retired=gone)
            for a, c, d, gone in zip(agents, checkpoints, dirs, retired)]
    return Experiment(runs, preset, skipped, locks)


def prepare_experiment(env: str, config: DDPGConfig | ResolvedConfig | None = None,
                       run_dirs: str | Path | Sequence[str | Path] | None = None, *, seeds: Iterable[int] | None = None,
                       preset: str | None = None, resume: bool = False, overwrite: bool = False,
                       origin: dict[str, str] | None = None) -> Experiment:
    """Set up runs of DDPG on ``env``: one per seed of ``seeds`` (default: the config's one seed), in
    ``run_dirs`` (one path for one run, or one per seed; default ``runs/<env>-s<seed>`` each), to train together.

    ``config``: a :class:`~ddpgkit.config.ddpg.DDPGConfig` (recorded as given, or with ``origin``), a
    :class:`~ddpgkit.config.resolve.ResolvedConfig` (its origin recorded), or None for
    :func:`~ddpgkit.config.resolve.resolve_config` ``(env, preset)``: the preset if named, else the env's
    entry in the hyperparameter table, else the general defaults. ``preset`` is recorded in summary.json.

    Directories that already hold runs are refused unless ``overwrite`` (their run files are removed) or
    ``resume``: then the runs continue from the newest step at which all of them have a checkpoint that loads
    (:func:`load_latest`), with the given config's ``total_steps``, ``device`` and ``threads``; any other
    difference is a ConfigError; runs that have finished at ``total_steps`` raise
    :class:`~ddpgkit.errors.RunFinished`.
    """
    if config is None:
        config = resolve_config(env, preset)
    resolved = config if isinstance(config, ResolvedConfig) else ResolvedConfig.given(config)
    base = resolved.config
    seed_list = list(seeds) if seeds is not None else [base.seed]
    configs = [base.replace(seed=s) for s in seed_list]
    check_groupable(configs)
    dirs = run_dirs_for(env, seed_list, run_dirs)
    check_run_dirs(dirs, resume=resume, overwrite=overwrite)  # before any directory is touched
    locks = _lock(dirs)
    try:
        check_run_dirs(dirs, resume=resume, overwrite=overwrite)  # again, now that no one else can write them
        if resume and any(list_checkpoints(d) for d in dirs) and not _never_committed(dirs):
            agents, ckpts, skipped, retired = _load_for_resume(dirs, base.device, env, configs)
            for agent, c, gone in zip(agents, configs, retired):
                if not gone:
                    _check_same_run(agent, env, c)
            return _resumed(agents, ckpts, dirs, skipped, preset, base.total_steps, base.threads, locks, retired)
        agents = [DDPG(env, c) for c in configs]
        for d in dirs:
            prepare_run_dir(d, overwrite or resume)
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    record = origin if origin is not None else resolved.origin
    return Experiment([Run(a, d, origin=record) for a, d in zip(agents, dirs)], preset, locks=locks)


def _lock(dirs: list[Path]) -> list[RunLock]:
    """One writer per run directory: the lock of each (storage.rundir.RunLock), or none and a RunError naming the
    holder of the first that another process holds."""
    locks: list[RunLock] = []
    try:
        for d in dirs:
            locks.append(RunLock(d))
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return locks


def resume_experiment(run_dirs: str | Path | Sequence[str | Path], total_steps: int | None = None,
                      device: str | None = None, threads: int | None = None) -> Experiment:
    """Continue the runs in ``run_dirs`` (one directory, or the runs of one group) from the newest step at which
    every one of them has a checkpoint that loads, to ``total_steps`` (default: the runs' own), on ``device``
    and with ``threads`` when given (else the runs'). :class:`~ddpgkit.errors.RunFinished` if they have
    finished at that many steps already."""
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    for d in dirs:
        if not d.is_dir():
            raise RunError(f"{d}: no such run directory")
    locks = _lock(dirs)
    try:
        agents, ckpts, skipped, retired = _load_for_resume(dirs, device)
        check_groupable([a.config for a in agents])
        active = [a for a, gone in zip(agents, retired) if not gone]
        steps = total_steps if total_steps is not None else active[0].config.total_steps
        return _resumed(agents, ckpts, dirs, skipped, None, steps, threads, locks, retired)
    except BaseException:
        for lock in locks:
            lock.release()
        raise


def run_experiment(env: str, config: DDPGConfig | ResolvedConfig | None = None,
                   run_dirs: str | Path | Sequence[str | Path] | None = None, *, seeds: Iterable[int] | None = None,
                   preset: str | None = None, resume: bool = False, overwrite: bool = False,
                   origin: dict[str, str] | None = None, callbacks: Callback | Iterable[Callback] = (),
                   handle_signals: bool = False, tensorboard: bool = False) -> list[RunResult]:
    """:func:`prepare_experiment` then :meth:`Experiment.run`: train DDPG on ``env`` into run directories, the
    same files and numbers as ``ddpgkit train`` (``--seeds``); one :class:`RunResult` per run."""
    exp = prepare_experiment(env, config, run_dirs, seeds=seeds, preset=preset, resume=resume, overwrite=overwrite,
                             origin=origin)
    return exp.run(callbacks, handle_signals=handle_signals, tensorboard=tensorboard)
