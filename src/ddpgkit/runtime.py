"""Process-wide torch settings and what this machine can do: the thread policy, denormal flushing,
the device, and whether the CPU has bfloat16 instructions.

On the project's 2-core machine torch's default of one intra-op thread per core was 1.05-1.7x faster
when the machine was quiet, but 5-6x slower as soon as another busy process shared the cores, while
one thread was unaffected (benchmarks/threads.py; benchmarks/README.md has the table). ddpgkit
therefore defaults to one thread; ``threads=0`` leaves torch's own choice, any other number sets it.

Freed memory is kept for reuse (:func:`keep_freed_memory`, glibc's ``mallopt``): with glibc's defaults a
group of seeds' (N, B, hidden) tensors, each several hundred kB, were mapped and unmapped on every
update, 300 page faults an update that cost 20% of a 10-seed group's time (benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

import torch

from .errors import ConfigError

DEFAULT_THREADS = 1

# CPU flags (Linux /proc/cpuinfo names) that give bfloat16 matrix products at speed: AVX-512 BF16 and
# AMX on x86-64, the BF16 extension on Arm. Without them torch emulates bf16 products, measured 5-10x
# slower than fp32 on an AVX2-only AMD EPYC (issue 9).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


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
    keep_freed_memory()


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: glibc's largest mmap threshold; blocks below it come from the heap, not their own mapping.
MMAP_THRESHOLD = 32 * 2**20
#: Free heap memory kept for reuse before any is returned to the system.
TRIM_THRESHOLD = 256 * 2**20


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Where the C library is glibc, let ``malloc`` serve blocks up to :data:`MMAP_THRESHOLD` from its heap
    and keep up to :data:`TRIM_THRESHOLD` of freed heap memory, instead of mapping each large tensor anew
    and returning it at once (a page fault per 4 kB page on every allocation). Returns whether the
    setting took effect (False on other C libraries and systems; nothing changes there). Once per
    process; it changes no number, only where memory comes from."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available, else cpu; a CUDA device where CUDA is missing is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_description() -> tuple[str, frozenset[str]]:
    """(CPU model name, its feature flags) from /proc/cpuinfo; the platform's processor name and no
    flags where that file does not exist (not Linux)."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU (``flags``: this machine's by default) has bfloat16 matrix instructions."""
    flags = cpu_description()[1] if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def check_precision(precision: str, device: torch.device, flags: frozenset[str] | None = None) -> None:
    """Refuse ``bf16`` on a CPU without bfloat16 instructions, where it is several times slower than
    fp32 (the reason to ask for bf16 is speed). ``flags`` defaults to this machine's CPU flags."""
    if precision != "bf16" or device.type != "cpu":
        return
    model, own = cpu_description()
    if not cpu_has_bf16(own if flags is None else flags):
        raise ConfigError(f"precision bf16 needs a CPU with bfloat16 instructions (one of {', '.join(BF16_FLAGS)}); "
                          f"this one ({model}) has none, where bf16 runs 5-10x slower than fp32: use fp32")


def cpu_summary() -> str:
    """One line for benchmark tables: the CPU model, cores, and its vector/matrix features."""
    model, flags = cpu_description()
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "bf16", "sve") if f in flags]
    return f"{model}, {os.cpu_count()} cores; features: {' '.join(shown) or 'none of avx2/avx512/amx/bf16'}"
