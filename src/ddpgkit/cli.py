"""The ``ddpgkit`` command: a thin layer over the library.

Parsing, printing and progress bars live here and nowhere else. Every error the library raises on
purpose (:class:`ddpgkit.errors.DDPGKitError`), every OS error and every usage error becomes one line
on stderr and a non-zero exit status; tracebacks are reserved for bugs.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
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


def _progress(total: int, description: str) -> Progress:
    """A progress bar on stderr that draws only when stderr is a terminal."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(), console=err, disable=not err.is_terminal, transient=False,
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

    with _progress(steps, "fit") as progress:
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
