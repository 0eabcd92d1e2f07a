"""Seeds: the sub-seeds one run seed gives each of a run's generators, and the text form of several seeds.

One seed per run fixes everything random in it (docs/guide/seeds.md). The generators that must not share a
stream get the run seed plus a fixed offset, so that every one of them is independent and fixed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError

# Sub-seeds derived from the one run seed, so that every generator is independent and fixed.
BUFFER_SEED_OFFSET = 1  # the replay buffer's sampling
NOISE_SEED_OFFSET = 2  # the exploration noise
EXPLORE_SEED_OFFSET = 3  # the warm-up's uniform actions
TARGET_NOISE_SEED_OFFSET = 4  # the target policy smoothing noise (target_noise > 0)
EVAL_SEED_OFFSET = 10_000  # evaluation episode i is reset with seed + EVAL_SEED_OFFSET + i


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,7"`` or ``"0-4,10"`` -> the seeds in that order; a ConfigError names what is wrong
    (a negative or repeated seed, an empty or reversed range, anything not an integer)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise ConfigError(f"seeds: {part!r} is not a seed or a range such as 0-9") from None
        if first < 0 or last < first:
            raise ConfigError(f"seeds: {part!r} is not a range of seeds >= 0 (such as 0-9)")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: {text!r} names a seed twice")
    return seeds


def seed_ranges(seeds: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the form ``--seeds`` reads)."""
    runs: list[list[int]] = []  # [first, last] of each run of consecutive seeds
    for s in seeds:
        if runs and runs[-1][1] == s - 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
