"""DDPGConfig: every hyperparameter of DDPG, its default and its meaning, validated on creation.

The same dataclass is the library's argument, the CLI's flags (``ddpgkit train --help`` is generated
from the fields below), the ``config.toml`` of every run and the config inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..nn.mlp import ACTIVATIONS
from ..storage.atomic import atomic_write_text
from ..storage.rundir import config_table
from .presets import PRESETS

NOISE_TYPES = ("gaussian", "ou", "none")
PRECISIONS = ("fp32", "bf16")
BACKWARDS = ("handwritten", "autograd")
DEVICES = ("auto", "cpu", "cuda")
HER_STRATEGIES = ("none", "future", "final", "episode")


def _param(default: Any, help: str, *, flags: tuple[str, ...] = ()) -> Any:
    """A config field: its default, a one-line meaning, and extra CLI flag names."""
    return field(default=default, metadata={"help": help, "flags": flags})


@dataclass(frozen=True)
class DDPGConfig:
    """Hyperparameters of DDPG (Lillicrap et al. 2015). Defaults: the chapter's 256-256 ReLU
    networks and Adam, and the common modern DDPG settings (τ = 0.005, batch 256, Gaussian noise 0.1,
    PyTorch's default init of the last layers, 1000 random steps). These are the general defaults of
    :mod:`ddpgkit.config.hyperparams`; an env id with an entry there starts from that entry instead."""

    seed: int = _param(0, "seed of the env, its action space, torch, numpy and every generator")
    total_steps: int = _param(100_000, "environment steps to train for", flags=("--steps",))
    hidden: tuple[int, ...] = _param((256, 256), "hidden layer sizes of actor and critic")
    activation: str = _param("relu", f"hidden activation: {', '.join(ACTIVATIONS)}")
    final_layer_init: float = _param(0.0, "last layers drawn from uniform(±value); 0 keeps PyTorch's init")
    actor_lr: float = _param(1e-3, "Adam learning rate of the actor μ")
    critic_lr: float = _param(1e-3, "Adam learning rate of the critic Q")
    critic_weight_decay: float = _param(0.0, "L2 weight decay of the critic (the paper used 1e-2)")
    critic_action_layer: int = _param(0, "hidden layer where the action enters the critic: 0 = with the observation "
                                      "at the input; 1 = at the second hidden layer, as in the paper")
    policy_frequency: int = _param(1, "update the actor and the target networks every N-th critic update "
                                   "(1: every update, as in the paper; CleanRL's DDPG uses 2)")
    n_critics: int = _param(1, "critics: 1 (DDPG), or 2 for TD3's clipped double-Q learning (the TD target takes "
                            "the smaller of the two target critics, both critics learn from it, the actor follows "
                            "the first)")
    target_noise: float = _param(0.0, "target policy smoothing (TD3): std of the Gaussian noise added to μ'(s') in "
                                 "the TD target, as a fraction of the action scale (high−low)/2; 0: none (DDPG)")
    target_noise_clip: float = _param(0.5, "the target smoothing noise is clipped to ±this fraction of the action "
                                      "scale (used only with target_noise > 0)")
    n_step: int = _param(1, "n-step returns: the TD target sums up to n discounted rewards before it bootstraps "
                         "with γ^m (never across an episode's end); 1: DDPG's one-step target")
    obs_norm: bool = _param(False, "normalize observations by the running mean and variance of those collected, "
                            "clipped to ±obs_clip (inside the agent: acting, evaluation and checkpoints see it)")
    obs_clip: float = _param(5.0, "the clip of normalized observations (used only with obs_norm)")
    her: str = _param("none", "Hindsight Experience Replay for goal envs: none, or the strategy of the goals a sampled "
                      "transition is relabelled with: future (reached later in its episode), final, episode "
                      "(one-step targets only: refused with n_step > 1)")
    her_k: int = _param(4, "HER: relabelled goals per real one (a share k/(k+1) of every batch relabelled)")
    action_l2: float = _param(0.0, "weight λ of the actor's action penalty λ·mean((μ(s)−bias)/scale)² (the HER "
                              "paper's DDPG: 1.0); 0: none (DDPG)")
    random_action_prob: float = _param(0.0, "probability of a uniformly random action instead of μ(s) + noise "
                                       "while exploring (the HER paper's DDPG: 0.3); 0: DDPG's exploration")
    gamma: float = _param(0.99, "discount factor γ, in [0, 1]")
    tau: float = _param(0.005, "soft update weight of the online network: θ' ← τθ + (1 − τ)θ', in (0, 1]")
    batch_size: int = _param(256, "transitions per gradient step")
    buffer_size: int = _param(1_000_000, "replay buffer capacity (oldest transitions overwritten)")
    learning_starts: int = _param(1_000, "steps of uniform random actions before learning starts")
    updates_per_step: int = _param(1, "gradient updates of critic and actor per environment step")
    noise: str = _param("gaussian", "exploration noise: gaussian, ou (Ornstein-Uhlenbeck) or none")
    noise_scale: float = _param(0.1, "noise std (gaussian) or σ (ou) as a fraction of the action scale (high−low)/2")
    ou_theta: float = _param(0.15, "Ornstein-Uhlenbeck mean reversion θ")
    ou_dt: float = _param(1e-2, "Ornstein-Uhlenbeck time step dt")
    eval_interval: int = _param(5_000, "steps between deterministic evaluations; 0: only at the end")
    eval_episodes: int = _param(10, "episodes per evaluation")
    health_interval: int = _param(10, "measure the update's health signals (gradient norms, TD error, Q range, "
                                  "tanh saturation) on every N-th critic and actor step; 1: every step, 0: never")
    checkpoint_interval: int = _param(10_000, "steps between full checkpoints (taken at the next episode end, "
                                      "for exact resume); 0: only at the end")
    keep_checkpoints: int = _param(3, "checkpoints kept in a run directory; the newest valid one is never removed")
    device: str = _param("auto", "torch device: auto (cuda if available), cpu or cuda")
    precision: str = _param("fp32", "fp32, or bf16: the update's hidden-to-hidden matrix products in bfloat16, "
                            "loss and Adam in fp32 (faster for wide networks on CPUs with bf16, see benchmarks)")
    backward: str = _param("handwritten", "gradients of the update: handwritten (the MLP's backward pass written "
                           "out; identical numbers in fp32, less overhead) or autograd (bf16: under autocast)")
    compile: bool = _param(False, "compile the hand-written update with torch.compile (on CUDA as CUDA "
                                  "graphs): faster updates after a compile of seconds; pays on long runs (benchmarks)")
    threads: int = _param(1, "torch intra-op threads; 0 keeps torch's default (docs/guide/speed.md, Threads)")

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), f.type))
        self._validate()

    def _validate(self) -> None:
        def need(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"{key} {what}, got {getattr(self, key)!r}")

        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.total_steps >= 1, "total_steps", "must be >= 1")
        need(all(h >= 1 for h in self.hidden), "hidden", "sizes must be >= 1")
        need(self.activation in ACTIVATIONS, "activation", f"must be one of {', '.join(ACTIVATIONS)}")
        need(self.final_layer_init >= 0, "final_layer_init", "must be >= 0")
        for key in ("actor_lr", "critic_lr"):
            need(getattr(self, key) > 0, key, "must be > 0")
        need(self.critic_weight_decay >= 0, "critic_weight_decay", "must be >= 0")
        need(0 <= self.gamma <= 1, "gamma", "must be in [0, 1]")
        need(0 < self.tau <= 1, "tau", "must be in (0, 1]")
        need(self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.buffer_size >= 1, "buffer_size", "must be >= 1")
        need(self.batch_size <= self.buffer_size, "batch_size", f"must not exceed buffer_size ({self.buffer_size})")
        need(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        need(self.learning_starts < self.total_steps, "learning_starts",
             f"must be below total_steps ({self.total_steps}), or nothing is learned")
        need(self.updates_per_step >= 1, "updates_per_step", "must be >= 1")
        need(0 <= self.critic_action_layer < max(len(self.hidden), 1), "critic_action_layer",
             f"must be in [0, {max(len(self.hidden) - 1, 0)}] (a hidden layer of {self.hidden})")
        need(self.policy_frequency >= 1, "policy_frequency", "must be >= 1")
        need(self.n_critics in (1, 2), "n_critics", "must be 1 or 2")
        need(self.target_noise >= 0, "target_noise", "must be >= 0")
        need(self.target_noise_clip > 0, "target_noise_clip", "must be > 0")
        need(self.n_step >= 1, "n_step", "must be >= 1")
        need(self.obs_clip > 0, "obs_clip", "must be > 0")
        need(self.her in HER_STRATEGIES, "her", f"must be one of {', '.join(HER_STRATEGIES)}")
        need(self.her_k >= 1, "her_k", "must be >= 1")
        need(self.her == "none" or self.n_step == 1, "her",
             "is not built with n_step > 1 (every reward of an n-step window would need relabelling): set n_step = 1")
        need(self.action_l2 >= 0, "action_l2", "must be >= 0")
        need(0 <= self.random_action_prob <= 1, "random_action_prob", "must be in [0, 1]")
        need(self.noise in NOISE_TYPES, "noise", f"must be one of {', '.join(NOISE_TYPES)}")
        need(self.noise_scale >= 0, "noise_scale", "must be >= 0")
        need(self.ou_theta >= 0, "ou_theta", "must be >= 0")
        need(self.ou_dt > 0, "ou_dt", "must be > 0")
        need(self.eval_interval >= 0, "eval_interval", "must be >= 0")
        need(self.eval_episodes >= 1, "eval_episodes", "must be >= 1")
        need(self.health_interval >= 0, "health_interval", "must be >= 0")
        need(self.checkpoint_interval >= 0, "checkpoint_interval", "must be >= 0")
        need(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
        need(self.device in DEVICES or self.device.startswith("cuda:"), "device",
             f"must be one of {', '.join(DEVICES)} or cuda:N")
        need(self.threads >= 0, "threads", "must be >= 0")
        need(self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}")
        need(self.backward in BACKWARDS, "backward", f"must be one of {', '.join(BACKWARDS)}")
        need(not self.compile or self.backward == "handwritten", "backward",
             "must be handwritten with compile = true (it compiles the hand-written update)")

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DDPGConfig:
        """A named preset (see :data:`~ddpgkit.config.presets.PRESETS`) with optional overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def algorithm(self) -> str:
        """What this config trains, in words: ``"DDPG"``; ``"TD3"`` with two critics, target smoothing and a delayed
        actor (Fujimoto et al. 2018); the other additions in parentheses (``"DDPG (two critics, 3-step returns)"``)."""
        td3 = self.n_critics == 2 and self.target_noise > 0 and self.policy_frequency >= 2
        extras = [] if td3 else [what for on, what in ((self.n_critics == 2, "two critics"),
                                                       (self.target_noise > 0, "target smoothing")) if on]
        if self.n_step > 1:
            extras.append(f"{self.n_step}-step returns")
        if self.obs_norm:
            extras.append("normalized observations")
        if self.her != "none":
            extras.append(f"HER {self.her}, k = {self.her_k}")
        return ("TD3" if td3 else "DDPG") + (f" ({', '.join(extras)})" if extras else "")

    def replace(self, **changes: Any) -> DDPGConfig:
        """A copy with some fields changed (validated again)."""
        check_keys(changes, "override")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, as plain values (tuples as lists): what config.toml holds."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> DDPGConfig:
        """Build from a plain mapping; unknown keys and wrong types are named in the error."""
        check_keys(data, source)
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    # ---- TOML ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, base: DDPGConfig | None = None) -> DDPGConfig:
        """Read a TOML file (:func:`~ddpgkit.config.ddpg.read_config_file`); keys not given keep the value of
        ``base`` (the defaults when None)."""
        data = read_config_file(path)
        return cls.from_dict({**(base or cls()).to_dict(), **data}, str(path))

    def to_toml(self, origin: dict[str, str] | None = None) -> str:
        """The config as TOML, each key preceded by its meaning as a comment; ``origin`` (for example
        ``{"defaults": "table:HalfCheetah-v5", "source": "..."}``, see :mod:`ddpgkit.config.hyperparams`) goes
        into an ``[origin]`` table before the ``[ddpg]`` one."""
        lines = ["# ddpgkit DDPG configuration (every key, resolved)"]
        if origin:
            lines.append("# where the values started from, before any config file and flags")
            lines.append("[origin]")
            lines += [f"{k} = {_toml_value(str(v))}" for k, v in origin.items()]
            lines.append("")
        lines.append("[ddpg]")
        for f in fields(self):
            lines.append(f"# {f.metadata['help']}")
            lines.append(f"{f.name} = {_toml_value(getattr(self, f.name))}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path, origin: dict[str, str] | None = None) -> Path:
        """Write the config as TOML (atomically): every field under ``[ddpg]`` with its meaning as a comment, and
        ``origin`` (where the values came from) under ``[origin]``. Returns ``path``."""
        return atomic_write_text(path, self.to_toml(origin))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The hyperparameters a TOML file sets, by name: keys at the top level or under a ``[ddpg]`` table (a run's
    config.toml, beside its ``[origin]``). Unknown keys, values of the wrong type and unreadable files raise
    ConfigError naming the file; whether the values fit together is checked when a config is built from them."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    data = config_table(data)
    check_keys(data, str(path))
    types = {f.name: f.type for f in fields(DDPGConfig)}
    try:
        return {k: _coerce(k, v, types[k]) for k, v in data.items()}
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def field_help() -> dict[str, str]:
    """Each field's one-line meaning, by name."""
    return {f.name: f.metadata["help"] for f in fields(DDPGConfig)}


def check_keys(data: dict[str, Any], source: str) -> None:
    """ConfigError naming ``source`` and the nearest field if ``data`` has a key that is no DDPGConfig field."""
    known = {f.name for f in fields(DDPGConfig)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown key {key!r}{hint}")


_TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "tuple[int, ...]": "a list of integers"}


def _coerce(name: str, value: Any, type_name: Any) -> Any:
    """Check ``value`` against the field's annotation (a string under postponed evaluation) and
    convert the harmless cases (int -> float, list -> tuple)."""
    t = str(type_name)
    expected = _TYPE_NAMES.get(t, t)
    bad = ConfigError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():  # 1e5 from a TOML file
                return int(value)
            raise bad
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be finite, got {value!r}")
        return float(value)
    if t == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if t == "tuple[int, ...]":
        if isinstance(value, str):
            raise bad
        try:
            items = tuple(value)
        except TypeError:
            raise bad from None
        if any(isinstance(v, bool) or not isinstance(v, int) for v in items):
            raise bad
        return items
    raise TypeError(f"unsupported config field type {t}")  # a bug in DDPGConfig itself


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
