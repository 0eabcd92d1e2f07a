"""The ``ddpgkit`` command: one module per command on one typer app (:mod:`.app`), parsing and
printing only; everything a command does is a library call."""

from .main import main

__all__ = ["main"]
