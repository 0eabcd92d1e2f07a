"""Observation spaces: a flat Box, or a Dict of flat entries read in one fixed order.

The networks take one flat vector per state. A ``Box`` observation space of shape (obs_dim,) is that vector
already. A ``Dict`` space (a goal env's ``observation`` / ``achieved_goal`` / ``desired_goal``, or any env
that names the parts of its state) is read key by key in the space's own order, each entry flattened and
the entries concatenated: :class:`ObservationLayout` is that order with each key's size, recorded in a run's
config.toml and in every checkpoint (a checkpoint refuses an env whose keys differ, naming them). An entry
may be a 1-D ``Box`` or a ``MultiBinary`` (read as 0.0 / 1.0, as Stable-Baselines3's BitFlippingEnv gives its
bits); a nested Dict, a Discrete entry and an image (a Box of more than one dimension) are refused in one line.

The replay buffer stores the flat vectors, so each key is a fixed range of columns of its rows
(:meth:`ObservationLayout.columns`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from ..errors import EnvError


@dataclass(frozen=True)
class ObservationLayout:
    """How an env's observations become the networks' flat vectors: ``keys`` (the Dict's keys in order, each
    with its flat size) or None for a flat Box of ``obs_dim`` values."""

    obs_dim: int
    keys: tuple[tuple[str, int], ...] | None = None

    @classmethod
    def of(cls, space: spaces.Space, name: str = "the env") -> ObservationLayout:
        """The layout of an observation space; EnvError (one line, naming ``name``) for one ddpgkit cannot read."""
        if isinstance(space, spaces.Box):
            if len(space.shape) != 1 or space.shape[0] < 1:
                raise EnvError(f"{name}: ddpgkit needs a 1-D Box observation space (or a Dict of them), got {space}; "
                               "wrap the env with gymnasium.wrappers.FlattenObservation")
            return cls(int(space.shape[0]))
        if not isinstance(space, spaces.Dict):
            raise EnvError(f"{name}: ddpgkit needs a 1-D Box or a Dict observation space, got {type(space).__name__} "
                           f"({space})")
        keys = []
        for key, entry in space.spaces.items():
            if not isinstance(key, str):
                raise EnvError(f"{name}: the Dict observation space's key {key!r} is a {type(key).__name__}: ddpgkit "
                               "records and reads string keys only")
            keys.append((key, _entry_size(entry, f"{name}: observation entry {key!r}")))
        if not keys:
            raise EnvError(f"{name}: the Dict observation space has no entries")
        return cls(sum(size for _, size in keys), tuple(keys))

    @classmethod
    def from_json(cls, data: Any) -> ObservationLayout | None:
        """:meth:`to_json`'s value back (None: not a layout)."""
        if isinstance(data, int) and not isinstance(data, bool) and data >= 1:
            return cls(data)
        if (isinstance(data, list) and data and all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
                                                    and type(e[1]) is int and e[1] >= 1 for e in data)):
            keys = tuple((k, n) for k, n in data)
            return cls(sum(n for _, n in keys), keys)
        return None

    def to_json(self) -> int | list[list[Any]]:
        """The layout as JSON: obs_dim for a flat Box, else ``[[key, size], ...]`` in order."""
        return self.obs_dim if self.keys is None else [[k, n] for k, n in self.keys]

    def describe(self) -> str:
        """One line: ``"Box(3)"``, or ``"observation:10, achieved_goal:3, desired_goal:3"``."""
        return f"Box({self.obs_dim})" if self.keys is None else ", ".join(f"{k}:{n}" for k, n in self.keys)

    def columns(self, key: str) -> slice:
        """The columns of ``key``'s values in a flat observation."""
        start = 0
        for k, n in self.keys or ():
            if k == key:
                return slice(start, start + n)
            start += n
        raise KeyError(f"no observation key {key!r} (keys: {self.describe()})")

    def flatten(self, obs: Any) -> np.ndarray:
        """One observation as the env gives it (an array, or a dict of the keys) -> (obs_dim,) float32."""
        if self.keys is None:
            return np.asarray(obs, dtype=np.float32)
        if not isinstance(obs, Mapping):
            raise ValueError(f"expected a dict observation with keys {self.describe()}, got {type(obs).__name__}")
        return np.concatenate([_part(obs, k, n) for k, n in self.keys])

    def flatten_batch(self, obs: Any) -> np.ndarray:
        """One observation or a batch -> (obs_dim,) or (B, obs_dim) float32: for a Dict layout, a dict of one
        observation's entries, a dict whose entries are batches (B, size), a list of dicts, or a numpy array
        already flat."""
        if self.keys is None or isinstance(obs, np.ndarray):  # a Box's, or already flat (as the buffer stores it)
            return np.asarray(obs, dtype=np.float32)
        if isinstance(obs, Mapping):
            first = np.asarray(obs[self.keys[0][0]]) if self.keys[0][0] in obs else None
            if first is not None and first.ndim == 2:  # a dict of batches, each entry (B, size)
                parts = []
                for k, n in self.keys:
                    part = np.asarray(obs[k], dtype=np.float32) if k in obs else _missing(k, self)
                    if part.shape != (len(first), n):
                        raise ValueError(f"observation entry {k!r} of a batch has shape {part.shape}, expected "
                                         f"({len(first)}, {n})")
                    parts.append(part)
                return np.concatenate(parts, axis=1)
            return self.flatten(obs)
        if isinstance(obs, Sequence) and not isinstance(obs, (str, bytes)) and all(isinstance(o, Mapping) for o in obs):
            return np.stack([self.flatten(o) for o in obs]) if obs else np.zeros((0, self.obs_dim), np.float32)
        raise ValueError(f"expected a dict observation (or a batch of them) with keys {self.describe()}, got "
                         f"{type(obs).__name__}")


def _entry_size(entry: spaces.Space, where: str) -> int:
    if isinstance(entry, spaces.Box):
        if len(entry.shape) == 0:  # a scalar: one value
            return 1
        if len(entry.shape) != 1:
            raise EnvError(f"{where} is a Box of shape {entry.shape}: ddpgkit reads scalar and 1-D entries only (an "
                           "image needs a network ddpgkit does not have; flatten other arrays in a wrapper)")
        if entry.shape[0] < 1:
            raise EnvError(f"{where} is an empty Box {entry.shape}: leave it out")
        return int(entry.shape[0])
    if isinstance(entry, spaces.MultiBinary):
        shape = np.shape(np.zeros(entry.n))
        if len(shape) != 1 or shape[0] < 1:
            raise EnvError(f"{where} is a MultiBinary of shape {shape}: ddpgkit reads non-empty 1-D entries only")
        return int(shape[0])
    if isinstance(entry, spaces.Dict):
        raise EnvError(f"{where} is itself a Dict: ddpgkit reads one level of keys; flatten the inner dict")
    raise EnvError(f"{where} is a {type(entry).__name__} ({entry}): ddpgkit reads Box and MultiBinary entries only")


def _part(obs: Mapping[str, Any], key: str, size: int) -> np.ndarray:
    if key not in obs:
        raise ValueError(f"the observation has no key {key!r} (it has {', '.join(map(str, obs))})")
    part = np.asarray(obs[key], dtype=np.float32).reshape(-1)
    if part.shape != (size,):
        raise ValueError(f"observation entry {key!r} has {part.size} values, expected {size}")
    return part


def _missing(key: str, layout: ObservationLayout) -> np.ndarray:
    raise ValueError(f"the observation has no key {key!r} (keys: {layout.describe()})")
