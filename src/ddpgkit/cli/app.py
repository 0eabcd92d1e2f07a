"""The ``ddpgkit`` typer app and what every command shares: the consoles, one-line errors, printing.

Commands live one per module beside this one (:mod:`.fit`, :mod:`.train`, :mod:`.evaluate`,
:mod:`.plot`) and only parse arguments, call the library and print; :mod:`.main` turns every error
into one line on stderr and an exit status.
"""

from __future__ import annotations

import typer
from rich.console import Console

from .._version import __version__
from ..analysis.language import LANGUAGES, use_language

app = typer.Typer(
    name="ddpgkit",
    help="The neural networks DDPG uses as function approximators, and DDPG built on them.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class UserError(Exception):
    """A bad input found by the CLI itself (a flag's value)."""


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


def lang_option() -> str:
    """The ``--lang`` option of the commands that draw figures."""
    return typer.Option("en", "--lang", help="Language of the figures' titles, axes and legends: en or ja (ja "
                        "draws with the Japanese font of the docs extra).")


def use_lang(lang: str) -> None:
    """Draw this command's figures in ``lang`` (:func:`ddpgkit.analysis.language.use_language`)."""
    if lang not in LANGUAGES:
        raise UserError(f"unknown --lang {lang!r}; valid: {', '.join(LANGUAGES)}")
    use_language(lang)


def print_kv(key: str, value: str) -> None:
    """``key: value`` on stdout, without rich markup."""
    out.print(f"{key}: {value}", markup=False)


def warn(message: str) -> None:
    err.print(f"warning: {message}", markup=False)


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
