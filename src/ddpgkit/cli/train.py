"""``ddpgkit train`` and ``ddpgkit resume``: parse, call :mod:`ddpgkit.experiments.run`, print."""

from __future__ import annotations

import inspect
import time
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer

from ..config.ddpg import DDPGConfig
from ..config.hyperparams import Defaults, defaults_for
from ..config.presets import PRESETS
from ..config.seeds import parse_seeds, seed_ranges
from ..experiments.run import (
    Experiment,
    GroupExperiment,
    RunResult,
    group_run_dirs,
    origin_of,
    prepare_experiment,
    prepare_group,
    resume_experiment,
    resume_group,
)
from ..experiments.workers import WorkerEvent, WorkerGroups, prepare_workers, resume_workers
from ..storage.rundir import CONFIG, CURVE, METRICS, SUMMARY, config_table
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


def resolve_config(env_id: str, preset: str | None, config_file: Path | None, overrides: dict[str, Any]
                   ) -> tuple[DDPGConfig, Defaults, str | None]:
    """The preset, else the env's table entry, else the general defaults (hyperparams.defaults_for) <-
    config file <- flags given on the command line. A --steps too short for a warm-up the user did not
    choose adapts the warm-up (DDPGConfig.with_warmup_for); returns the config, its base and that note."""
    defaults = defaults_for(env_id, preset)
    base = defaults.config
    if config_file is not None:
        base = DDPGConfig.load(config_file, base)
    given = {k: v for k, v in overrides.items() if v is not None}
    for f in fields(DDPGConfig):
        if str(f.type) == "tuple[int, ...]" and f.name in given:
            given[f.name] = parse_hidden(given[f.name])
    steps = given.pop("total_steps", None)
    chosen = "learning_starts" in given or (config_file is not None and "learning_starts" in _file_keys(config_file))
    if steps is not None and not chosen:
        config, note = base.replace(**given).with_warmup_for(steps)
        return config, defaults, note
    if steps is not None:
        given["total_steps"] = steps
    return (base.replace(**given) if given else base), defaults, None


def _file_keys(path: Path) -> set[str]:
    """The keys a TOML config file sets (it was read and validated by DDPGConfig.load already)."""
    return set(config_table(tomllib.loads(path.read_text(encoding="utf-8"))))


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
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    if seeds is not None and overrides.get("seed") is not None:
        raise UserError("--seed and --seeds exclude each other")
    seed_list = parse_seeds(seeds) if seeds is not None else None
    if workers > 1 and (seed_list is None or len(seed_list) < 2):
        raise UserError("--workers splits the seeds of --seeds over processes; give --seeds with 2 or more seeds")
    cfg, defaults, note = resolve_config(env_id, preset, config, overrides)
    if note is not None:
        print_kv("note", note)
    if seed_list is not None and workers > 1:
        groups = prepare_workers(env_id, cfg, seed_list, group_run_dirs(env_id, seed_list, out_dir), workers=workers,
                                 preset=preset, resume=resume, overwrite=overwrite, origin=origin_of(defaults),
                                 tensorboard=tensorboard)
        _run_workers(groups, f"DDPG on {env_id} for {cfg.total_steps:,} steps")
        return
    if seed_list is not None:
        group = prepare_group(env_id, cfg, seed_list, group_run_dirs(env_id, seed_list, out_dir), preset=preset,
                              resume=resume, overwrite=overwrite, origin=origin_of(defaults))
        if resume and isinstance(group, GroupExperiment) and group.experiments[0].resumed_from is None:
            print_kv("resume", "the runs have no checkpoint yet; starting them from step 0")
        _run(group, tensorboard)
        return
    exp = prepare_experiment(env_id, cfg, out_dir, preset=preset, resume=resume, overwrite=overwrite,
                             origin=origin_of(defaults))
    if resume and exp.resumed_from is None:
        print_kv("resume", f"{exp.run_dir} has no checkpoint yet; starting the run from step 0")
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
    elif len(run_dirs) > 1:
        _run(resume_group(run_dirs, steps, device, threads), tensorboard)
    else:
        _run(resume_experiment(run_dirs[0], steps, device, threads), tensorboard)


def _run(exp: Experiment | GroupExperiment, tensorboard: bool = False) -> None:
    """Print what is about to run, train with a progress bar and signal handling, print the result."""
    exps = exp.experiments if isinstance(exp, GroupExperiment) else [exp]
    agent, cfg = exps[0].agent, exps[0].agent.config
    for reason in exps[0].skipped:
        warn(f"skipped {reason}")
    if exps[0].resumed_from is not None:
        where = exps[0].resumed_from if len(exps) == 1 else f"{len(exps)} checkpoints ({exps[0].resumed_from}, ...)"
        print_kv("resuming", f"{where} (step {agent.num_timesteps:,})")
    seeds = ", ".join(str(e.agent.config.seed) for e in exps)
    print_kv("training", f"DDPG on {agent.env_id or 'custom env'} for {cfg.total_steps:,} steps, "
             f"{'seed' if len(exps) == 1 else f'{len(exps)} seeds together:'} {seeds}, "
             f"networks {'-'.join(map(str, cfg.hidden))}, device {agent.device}")
    if exps[0].origin is not None:
        print_kv("hyperparameters", f"{exps[0].origin['defaults']} (its source: config.toml's [origin])")
    print_kv("run directory" if len(exps) == 1 else "run directories", ", ".join(str(e.run_dir) for e in exps))
    with TrainingProgress(cfg.total_steps, agent.num_timesteps) as progress:
        out = exp.run(progress, handle_signals=True, tensorboard=tensorboard)
    results = out if isinstance(out, list) else [out]
    _print_finals(results)
    s = results[0].summary
    rate = f"{s['steps_per_s']:.0f} steps/s" + ("" if len(results) == 1 else
                                                f" a seed, {s['steps_per_s'] * len(results):.0f} in all")
    print_kv("time", f"{s['wall_s']:.1f} s ({rate})")
    if len(results) == 1:
        run = results[0].run_dir
        print_kv("wrote", f"{run / CONFIG}, {run / METRICS}, {run / SUMMARY}, {run / CURVE}, {results[0].checkpoint}")
    else:
        print_kv("wrote", f"{len(results)} run directories, each with {CONFIG}, {METRICS}, {SUMMARY}, {CURVE}, "
                 "checkpoints/")


def _print_finals(results: list[RunResult]) -> None:
    """Each run's final evaluation and health warnings (prefixed by its seed when there are several)."""
    for r in results:
        s = r.summary
        who = "" if len(results) == 1 else f"seed {s['seed']}: "
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
