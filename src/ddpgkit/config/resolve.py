"""A run's config from its sources, by one rule, for every caller: ``ddpgkit train``, a sweep's trials, the
Python API (and so the worker processes, which train the config their parent resolved).

    resolved = resolve_config("HalfCheetah-v5", values={"total_steps": 5000})
    resolved.config.learning_starts, resolved.notes   # 500, ('learning_starts 10,000 would leave ...',)

The sources, each over the one before:

1. the base (:func:`~ddpgkit.config.hyperparams.defaults_for`): ``preset`` if given, else the env id's entry in
   the hyperparameter table, else the general defaults;
2. a TOML ``file`` (``--config``; :func:`~ddpgkit.config.ddpg.read_config_file`);
3. ``values`` given by name (the command line's flags, a sweep's ``[config]`` and grid values, keyword
   arguments from Python).

The warm-up: a run's first ``learning_starts`` steps act at random. When the file or the values shorten
``total_steps`` so far that the base's warm-up would take the whole run, and neither sets ``learning_starts``
itself, learning starts after a tenth of the run instead, and :func:`warmup_note` says so; the note is
printed (``note: ...``) and recorded in the run's config.toml (``[origin]``, ``adapted``). A warm-up the user
set too long is an error, as any invalid value is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ddpg import DDPGConfig, check_keys, read_config_file
from .hyperparams import Defaults, defaults_for

#: The origin of a config given as a :class:`~ddpgkit.config.ddpg.DDPGConfig` object rather than resolved here.
GIVEN_ORIGIN = {"defaults": "given", "source": "a DDPGConfig given by the caller"}


def origin_of(defaults: Defaults, notes: tuple[str, ...] = ()) -> dict[str, str]:
    """What a run records of where its hyperparameters came from (config.toml's ``[origin]`` table and
    summary.json's ``defaults``): the base's name and source, and the adaptation's note if there was one."""
    origin = {"defaults": defaults.name, "source": defaults.source}
    if notes:
        origin["adapted"] = "; ".join(notes)
    return origin


def warmup_note(learning_starts: int, total_steps: int, starts: int) -> str:
    """The one sentence that says the warm-up was adapted to a short run."""
    return (f"learning_starts {learning_starts:,} would leave no step to learn in a run of {total_steps:,}: "
            f"learning starts at step {starts:,} (a tenth of the run; --learning-starts sets it)")


@dataclass(frozen=True)
class ResolvedConfig:
    """A run's config, where it came from (``origin``: config.toml's ``[origin]``) and what was adapted
    (``notes``, one sentence each)."""

    config: DDPGConfig
    origin: dict[str, str]
    notes: tuple[str, ...] = ()

    @classmethod
    def given(cls, config: DDPGConfig) -> ResolvedConfig:
        """A config the caller built itself: recorded as given, nothing adapted."""
        return cls(config, dict(GIVEN_ORIGIN))


def resolve_config(env_id: str | None, preset: str | None = None, file: str | Path | None = None,
                   values: Mapping[str, Any] | None = None) -> ResolvedConfig:
    """The config of a run on ``env_id`` from its sources (module doc): base <- ``file`` <- ``values``, the
    warm-up adapted where the rule says. Unknown keys, bad values and values that do not fit together raise
    :class:`~ddpgkit.errors.ConfigError`."""
    defaults = defaults_for(env_id, preset)
    chosen: dict[str, Any] = {}
    if file is not None:
        chosen.update(read_config_file(file))
    if values:
        check_keys(dict(values), "values")
        chosen.update(values)
    merged = {**defaults.config.to_dict(), **chosen}
    notes: list[str] = []
    starts, total = merged["learning_starts"], merged["total_steps"]
    if ("total_steps" in chosen and "learning_starts" not in chosen and isinstance(total, int)
            and isinstance(starts, int) and starts >= total >= 1):
        merged["learning_starts"] = total // 10
        notes.append(warmup_note(starts, total, total // 10))
    config = DDPGConfig(**merged)  # validated as a whole: a ConfigError names the value
    return ResolvedConfig(config, origin_of(defaults, tuple(notes)), tuple(notes))
