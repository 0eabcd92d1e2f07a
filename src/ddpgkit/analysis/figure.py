"""A matplotlib figure of ddpgkit's own, without pyplot.

Every figure ddpgkit draws is a ``matplotlib.figure.Figure`` made here, never pyplot's: importing ddpgkit or
drawing chooses no backend and registers nothing with the host's pyplot, so a notebook's inline plots keep
working beside it (``Figure.savefig`` writes PNG files through Agg whatever the backend).
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def subplots(*args: Any, figsize: tuple[float, float], **kwargs: Any) -> tuple[Figure, Any]:
    """``matplotlib.pyplot.subplots`` without pyplot: a new ``Figure`` and its axes (``Figure.subplots``'s
    arguments: rows, columns, ``sharey``, ``squeeze`` ...)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)
