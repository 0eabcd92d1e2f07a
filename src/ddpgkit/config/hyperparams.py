"""Hyperparameters by environment id, as rl-baselines3-zoo keeps them: one table, each entry naming
where its values come from.

A run's hyperparameters start from one base, then a config file and flags go on top:

- ``--preset NAME`` given: that preset (:data:`ddpgkit.config.presets.PRESETS`);
- else the env id has an entry in :data:`ENV_HYPERPARAMS`: the general defaults with that entry's values;
- else the general defaults, :class:`~ddpgkit.config.ddpg.DDPGConfig`'s own.

:func:`defaults_for` makes that choice and says which base it took (:class:`Defaults`); every run
records it in config.toml (``[origin]``) and summary.json, ``ddpgkit hyperparams`` prints the table.

    d = defaults_for("HalfCheetah-v5")
    d.name, d.source, d.config.learning_starts   # 'table:HalfCheetah-v5', 'TD3 paper ...', 10000
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .ddpg import DDPGConfig
from .presets import PRESET_SOURCES, PRESETS

GENERAL_SOURCE = ("general defaults: 256-256 ReLU (the chapter's networks), Adam 1e-3, batch 256, τ 5e-3, γ 0.99, "
                  "Gaussian noise 0.1 (TD3 paper, rl-baselines3-zoo), PyTorch's default init of the last layers "
                  "(SB3, CleanRL, the TD3 repository; better on HalfCheetah in ../shared/reference-measurements.md), "
                  "1000 random steps (the TD3 paper for all but HalfCheetah and Ant); measured here: "
                  "InvertedPendulum-v5 (benchmarks/README.md)")

_TD3_PAPER = "Fujimoto et al. 2018 (TD3 paper, section 6.1)"
_ZOO_DDPG = "rl-baselines3-zoo hyperparams/ddpg.yml"


@dataclass(frozen=True)
class EnvEntry:
    """One row of the table: the values that differ from the general defaults, and their source."""

    values: dict[str, Any]
    source: str


def _td3(total_steps: int, learning_starts: int, measured: str = "not measured here") -> EnvEntry:
    """A MuJoCo entry: the general defaults with the TD3 paper's random steps for the task."""
    return EnvEntry(dict(total_steps=total_steps, learning_starts=learning_starts),
                    f"{_TD3_PAPER}: {learning_starts // 1000}k random steps; {measured}")


#: Values over the general defaults. Where an entry says "measured", benchmarks/README.md has the run.
ENV_HYPERPARAMS: dict[str, EnvEntry] = {
    "Pendulum-v1": EnvEntry(PRESETS["pendulum"], "the pendulum preset: " + PRESET_SOURCES["pendulum"]),
    # MuJoCo: the TD3 paper's random steps (10k for HalfCheetah and Ant, 1k for the rest; 5k-step evaluations)
    # over the general defaults, which are its re-tuned DDPG's values except 256-256 for 400-300 and batch 256
    "HalfCheetah-v5": _td3(1_000_000, 10_000, "measured here: IQM 4937 at 100k steps (5 seeds), 8954 at 300k "
                                              "(mean of 3 seeds; benchmarks/README.md)"),
    "Ant-v5": _td3(1_000_000, 10_000),
    "Hopper-v5": _td3(1_000_000, 1_000, "measured here, 5 seeds: IQM 798 at 100k steps, best during training "
                                        "1114 (benchmarks/README.md)"),
    "Walker2d-v5": _td3(1_000_000, 1_000),
    "InvertedPendulum-v5": _td3(50_000, 1_000, "measured here: 1000 by 25k steps on 5 of 5 seeds "
                                               "(benchmarks/README.md)"),
    # tuned here: `ddpgkit tune benchmarks/tune/idp_5seeds.toml` (not the one-seed study's winner, whose critic
    # diverged: benchmarks/README.md)
    "InvertedDoublePendulum-v5": EnvEntry(
        dict(total_steps=300_000, actor_lr=0.0003072543924001282, critic_lr=0.0004577742168280771,
             tau=0.006951361725690959, batch_size=128, noise_scale=0.09940553131503796),
        f"{_TD3_PAPER}: 1k random steps; the rest tuned here by ddpgkit tune at 30,000 steps (12 trials of five "
        "seeds; benchmarks/tune/idp_5seeds.toml): on test seeds 100-109 at 30,000 steps final IQM 9340.1 [9322.8, "
        "9352.3] against the general defaults' 9304.4 [9295.2, 9316.1], P(tuned > them) = 0.92 [0.76, 1.00]; "
        "300,000 steps not measured (benchmarks/README.md)"),
    "Reacher-v5": _td3(300_000, 1_000),
    # Swimmer's reward needs a long horizon: the zoo's TD3 and SAC entries use γ 0.9999
    "Swimmer-v5": EnvEntry(dict(total_steps=1_000_000, learning_starts=10_000, gamma=0.9999),
                           "rl-baselines3-zoo (td3.yml and sac.yml Swimmer: γ 0.9999); not measured here"),
    # Box2D: the zoo's DDPG entries (its v2 LunarLander is v3 in Gymnasium 1.x)
    "LunarLanderContinuous-v3": EnvEntry(
        dict(total_steps=300_000, hidden=(400, 300), gamma=0.98, buffer_size=200_000, learning_starts=10_000),
        f"{_ZOO_DDPG} (LunarLanderContinuous-v2); not measured here"),
    "BipedalWalker-v3": EnvEntry(
        dict(total_steps=1_000_000, hidden=(400, 300), gamma=0.98, buffer_size=200_000, learning_starts=10_000),
        f"{_ZOO_DDPG}; not measured here"),
}


@dataclass(frozen=True)
class Defaults:
    """The base a run's hyperparameters start from: its name (``preset:NAME``, ``table:ENV_ID`` or
    ``general``), the config it gives and where its values come from."""

    name: str
    config: DDPGConfig
    source: str


def defaults_for(env_id: str | None, preset: str | None = None) -> Defaults:
    """The base config for training on ``env_id``: ``preset`` if given, else the env's table entry, else
    the general defaults (module doc)."""
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        return Defaults(f"preset:{preset}", DDPGConfig.preset(preset), PRESET_SOURCES[preset])
    entry = ENV_HYPERPARAMS.get(env_id) if env_id is not None else None
    if entry is not None:
        return Defaults(f"table:{env_id}", DDPGConfig(**entry.values), entry.source)
    return Defaults("general", DDPGConfig(), GENERAL_SOURCE)
