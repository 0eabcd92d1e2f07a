"""The ``ddpgkit`` command: a thin layer over the library.

Parsing, printing and progress bars live here and nowhere else. Every error the library raises on
purpose (:class:`ddpgkit.errors.DDPGKitError`), every OS error and every usage error becomes one line
on stderr and a non-zero exit status; tracebacks are reserved for bugs.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .config import PRESETS, DDPGConfig
from .errors import DDPGKitError
from .fit import LR_SCHEDULES, TARGETS
from .nn import ACTIVATIONS

try:  # typer >= 0.22 vendors click; older releases use the click package
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import ClickException, UsageError

EXIT_ERROR = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="ddpgkit",
    help="The neural networks DDPG uses as function approximators, and DDPG built on them.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class UserError(Exception):
    """A bad input found by the CLI itself."""


def _version(value: bool) -> None:
    if value:
        out.print(f"ddpgkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version,
                                 is_eager=True),
) -> None:
    """The neural networks DDPG uses as function approximators, and DDPG built on them."""


def parse_hidden(text: str) -> tuple[int, ...]:
    """'256,256' -> (256, 256); '' -> () (a linear model)."""
    text = text.strip()
    if not text:
        return ()
    try:
        sizes = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise UserError(f"--hidden must be comma-separated positive integers like 256,256, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise UserError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def _progress(*fields: str) -> Progress:
    """A progress bar on stderr (description, bar, n/total, the given task fields, time left) that
    draws only when stderr is a terminal."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        *(TextColumn(f"{{task.fields[{f}]}}") for f in fields),
        TimeRemainingColumn(), console=err, disable=not err.is_terminal,
    )


