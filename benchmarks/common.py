"""Shared helpers of the benchmark scripts: statistics, tables, machine description, a busy core."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence


def spread(xs: Sequence[float], fmt: str = "{:.0f}") -> str:
    """'median (min–max)'."""
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """The CPU (model, cores, the vector/matrix features that decide fp32 and bf16 speed) and versions."""
    import gymnasium
    import numpy
    import torch

    from ddpgkit.runtime import cpu_summary

    try:
        import stable_baselines3

        sb3 = f", stable-baselines3 {stable_baselines3.__version__}"
    except ImportError:
        sb3 = ""
    return (f"{cpu_summary()}; python {platform.python_version()}, torch {torch.__version__}, "
            f"numpy {numpy.__version__}, gymnasium {gymnasium.__version__}{sb3}")


@contextlib.contextmanager
def busy_core(enabled: bool = True) -> Iterator[None]:
    """A second process spinning on the CPU for the duration (the 'loaded machine' condition)."""
    if not enabled:
        yield
        return
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        p.kill()
        p.wait()


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
