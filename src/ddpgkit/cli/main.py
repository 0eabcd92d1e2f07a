"""The console script: run the typer app and turn every error into one line on stderr.

Every error the library raises on purpose (:class:`ddpgkit.errors.DDPGKitError`), every OS error and
every usage error becomes one line on stderr and a non-zero exit status; tracebacks are reserved for
bugs. Only typer's public names are used (``typer.TyperException`` is the base of its usage errors).
"""

from __future__ import annotations

import sys

import typer

from ..errors import DDPGKitError, RunInterrupted, one_line
from . import evaluate, export, fit, hyperparams, inspect, plot, presets, report, sweep, train, tune  # noqa: F401  (each registers its command)
from .app import UserError, app

EXIT_ERROR = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script (which exits with the returned status)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # bare `ddpgkit`: the overview, as a usage error
        app(args=["--help"], prog_name="ddpgkit", standalone_mode=False)
        return EXIT_USAGE
    try:
        rv = app(args=[str(a) for a in args], prog_name="ddpgkit", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.TyperException as e:  # usage errors: unknown option, bad value, missing argument
        sys.stderr.write(f"error: {one_line(e.format_message())}\n")
        return e.exit_code
    except RunInterrupted as e:
        sys.stderr.write(f"stopped: {one_line(e)}\n")
        return e.code
    except (UserError, DDPGKitError) as e:
        sys.stderr.write(f"error: {one_line(e)}\n")
        return EXIT_ERROR
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        sys.stderr.write(f"error: {one_line(f'{where}{e.strerror or e}')}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return rv if isinstance(rv, int) else 0
