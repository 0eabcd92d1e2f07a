"""``ddpgkit train`` and ``ddpgkit resume``: parse, call :mod:`ddpgkit.experiments.run`, print."""

from __future__ import annotations

import inspect
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer

from ..config.ddpg import DDPGConfig
from ..config.presets import PRESETS
from ..config.resolve import resolve_config
from ..config.seeds import parse_seeds, seed_ranges
from ..experiments.run import Experiment, RunResult, prepare_experiment, resume_experiment, run_dirs_for
from ..experiments.workers import WorkerEvent, WorkerGroups, prepare_workers, resume_workers
from ..storage.rundir import CONFIG, CURVE, METRICS, SUMMARY
from .app import UserError, app, parse_hidden, print_kv, warn
from .progress import TrainingProgress

_FIELD_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple[int, ...]": str}


def _config_options() -> list[inspect.Parameter]:
    """One CLI option per DDPGConfig field (``--actor-lr``, ...), generated from the dataclass so the
    flags, their help and the config file can never disagree. ``None`` means: not given."""
    params = []
    for f in fields(DDPGConfig):
        py_type = _FIELD_TYPES[str(f.type)]
        default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        option = typer.Option(None, "--" + f.name.replace("_", "-"), *f.metadata["flags"],
                              help=f"{f.metadata['help']} [default: {default}]", show_default=False,
                              rich_help_panel="Hyperparameters (DDPGConfig)")
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[py_type]))  # noqa: UP045 - typer needs Optional
    return params


def _with_config_options(func):
    """Add the DDPGConfig options to a command whose function takes ``**overrides``."""
    sig = inspect.signature(func)
    own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = sig.replace(parameters=own + _config_options())
    return func


def _given(overrides: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameter flags given on the command line, by field name (``--hidden`` parsed)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if "hidden" in given:
        given["hidden"] = parse_hidden(given["hidden"])
    return given


@app.command()
@_with_config_options
def train(
    env_id: str = typer.Argument(..., help="Gymnasium environment id, e.g. Pendulum-v1."),
    preset: str | None = typer.Option(None, help=f"Start from a named preset: {', '.join(PRESETS)}."),
    config: Path | None = typer.Option(None, "--config", help="TOML file of hyperparameters (over the preset)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory [default: runs/ENV_ID-sSEED]; with "
                                        "--seeds, the folder of the runs ENV_ID-sSEED [default: runs]."),
    seeds: str | None = typer.Option(None, "--seeds", help="Train several seeds of this config together in this "
                                     "process, e.g. 0-9 or 0,3,7: one run directory per seed, networks stacked."),
    workers: int = typer.Option(1, "--workers", min=1, help="With --seeds: split the seeds over this many "
                                "processes (one per core), each training its share as one group."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run files in --out if it holds a run."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest valid "
                                "checkpoint (the same command plus --resume; --steps, --device and --threads "
                                "may differ); start it if it has none."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write the metrics to RUN/tensorboard "
                                     "for TensorBoard (pip install 'ddpgkit[tensorboard]')."),
    **overrides: Any,
) -> None:
    """Train DDPG on a Gymnasium task and write a run directory.

    Hyperparameters start from --preset if given, else the env id's entry in the hyperparameter table
    (`ddpgkit hyperparams`), else the general defaults; then --config FILE.toml, then the flags below.
    The run directory gets config.toml, metrics.csv, summary.json, learning_curve.png and checkpoints.
    Ctrl-C (SIGINT) or SIGTERM saves a checkpoint at the end of the current episode and stops
    (a second one saves at once); `--resume` or `ddpgkit resume` continues.
    """
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    if seeds is not None and overrides.get("seed") is not None:
        raise UserError("--seed and --seeds exclude each other")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if workers > 1 and (seed_list is None or len(seed_list) < 2):
        raise UserError("--workers splits the seeds of --seeds over processes; give --seeds with 2 or more seeds")
    resolved = resolve_config(env_id, preset, config, _given(overrides))
    for note in resolved.notes:
        print_kv("note", note)
    seed_list = seed_list if seed_list is not None else [resolved.config.seed]
    # --out: the run directory of one --seed; with --seeds, the folder of the runs ENV_ID-sSEED
    dirs = run_dirs_for(env_id, seed_list, out_dir if seeds is None else None, out_dir if seeds is not None else None)
    if workers > 1:
        groups = prepare_workers(env_id, resolved, seed_list, dirs, workers=workers, preset=preset, resume=resume,
                                 overwrite=overwrite, tensorboard=tensorboard)
        _run_workers(groups, f"{resolved.config.algorithm()} on {env_id} for {resolved.config.total_steps:,} steps")
        return
    exp = prepare_experiment(env_id, resolved, dirs, seeds=seed_list, preset=preset, resume=resume,
                             overwrite=overwrite)
    if resume and exp.resumed_from is None:
        print_kv("resume", f"{dirs[0]} has no checkpoint yet; starting the run from step 0" if len(dirs) == 1
                 else "the runs have no checkpoint yet; starting them from step 0")
    _run(exp, tensorboard)


@app.command("resume")
def resume_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="A run directory written by `ddpgkit train`; several: the "
                                          "runs of one `train --seeds` group, continued together."),
    steps: int | None = typer.Option(None, "--steps", help="Train until this many steps in all "
                                     "[default: the run's total_steps]."),
    device: str | None = typer.Option(None, help="Device to continue on [default: the run's]."),
    threads: int | None = typer.Option(None, help="torch threads [default: the run's]."),
    workers: int = typer.Option(1, "--workers", min=1, help="Several runs: continue them in this many processes "
                                "(as `train --seeds ... --workers`: give the number they were started with)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write the metrics to RUN/tensorboard."),
) -> None:
    """Continue a run from its latest valid checkpoint (after a crash, kill or Ctrl-C), or extend it
    with --steps. Bit-identical to an uninterrupted run when the checkpoint was taken at an episode
    end (periodic and Ctrl-C checkpoints are) on the same device and thread count."""
    if workers > 1 and len(run_dirs) < 2:
        raise UserError("--workers splits several run directories over processes; give 2 or more")
    if workers > 1:
        groups = resume_workers(run_dirs, workers=workers, total_steps=steps, device=device, threads=threads,
                                tensorboard=tensorboard)
        _run_workers(groups, f"DDPG, {len(run_dirs)} runs" + (f" to {steps:,} steps" if steps else ""))
        return
    _run(resume_experiment(run_dirs, steps, device, threads), tensorboard)


