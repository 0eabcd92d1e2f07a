"""Process-wide settings and what this machine can do: the thread policy, denormal flushing, the
process's global random generators as a run sees them, the device, and whether the CPU has bfloat16
instructions.

ddpgkit leaves the host process as it found it: :func:`torch_settings` applies the thread policy and
denormal flushing for the length of a training loop and puts torch's back afterwards, and
:class:`GlobalGenerators` keeps each run's own state of the global generators, put into the process only
while the run trains (:func:`generators_in_process`).

On the project's 2-core machine torch's default of one intra-op thread per core was 1.05-1.7x faster
when the machine was quiet, but 5-6x slower as soon as another busy process shared the cores, while
one thread was unaffected (benchmarks/threads.py; benchmarks/README.md has the table). ddpgkit
therefore defaults to one thread; ``threads=0`` leaves torch's own choice, any other number sets it.

Freed memory is kept for reuse (:func:`keep_freed_memory`, glibc's ``mallopt``): with glibc's defaults a
group of seeds' (N, B, hidden) tensors, each several hundred kB, were mapped and unmapped on every
update, 300 page faults an update that cost 20% of a 10-seed group's time (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import random
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
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


def denormals_flushed() -> bool:
    """Whether torch flushes denormal floats to zero in this thread now (torch can set it,
    ``torch.set_flush_denormal``, but not say it): a float32 denormal times one is zero only then."""
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # below float32's smallest normal number, 1.18e-38
    return bool((tiny * 1.0)[0] == 0)


@contextlib.contextmanager
def torch_settings(threads: int = DEFAULT_THREADS, flush_denormal: bool = True) -> Iterator[None]:
    """:func:`configure_torch` for the body of a ``with`` statement: afterwards torch's intra-op thread count
    and denormal setting are what they were before (what a training loop does, so that ``learn`` leaves a
    notebook's torch as it found it)."""
    threads_before, flushed_before = torch.get_num_threads(), denormals_flushed()
    configure_torch(threads, flush_denormal)
    try:
        yield
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
        if denormals_flushed() != flushed_before:
            torch.set_flush_denormal(flushed_before)


class GlobalGenerators:
    """A run's own state of the process's global random generators: torch's default CPU generator, numpy's
    legacy one (``np.random.*``) and Python's ``random``. ddpgkit draws from none of them while training (its
    buffer, noise, warm-up and envs have generators of their own), but a user's env or callback may; the run
    keeps their state as its own, saves it in its checkpoints, and puts it into the process only while it
    trains (:func:`generators_in_process`). So creating, loading or training an agent leaves the host's
    generators as they were, and a run draws the same numbers from them whatever the host drew before.

    Attributes ``torch`` (a uint8 tensor), ``numpy`` (``np.random.get_state(legacy=False)``'s dict) and
    ``python`` (``random.getstate()``'s tuple) hold the state; while the run trains the process holds it
    (``live`` is True), and :meth:`get`/:meth:`set` read and write wherever it is."""

    def __init__(self, torch_state: torch.Tensor, numpy_state: dict[str, Any], python_state: tuple[Any, ...]) -> None:
        self.torch, self.numpy, self.python = torch_state, numpy_state, python_state
        self.live = False

    @classmethod
    def seeded(cls, seed: int, torch_state: torch.Tensor) -> GlobalGenerators:
        """numpy's and Python's generators as ``np.random.seed(seed)`` and ``random.seed(seed)`` leave them,
        and torch's ``torch_state`` (after ``torch.manual_seed(seed)`` and building the networks)."""
        return cls(torch_state, np.random.RandomState(seed).get_state(legacy=False), random.Random(seed).getstate())

    def get(self) -> tuple[torch.Tensor, dict[str, Any], tuple[Any, ...]]:
        """(torch, numpy, python) state: the process's while the run trains, else the held one."""
        if self.live:
            return _process_generators()
        return self.torch.clone(), dict(self.numpy), self.python

    def set(self, torch_state: torch.Tensor, numpy_state: dict[str, Any], python_state: tuple[Any, ...]) -> None:
        """Restore a state (a checkpoint's): into the process while the run trains, else held."""
        if self.live:
            _set_process_generators(torch_state, numpy_state, python_state)
        else:
            self.torch, self.numpy, self.python = torch_state.clone(), dict(numpy_state), python_state


def _process_generators() -> tuple[torch.Tensor, dict[str, Any], tuple[Any, ...]]:
    return torch.random.get_rng_state(), np.random.get_state(legacy=False), random.getstate()


def _set_process_generators(torch_state: torch.Tensor, numpy_state: dict[str, Any],
                            python_state: tuple[Any, ...]) -> None:
    torch.random.set_rng_state(torch_state)
    np.random.set_state(numpy_state)
    random.setstate(python_state)


@contextlib.contextmanager
def generators_in_process(runs: Sequence[GlobalGenerators]) -> Iterator[None]:
    """For the body of a ``with`` statement the process's global generators are the first run's; afterwards
    every one of ``runs`` holds the state they were left in (the runs of a group share the process, and so
    these generators) and the host's generators are back as they were. Already in the process: nothing."""
    if not runs or runs[0].live:
        yield
        return
    host = _process_generators()
    _set_process_generators(*runs[0].get())
    for g in runs:
        g.live = True
    try:
        yield
    finally:
        now = _process_generators()
        for g in runs:
            g.live = False
            g.torch, g.numpy, g.python = now[0].clone(), dict(now[1]), now[2]
        _set_process_generators(*host)


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