@app.command()
def fit(
    target: str = typer.Option("sin", help=f"Function to fit: {', '.join(TARGETS)}."),
    points: int = typer.Option(20, help="Number of training points, evenly spaced on [-π, π]."),
    steps: int = typer.Option(100, help="Full-batch Adam steps."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    lr_schedule: str = typer.Option("constant", help="constant (the chapter's) or cosine (decays to 0; "
                                    "avoids Adam's late loss spikes on long fits)."),
    hidden: str = typer.Option("256,256", help="Hidden layer sizes, comma-separated."),
    activation: str = typer.Option("relu", help=f"Hidden activation: {', '.join(ACTIVATIONS)}."),
    seed: int = typer.Option(0, help="Seed of the initial weights."),
    data: Path | None = typer.Option(None, "--data", help="CSV file with columns x0..xn,y0..ym "
                                        "(replaces --target and --points)."),
    out_dir: Path = typer.Option(Path("runs/fit"), "--out", help="Directory for figures and metrics.json."),
    threads: int = typer.Option(1, help="torch intra-op threads (0: torch's default)."),
) -> None:
    """Fit an MLP to data with MSE and Adam, as chapter 6 does, and draw its figures.

    With no flags it reproduces the chapter: 20 points of sin on [-π, π], a 1→256→256→1 ReLU
    network, Adam with lr 1e-3, 100 steps, seed 0.
    """
    from .fileio import atomic_write_json, ensure_writable_dir
    from .fit import fit as fit_fn
    from .fit import load_csv, make_dataset
    from .nn import MLP, count_parameters
    from .plots import plot_activation, plot_data, plot_fit, plot_function, plot_loss
    from .runtime import configure_torch

    if steps < 1:
        raise UserError(f"--steps must be a positive integer, got {steps}")
    if points < 1:
        raise UserError(f"--points must be a positive integer, got {points}")
    if not (math.isfinite(lr) and lr > 0):
        raise UserError(f"--lr must be a positive number, got {lr}")
    if activation not in ACTIVATIONS:
        raise UserError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if data is None and target not in TARGETS:
        raise UserError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
    if lr_schedule not in LR_SCHEDULES:
        raise UserError(f"unknown --lr-schedule {lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
    if threads < 0:
        raise UserError(f"--threads must be >= 0, got {threads}")
    sizes = parse_hidden(hidden)
    dataset = load_csv(data) if data is not None else make_dataset(target, points)
    ensure_writable_dir(out_dir)
    configure_torch(threads)

    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(dataset.in_dim, dataset.out_dim, sizes, activation)
    out.print(model)
    out.print(f"parameters: {count_parameters(model):,}")
    figures = [plot_activation(out_dir / "activation.png", activation), plot_data(out_dir / "data.png", dataset)]
    if dataset.in_dim == 1:
        figures.append(plot_function(out_dir / "untrained.png", model, "Untrained network"))

    with _progress("info") as progress:
        task = progress.add_task("fit", total=steps, info="") if steps >= 1000 else None

        def on_step(i: int, loss: torch.Tensor) -> None:
            if task is not None and (i % 50 == 0 or i == steps - 1):
                progress.update(task, completed=i + 1, info=f"loss {loss.item():.3e}")

        result = fit_fn(dataset, steps=steps, lr=lr, seed=seed, lr_schedule=lr_schedule, model=model,
                        on_step=on_step)
    out.print(f"initial loss: {result.initial_loss:.4f}")
    out.print(f"final loss after {steps} steps: {result.final_loss:.3e}  ({result.seconds:.3f} s)")
    figures.append(plot_fit(out_dir / "fit.png", result.model, dataset, f"Fitted network after {steps} steps"))
    figures.append(plot_loss(out_dir / "loss.png", result.losses))
    metrics = {
        "initial_loss": result.initial_loss, "final_loss": result.final_loss, "steps": steps,
        "seconds": result.seconds, "seed": seed, "lr": lr,
        "lr_schedule": lr_schedule, "hidden": list(sizes), "activation": activation,
        "data": str(data) if data is not None else target, "points": dataset.x.shape[0],
    }
    atomic_write_json(out_dir / "metrics.json", metrics)
    out.print(f"figures: {', '.join(str(f) for f in figures)}")
    out.print(f"metrics: {out_dir / 'metrics.json'}")


# ---- DDPG --------------------------------------------------------------------------------------

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


def resolve_config(preset: str | None, config_file: Path | None, overrides: dict[str, Any]) -> DDPGConfig:
    """defaults <- preset <- config file <- flags given on the command line."""
    base = DDPGConfig.preset(preset) if preset else DDPGConfig()
    if config_file is not None:
        base = DDPGConfig.load(config_file, base)
    given = {k: v for k, v in overrides.items() if v is not None}
    for f in fields(DDPGConfig):
        if str(f.type) == "tuple[int, ...]" and f.name in given:
            given[f.name] = parse_hidden(given[f.name])
    return base.replace(**given) if given else base


class ProgressReporter:
    """A rich progress bar (steps, steps/s, last evaluation) when stderr is a terminal."""

    def __init__(self, total: int, every: int = 100) -> None:
        from .train import Callback

        self.every = every
        self.progress = _progress("rate", "eval")
        self.task = self.progress.add_task("train", total=total, rate="", eval="")
        self._t0 = time.perf_counter()
        self._s0: int | None = None
        reporter = self

        class _CB(Callback):
            def on_step(self, trainer):
                if trainer.step % reporter.every == 0:
                    reporter.update(trainer)

            def on_eval(self, trainer, returns):
                reporter.progress.update(reporter.task, eval=f"eval {returns.mean():.1f} ± {returns.std():.1f}")

        self.callback = _CB()

    def update(self, trainer) -> None:
        now = time.perf_counter()
        if self._s0 is None:
            self._s0, self._t0 = trainer.step, now
        rate = (trainer.step - self._s0) / (now - self._t0) if now > self._t0 else 0.0
        self.progress.update(self.task, completed=trainer.step, rate=f"{rate:.0f} steps/s")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)


@app.command()
@_with_config_options
def train(
    env_id: str = typer.Argument(..., help="Gymnasium environment id, e.g. Pendulum-v1."),
    preset: str | None = typer.Option(None, help=f"Start from a named preset: {', '.join(PRESETS)}."),
    config: Path | None = typer.Option(None, "--config", help="TOML file of hyperparameters (over the preset)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory [default: runs/ENV_ID-sSEED]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run files in --out if it holds a run."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its latest valid "
                                "checkpoint (the same command plus --resume); start it if it has none."),
    **overrides: Any,
) -> None:
    """Train DDPG on a Gymnasium task and write a run directory.

    Hyperparameters come from the defaults, then --preset, then --config FILE.toml, then the flags
    below. The run directory gets config.toml, metrics.csv, summary.json, learning_curve.png and
    checkpoints. Ctrl-C (SIGINT) or SIGTERM saves a checkpoint at the end of the current episode and
    stops (a second one saves at once); `--resume` or `ddpgkit resume` continues.
    """
    from .ddpg import DDPG
    from .runs import list_checkpoints, prepare_run_dir

    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    cfg = resolve_config(preset, config, overrides)
    run = out_dir if out_dir is not None else Path("runs") / f"{env_id.replace('/', '_')}-s{cfg.seed}"
    if resume and list_checkpoints(run):
        agent = _load_for_resume(run, device=None)
        _check_same_run(agent, env_id, cfg)
        _continue(agent, run, cfg.total_steps, threads=cfg.threads)
        return
    agent = DDPG(env_id, cfg)
    if resume:
        _print_kv("resume", f"{run} has no checkpoint yet; starting the run from step 0")
    prepare_run_dir(run, overwrite or resume)
    _train(agent, run, preset, resumed=False)


@app.command("resume")
def resume_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `ddpgkit train`."),
    steps: int | None = typer.Option(None, "--steps", help="Train until this many steps in all "
                                     "[default: the run's total_steps]."),
    device: str | None = typer.Option(None, help="Device to continue on [default: the run's]."),
    threads: int | None = typer.Option(None, help="torch threads [default: the run's]."),
) -> None:
    """Continue a run from its latest valid checkpoint (after a crash, kill or Ctrl-C), or extend it
    with --steps. Bit-identical to an uninterrupted run when the checkpoint was taken at an episode
    end (periodic and Ctrl-C checkpoints are) on the same device and thread count."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    agent = _load_for_resume(run_dir, device)
    _continue(agent, run_dir, steps if steps is not None else agent.config.total_steps, threads)


def _load_for_resume(run: Path, device: str | None):
    from .runs import load_latest

    agent, ckpt, skipped = load_latest(run, device)
    for reason in skipped:
        err.print(f"warning: skipped {reason}", markup=False)
    if agent.trainer is None:
        raise UserError(f"{ckpt}: holds no training state (saved with training_state=False); cannot resume")
    _print_kv("resuming", f"{ckpt} (step {agent.trainer.step:,})")
    return agent


def _check_same_run(agent, env_id: str, cfg: DDPGConfig) -> None:
    if agent.env_id != env_id:
        raise UserError(f"--resume: the run trained {agent.env_id}, not {env_id}")
    saved = agent.config.to_dict()
    given = cfg.to_dict()
    for key in saved:
        if key not in ("total_steps", "device", "threads") and saved[key] != given[key]:
            raise UserError(f"--resume continues the run's own config, but {key} differs "
                            f"(run: {saved[key]!r}, given: {given[key]!r})")


def _continue(agent, run: Path, total_steps: int, threads: int | None) -> None:
    from .runs import CONFIG, METRICS, rewrite_metrics

    done = agent.trainer.step
    if total_steps <= done:
        raise UserError(f"{run} already has {done:,} steps; pass --steps above that to train further")
    changes: dict[str, Any] = {"total_steps": total_steps}
    if threads is not None:
        changes["threads"] = threads
    agent.config = agent.config.replace(**changes)
    rewrite_metrics(run / METRICS, agent.trainer.history)
    agent.config.save(run / CONFIG)
    _train(agent, run, None, resumed=True)


def _train(agent, run: Path, preset: str | None, resumed: bool) -> None:
    """Train ``agent`` to its config's total_steps with the run directory's callbacks, then write
    the final checkpoint, the learning curve and summary.json."""
    import signal

    from .checkpoint import versions
    from .plots import plot_learning_curves
    from .runs import CONFIG, CURVE, METRICS, SUMMARY, Checkpointer, MetricsCSV, prune_checkpoints, write_summary

    cfg, env_id = agent.config, agent.env_id or "custom env"
    if not resumed:
        cfg.save(run / CONFIG)
    metrics = MetricsCSV(run / METRICS)
    checkpointer = Checkpointer(run, cfg.checkpoint_interval, cfg.keep_checkpoints)
    signals: list[int] = []

    def on_signal(signum, frame) -> None:
        signals.append(signum)
        checkpointer.request_stop(force=len(signals) > 1)

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    _print_kv("training", f"DDPG on {env_id} for {cfg.total_steps:,} steps, seed {cfg.seed}, "
              f"networks {'-'.join(map(str, cfg.hidden))}, device {agent.device}")
    _print_kv("run directory", str(run))
    start = time.perf_counter()
    try:
        with ProgressReporter(cfg.total_steps) as progress:
            agent.learn(cfg.total_steps, callback=[metrics, checkpointer, progress.callback])
    finally:
        metrics.close()
        for sig, old in handlers.items():
            signal.signal(sig, old)
    trainer = agent.trainer
    if signals:
        name = signal.Signals(signals[0]).name
        where = checkpointer.saved[-1] if checkpointer.saved else "no checkpoint"
        raise Interrupted(f"{name} at step {trainer.step:,}: saved {where}; continue with: ddpgkit resume {run}",
                          128 + signals[0])
    wall = time.perf_counter() - start
    ckpt = agent.save(run / "checkpoints" / str(trainer.step), training_state=True)
    prune_checkpoints(run, cfg.keep_checkpoints)
    from .runs import read_metrics

    plot_learning_curves(run / CURVE, [(env_id, read_metrics(run / METRICS))], f"DDPG on {env_id}")
    mean, std = trainer.last_eval
    summary = {
        "env_id": env_id, "seed": cfg.seed, "steps": trainer.step, "episodes": trainer.episodes,
        "final_eval_mean": mean, "final_eval_std": std, "eval_episodes": cfg.eval_episodes,
        "wall_s": wall, "train_s": trainer.wall_s, "steps_per_s": trainer.step / trainer.wall_s,
        "checkpoint": str(ckpt.relative_to(run)), "preset": preset, "resumed": resumed,
        "versions": versions(),
    }
    write_summary(run, summary)
    _print_kv("final evaluation", f"{mean:.1f} ± {std:.1f} over {cfg.eval_episodes} episodes")
    _print_kv("time", f"{wall:.1f} s ({summary['steps_per_s']:.0f} steps/s)")
    _print_kv("wrote", f"{run / CONFIG}, {run / METRICS}, {run / SUMMARY}, {run / CURVE}, {ckpt}")


class Interrupted(Exception):
    """Training stopped by a signal after saving a checkpoint; carries the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _print_kv(key: str, value: str) -> None:
    out.print(f"{key}: {value}", markup=False)


