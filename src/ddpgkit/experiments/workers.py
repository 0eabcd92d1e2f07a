"""The seeds of one config in several worker processes (``ddpgkit train --seeds 0-9 --workers 2``)::

    from ddpgkit import DDPGConfig
    from ddpgkit.experiments.workers import run_workers

    if __name__ == "__main__":  # each worker starts by importing this script: it must not start workers again
        results = run_workers("Pendulum-v1", DDPGConfig.preset("pendulum"), seeds=range(10), workers=2)

The seeds are split into contiguous shares of sizes that differ by at most one (:func:`split_seeds`: 0-4
and 5-9), and each share trains as one experiment (:class:`~ddpgkit.experiments.run.Experiment`) in its own
process, started fresh (``spawn``) with the config's thread count: one process per core is how a machine's
cores train many seeds at once, each process keeping the group's batched update. Every seed gets its
ordinary run directory, written as one process would write it; a share of one seed is an ordinary run.

The share a seed trains in is part of what it computes (batched products may round differently with the
group's size), so resuming with the same ``workers`` continues every seed bit-identically; each share
resumes from its own newest common checkpoint.

Signals: the workers run in their own process group, so a Ctrl-C at the terminal reaches this process
alone, which passes each SIGINT/SIGTERM on to every worker once (the first: checkpoint at the end of the
episode and stop; a second: checkpoint at once). A worker whose parent has died stops the same way.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..agents.ddpg import DDPG
from ..agents.group import check_groupable
from ..config.ddpg import DDPGConfig
from ..config.resolve import ResolvedConfig
from ..config.seeds import seed_ranges
from ..errors import ConfigError, DDPGKitError, RunError, RunFinished, RunInterrupted, one_line
from ..storage.rundir import check_run_dirs
from ..training.loop import Callback, Trainer
from .run import RunResult, finished_results, prepare_experiment, result_of, resume_experiment, run_dirs_for

REPORT_EVERY = 500  # a worker reports its step to the parent every this many steps


def split_seeds(seeds: Sequence[int], workers: int) -> list[list[int]]:
    """``seeds`` in at most ``workers`` contiguous shares whose sizes differ by at most one, larger first:
    ``split_seeds(range(10), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]``."""
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    seeds = list(seeds)
    workers = min(workers, len(seeds))
    size, extra = divmod(len(seeds), workers)
    shares, start = [], 0
    for k in range(workers):
        end = start + size + (k < extra)
        shares.append(seeds[start:end])
        start = end
    return shares


def _send(channel: Connection, message: tuple) -> bool:
    """Send ``message`` to the parent; False (and a SIGTERM to this worker: checkpoint at the episode's end,
    stop) when the parent is gone."""
    try:
        channel.send(message)
        return True
    except (BrokenPipeError, ConnectionResetError):
        os.kill(os.getpid(), signal.SIGTERM)
        return False


class _Reporter(Callback):
    """In a worker: its step to the parent every REPORT_EVERY steps, and its evaluations; a SIGTERM to
    itself if the parent is gone (the pipe is broken, or the worker was handed to another parent)."""

    def __init__(self, channel: Connection, index: int, parent: int) -> None:
        self.channel, self.index, self.parent = channel, index, parent

    def on_step(self, trainer: Trainer) -> None:
        if trainer.step % REPORT_EVERY == 0:
            if os.getppid() != self.parent:  # orphaned: stop as on a signal
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                _send(self.channel, ("step", self.index, trainer.step))

    def on_eval(self, trainer: Trainer, returns: Any) -> None:
        _send(self.channel, ("eval", self.index, float(returns.mean()), float(returns.std())))


def _worker(channel: Connection, index: int, mode: str, env: str | None, config: dict[str, Any] | None,
            seeds: list[int], dirs: list[str], options: dict[str, Any], parent: int) -> None:
    """One worker process: prepare (``mode`` "train") or resume (``mode`` "resume") its share, train it,
    and report ``start``, ``step``/``eval`` messages, then ``done``, ``interrupted`` or ``error`` on its
    own pipe to the parent (one writer per pipe: a worker killed mid-message breaks only its own)."""
    os.setpgrp()  # the terminal's Ctrl-C reaches the parent, which passes it on once
    try:
        try:
            if mode == "train":
                assert config is not None and env is not None
                exp = prepare_experiment(env, DDPGConfig.from_dict(config), dirs, seeds=seeds, preset=options["preset"],
                                         resume=options["resume"], overwrite=options["overwrite"],
                                         origin=options["origin"])
            else:
                exp = resume_experiment(dirs, options["total_steps"], options["device"], options["threads"])
        except RunFinished:  # resumed after another share had failed: this one had finished
            results = finished_results(dirs)
            _send(channel, ("start", index, results[0].summary["steps"], None))
        else:
            _send(channel, ("start", index, exp.step, None if exp.resumed_from is None else str(exp.resumed_from)))
            results = exp.run(_Reporter(channel, index, parent), handle_signals=True,
                              tensorboard=options["tensorboard"])
        final: tuple = ("done", index, [(str(r.run_dir), str(r.checkpoint) if r.checkpoint else None,
                                         [(s, str(p)) for s, p in r.saved]) for r in results])
    except RunInterrupted as e:
        final = ("interrupted", index, str(e), e.code)
    except DDPGKitError as e:
        final = ("error", index, one_line(e), 1)
    except Exception as e:  # noqa: BLE001 - reported to the parent in one line, with its type
        final = ("error", index, f"{type(e).__name__}: {one_line(e)}", 1)
    try:
        channel.send(final)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone; the run directories hold what there is
    channel.close()


@dataclass
class WorkerEvent:
    """What a worker reported, for a caller's progress display: ``kind`` "start" (``step`` it starts at,
    ``resumed_from``), "step" (``step`` reached) or "eval" (``mean``, ``std``); ``share``: the worker's
    index in :attr:`WorkerGroups.shares`, ``seeds``: that share."""

    kind: str
    share: int
    seeds: list[int]
    step: int = 0
    resumed_from: str | None = None
    mean: float = float("nan")
    std: float = float("nan")


@dataclass
class WorkerGroups:
    """The shares of a group of seeds, ready to train in one worker process each (module doc).

    Build with :func:`prepare_workers` or :func:`resume_workers`; :meth:`run` trains them."""

    mode: str  # "train" or "resume"
    env: str | None  # the env id ("train"); None when resumed (each checkpoint knows its env)
    config: DDPGConfig | None  # the shared config ("train"), None when resumed from the run directories
    shares: list[list[int]]
    dirs: list[list[Path]]
    options: dict[str, Any]

    @property
    def run_dirs(self) -> list[Path]:
        """Every seed's run directory, in seed order."""
        return [d for share in self.dirs for d in share]

    def resume_command(self) -> str:
        """The command that continues these runs with the same shares."""
        return f"ddpgkit resume {' '.join(map(str, self.run_dirs))} --workers {len(self.shares)}"

    def run(self, on_event: Callable[[WorkerEvent], None] | None = None,
            handle_signals: bool = False) -> list[RunResult]:
        """Start one process per share, wait for all, and return one
        :class:`~ddpgkit.experiments.run.RunResult` per seed in seed order (each agent loaded from its run's
        final checkpoint). ``on_event`` sees the workers' reports.
        ``handle_signals`` (main thread only): pass SIGINT/SIGTERM on to the workers (module doc); when
        they stop on one, :class:`~ddpgkit.errors.RunInterrupted` is raised with the command that continues.
        A worker that fails is reported as :class:`~ddpgkit.errors.RunError` naming its seeds, after the
        other workers have finished their runs."""
        _refuse_in_a_starting_worker()
        ctx = multiprocessing.get_context("spawn")
        config = self.config.to_dict() if self.config is not None else None
        pipes = [ctx.Pipe(duplex=False) for _ in self.shares]  # (reader, writer), one per worker
        procs = [ctx.Process(target=_worker, name=f"ddpgkit-worker-{k}", daemon=False,
                             args=(pipes[k][1], k, self.mode, self.env, config, share, [str(d) for d in dirs],
                                   self.options, os.getpid()))
                 for k, (share, dirs) in enumerate(zip(self.shares, self.dirs))]

        def forward(signum: int, frame: Any) -> None:
            for p in procs:
                if p.pid is not None and p.exitcode is None:
                    os.kill(p.pid, signum)

        handlers = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)} if handle_signals else {}
        finals: dict[int, tuple[str, Any, Any]] = {}
        try:
            for p, (_, writer) in zip(procs, pipes):
                p.start()
                writer.close()  # the worker holds the only writer: its exit is the reader's end of file
            readers = {reader: k for k, (reader, _) in enumerate(pipes)}
            while readers:
                for reader in wait(list(readers)):
                    k = readers[reader]
                    try:
                        msg = reader.recv()
                    except EOFError:  # the worker has exited
                        del readers[reader]
                        if k not in finals:  # without a last word: killed, out of memory
                            procs[k].join()
                            finals[k] = ("error", f"the worker process exited with status {procs[k].exitcode}", 1)
                        continue
                    self._receive(msg, finals, on_event)
        finally:
            for p in procs:
                p.join(timeout=None if len(finals) == len(procs) else 5)
                if p.exitcode is None:
                    p.terminate()
                    p.join()
            for reader, _ in pipes:
                reader.close()
            for s, old in handlers.items():
                signal.signal(s, old)
        return self._results(finals)

    def _receive(self, msg: tuple, finals: dict[int, tuple[str, Any, Any]],
                 on_event: Callable[[WorkerEvent], None] | None) -> None:
        kind, k = msg[0], msg[1]
        if kind in ("done", "error", "interrupted"):
            finals[k] = (kind, msg[2], msg[3] if len(msg) > 3 else None)
        elif on_event is not None:
            seeds = self.shares[k]
            if kind == "start":
                on_event(WorkerEvent("start", k, seeds, step=msg[2], resumed_from=msg[3]))
            elif kind == "step":
                on_event(WorkerEvent("step", k, seeds, step=msg[2]))
            elif kind == "eval":
                on_event(WorkerEvent("eval", k, seeds, mean=msg[2], std=msg[3]))

    def _results(self, finals: dict[int, tuple[str, Any, Any]]) -> list[RunResult]:
        failed = [(self.shares[k], msg) for k, (kind, msg, _) in sorted(finals.items()) if kind == "error"]
        stopped = [(k, msg, code) for k, (kind, msg, code) in sorted(finals.items()) if kind == "interrupted"]
        if failed:
            seeds, msg = failed[0]
            more = f" (and {len(failed) - 1} more worker(s))" if len(failed) > 1 else ""
            raise RunError(f"seeds {seed_ranges(seeds)}: {msg}{more}")
        if stopped:
            code = stopped[0][2]
            name = signal.Signals(code - 128).name if 128 < code < 128 + 65 else "a signal"
            raise RunInterrupted(f"{name}: every worker saved a checkpoint; continue with: {self.resume_command()}",
                                 code)
        return [result_of(run, [(s, Path(p)) for s, p in saved])
                for k in range(len(self.shares)) for run, _, saved in finals[k][1]]


