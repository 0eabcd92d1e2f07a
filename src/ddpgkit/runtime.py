"""Process-wide torch settings: the thread policy and denormal flushing.

On the project's 2-core machine torch's default of one intra-op thread per core was 1.05-1.7x faster
when the machine was quiet, but 5-6x slower as soon as another busy process shared the cores, while
one thread was unaffected (benchmarks/threads.py; benchmarks/README.md has the table). ddpgkit
therefore defaults to one thread; ``threads=0`` leaves torch's own choice, any other number sets it.
"""

from __future__ import annotations

import torch

DEFAULT_THREADS = 1


def configure_torch(threads: int = DEFAULT_THREADS, flush_denormal: bool = True) -> None:
    """Apply the thread policy (``threads=0`` keeps torch's default) and flush denormal floats.

    Flushing denormals to zero removed a ~25% slowdown of long fits on this CPU with unchanged
    losses; it is a no-op where the CPU does not support it.
    """
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if flush_denormal:
        torch.set_flush_denormal(True)