def _load_run_agent(run_dir: Path, checkpoint: Path | None, device: str | None):
    from .ddpg import DDPG
    from .runs import latest_checkpoint

    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such run directory")
    ckpt = checkpoint if checkpoint is not None else latest_checkpoint(run_dir)
    return DDPG.load(ckpt, device=device, training_state=False), ckpt


@app.command("eval")
def eval_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `ddpgkit train`."),
    episodes: int = typer.Option(10, help="Deterministic episodes to run."),
    seed: int | None = typer.Option(None, help="Seed of episode 0 (episode i uses seed + i) "
                                    "[default: the run's evaluation seeds, as in summary.json]."),
    gif: Path | None = typer.Option(None, "--gif", help="Also write an animation of the first episode (GIF)."),
    checkpoint: Path | None = typer.Option(None, help="A checkpoint directory [default: the run's latest]."),
    device: str | None = typer.Option(None, help="Device to run the actor on [default: the run's]."),
) -> None:
    """Evaluate a trained run: mean ± std return of deterministic episodes."""
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    agent, ckpt = _load_run_agent(run_dir, checkpoint, device)
    returns = agent.evaluate(episodes, seed)
    _print_kv("checkpoint", str(ckpt))
    _print_kv("return", f"{returns.mean():.2f} ± {returns.std():.2f} over {episodes} episodes")
    if gif is not None:
        from .render import record_episode

        base = seed if seed is not None else None
        path, frames, ret = record_episode(agent, gif, seed=base)
        _print_kv("animation", f"{path} ({frames} frames, return {ret:.1f})")