def _refuse_in_a_starting_worker() -> None:
    """A ConfigError in a ``spawn``-ed child still importing its parent's main script (a script that starts
    workers at its top level: starting processes there fails with an obscure error). multiprocessing's own
    flag for that state is private: read with a default, so that its absence only loses this check
    (tests/test_workers.py guards it)."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError("workers were asked for while a worker process was starting: workers start by importing "
                          "the script that started them, so a script must start them under "
                          "`if __name__ == \"__main__\":`")


def prepare_workers(env: str, config: DDPGConfig | ResolvedConfig, seeds: Sequence[int],
                    run_dirs: Sequence[str | Path] | None = None, *, workers: int, preset: str | None = None,
                    resume: bool = False, overwrite: bool = False, origin: dict[str, str] | None = None,
                    tensorboard: bool = False) -> WorkerGroups:
    """The seeds of ``config`` split over ``workers`` processes (module doc), checked here before any
    process starts: the configs group, the env can be made for them, every seed has its own run directory,
    and none holds a run unless ``overwrite`` or ``resume``. The arguments are those of
    :func:`~ddpgkit.experiments.run.prepare_experiment`; ``tensorboard``: every run also writes
    ``<run>/tensorboard``."""
    _refuse_in_a_starting_worker()
    if isinstance(config, ResolvedConfig):
        config, origin = config.config, origin if origin is not None else config.origin
    seeds = list(seeds)
    configs = [config.replace(seed=s) for s in seeds]
    check_groupable(configs)
    dirs = run_dirs_for(env, seeds, run_dirs)
    check_run_dirs(dirs, resume=resume, overwrite=overwrite)
    DDPG(env, configs[0]).close()  # a bad env id or an env the config cannot train fails here, once
    shares = split_seeds(seeds, workers)
    index = {s: d for s, d in zip(seeds, dirs)}
    return WorkerGroups("train", env, config, shares, [[index[s] for s in share] for share in shares],
                        {"preset": preset, "resume": resume, "overwrite": overwrite, "origin": origin,
                         "tensorboard": tensorboard})


def resume_workers(run_dirs: Sequence[str | Path], *, workers: int, total_steps: int | None = None,
                   device: str | None = None, threads: int | None = None, tensorboard: bool = False) -> WorkerGroups:
    """``ddpgkit resume RUN ... --workers K``: the run directories (in the order given) split into the same
    contiguous shares as when they were started with ``workers`` processes, each resumed as its own group
    (:func:`~ddpgkit.experiments.run.resume_experiment`)."""
    _refuse_in_a_starting_worker()
    dirs = [Path(r) for r in run_dirs]
    for r in dirs:
        if not r.is_dir():
            raise RunError(f"{r}: no such run directory")
    configs = [DDPGConfig.load(r / "config.toml") for r in dirs]
    check_groupable(configs)
    positions = split_seeds(list(range(len(dirs))), workers)
    return WorkerGroups("resume", None, None,
                        [[configs[i].seed for i in share] for share in positions],
                        [[dirs[i] for i in share] for share in positions],
                        {"total_steps": total_steps, "device": device, "threads": threads,
                         "tensorboard": tensorboard})


def run_workers(env: str, config: DDPGConfig | ResolvedConfig, seeds: Sequence[int] = range(10),
                run_dirs: Sequence[str | Path] | None = None, *, workers: int = 2, preset: str | None = None,
                resume: bool = False, overwrite: bool = False, origin: dict[str, str] | None = None,
                tensorboard: bool = False, on_event: Callable[[WorkerEvent], None] | None = None,
                handle_signals: bool = False) -> list[RunResult]:
    """:func:`prepare_workers` then :meth:`WorkerGroups.run`: the same run directories as
    :func:`~ddpgkit.experiments.run.run_experiment` with ``seeds``, the seeds trained in ``workers`` processes."""
    groups = prepare_workers(env, config, seeds, run_dirs, workers=workers, preset=preset, resume=resume,
                             overwrite=overwrite, origin=origin, tensorboard=tensorboard)
    return groups.run(on_event, handle_signals)