def _run(exp: Experiment, tensorboard: bool = False) -> None:
    """Print what is about to run, train with a progress bar and signal handling, print the result."""
    agent, cfg, n = exp.agents[0], exp.agents[0].config, len(exp.runs)
    for reason in exp.skipped:
        warn(f"skipped {reason}")
    if exp.resumed_from is not None:
        where = exp.resumed_from if n == 1 else f"{n} checkpoints ({exp.resumed_from}, ...)"
        print_kv("resuming", f"{where} (step {exp.step:,})")
    seeds = ", ".join(str(s) for s in exp.seeds)
    print_kv("training", f"{cfg.algorithm()} on {agent.env_id or 'custom env'} for {cfg.total_steps:,} steps, "
             f"{'seed' if n == 1 else f'{n} seeds together:'} {seeds}, "
             f"networks {'-'.join(map(str, cfg.hidden))}, device {agent.device}")
    if exp.origin is not None:
        print_kv("hyperparameters", f"{exp.origin['defaults']} (its source: config.toml's [origin])")
    print_kv("run directory" if n == 1 else "run directories", ", ".join(str(d) for d in exp.run_dirs))
    with TrainingProgress(cfg.total_steps, exp.step) as progress:
        results = exp.run(progress, handle_signals=True, tensorboard=tensorboard)
    _print_finals(results)
    s = next(r.summary for r in results if r.summary.get("status") != "diverged")
    rate = f"{s['steps_per_s']:.0f} steps/s" + ("" if n == 1 else f" a seed, {s['steps_per_s'] * n:.0f} in all")
    print_kv("time", f"{s['wall_s']:.1f} s ({rate})")
    if n == 1:
        run = results[0].run_dir
        print_kv("wrote", f"{run / CONFIG}, {run / METRICS}, {run / SUMMARY}, {run / CURVE}, {results[0].checkpoint}")
    else:
        print_kv("wrote", f"{n} run directories, each with {CONFIG}, {METRICS}, {SUMMARY}, {CURVE}, checkpoints/")


def _print_finals(results: list[RunResult]) -> None:
    """Each run's final evaluation and health warnings (prefixed by its seed when there are several)."""
    for r in results:
        s = r.summary
        who = "" if len(results) == 1 else f"seed {s['seed']}: "
        if s.get("status") == "diverged":  # a group's member; the others went on
            warn(f"{who}diverged at step {s['diverged_at']:,} (non-finite {s['signal']}), the others went on; "
                 f"its batch: {r.run_dir / s['batch']}")
            continue
        print_kv("final evaluation", f"{who}{s['final_eval_mean']:.1f} ± {s['final_eval_std']:.1f} over "
                 f"{s['eval_episodes']} episodes")
        for sign in s.get("health_warnings") or []:
            warn(f"{who}{sign}")


def _run_workers(groups: WorkerGroups, what: str) -> None:
    """``_run`` for seeds split over worker processes: what runs where, a progress bar of the slowest
    worker, every seed's result."""
    shares = " | ".join(seed_ranges(s) for s in groups.shares)
    print_kv("training", f"{what}, {sum(map(len, groups.shares))} seeds in {len(groups.shares)} processes: {shares}")
    print_kv("run directories", ", ".join(str(d) for d in groups.run_dirs))
    total = groups.config.total_steps if groups.config is not None else groups.options["total_steps"]
    steps = dict.fromkeys(range(len(groups.shares)), 0)
    first: dict[int, int] = {}  # the step each share starts at (resumed: its checkpoint's)
    start = time.perf_counter()
    with TrainingProgress(total) as progress:
        def on_event(event: WorkerEvent) -> None:
            k = event.share
            if event.kind == "start":
                first[k] = event.step
                if event.resumed_from is not None:
                    print_kv("resuming", f"seeds {seed_ranges(event.seeds)} from step {event.step:,}")
            if event.kind in ("start", "step"):
                steps[k] = event.step
                progress.advance_to(min(steps.values()))
            elif event.kind == "eval":
                progress.show_eval(event.mean, event.std)
        results = groups.run(on_event, handle_signals=True)
    wall = time.perf_counter() - start
    _print_finals(results)
    trained = sum(r.summary["steps"] for r in results) - sum(first[k] * len(s) for k, s in enumerate(groups.shares))
    print_kv("time", f"{wall:.1f} s ({trained / wall:.0f} steps/s in all, {len(groups.shares)} processes)")
    print_kv("wrote", f"{len(results)} run directories, each with {CONFIG}, {METRICS}, {SUMMARY}, {CURVE}, "
             "checkpoints/")