@app.command()
def plot(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run directories."),
    out_file: Path | None = typer.Option(None, "--out", help="PNG to write [default: RUN_DIR/learning_curve.png "
                                         "for one run, learning_curves.png for several]."),
    title: str = typer.Option("Learning curves", help="Figure title."),
) -> None:
    """Draw the learning curves of one run or overlay several, from their metrics.csv files."""
    from .plots import plot_learning_curves
    from .runs import CURVE, read_metrics

    runs = [(str(d), read_metrics(d)) for d in run_dirs]
    target = out_file or (run_dirs[0] / CURVE if len(run_dirs) == 1 else Path("learning_curves.png"))
    if target.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, got {target}")
    plot_learning_curves(target, runs, title)
    _print_kv("wrote", str(target))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script (which exits with the returned status)."""
    try:
        rv = app(args=argv, prog_name="ddpgkit", standalone_mode=False)
    except typer.Abort:
        err.print("aborted", markup=False)
        return 130
    except ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `ddpgkit` or `ddpgkit COMMAND`: show the help
            sys.stderr.write(e.format_message() + "\n")
            return EXIT_USAGE
        msg = e.format_message().replace("\n", " ")
        sys.stderr.write(f"error: {msg}\n")
        return EXIT_USAGE if isinstance(e, UsageError) else EXIT_ERROR
    except Interrupted as e:
        sys.stderr.write(f"stopped: {e}\n")
        return e.code
    except (UserError, DDPGKitError) as e:
        sys.stderr.write(f"error: {e}\n")
        return EXIT_ERROR
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        sys.stderr.write(f"error: {where}{e.strerror or e}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
