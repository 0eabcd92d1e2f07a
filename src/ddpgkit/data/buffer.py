"""Experience replay: a preallocated, fixed-capacity, circular store of transitions.

All transitions live in one (capacity, width) float32 tensor on the training device, one row per
transition laid out as ``[obs | action | reward | next_obs | terminated | truncated]``. Sampling draws
one index tensor and gathers the rows with a single ``index_select``; the batch fields are column
views of that gathered block, so nothing is converted from numpy when a batch is drawn.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A sampled mini-batch; every field is (B, k) float32 on the buffer's device."""

    obs: torch.Tensor  # (B, obs_dim)        s
    action: torch.Tensor  # (B, act_dim)     a
    reward: torch.Tensor  # (B, 1)           r
    next_obs: torch.Tensor  # (B, obs_dim)   s'
    terminated: torch.Tensor  # (B, 1)       1.0 where s' is terminal (no bootstrap)
    truncated: torch.Tensor  # (B, 1)        1.0 where the episode was cut by a time limit


class ReplayBuffer:
    """Circular replay buffer with uniform sampling.

    Args:
        capacity: maximum number of transitions; the oldest is overwritten when full.
        obs_dim, act_dim: sizes of an observation and an action.
        device: where the storage (and every sampled batch) lives.
        seed: seed of the buffer's own sampling generator.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu",
                 seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity, self.obs_dim, self.act_dim = capacity, obs_dim, act_dim
        self.device = torch.device(device)
        o, a = obs_dim, act_dim
        # column ranges of each field inside a row
        self._cols = {
            "obs": (0, o), "action": (o, o + a), "reward": (o + a, o + a + 1),
            "next_obs": (o + a + 1, 2 * o + a + 1), "terminated": (2 * o + a + 1, 2 * o + a + 2),
            "truncated": (2 * o + a + 2, 2 * o + a + 3),
        }
        self.width = 2 * o + a + 3
        self.data = torch.zeros(capacity, self.width, dtype=torch.float32, device=self.device)  # (C, width)
        # On the CPU, rows are written through a numpy view of the storage (no tensor op per add);
        # elsewhere through a staging row on the host and one copy to the device.
        self._rows = self.data.numpy() if self.device.type == "cpu" else None
        self._row = np.zeros(self.width, dtype=np.float32)
        self.pos = 0  # next row to write
        self.size = 0  # rows filled
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        """Store one transition (s, a, r, s', terminated, truncated)."""
        o, a = self.obs_dim, self.act_dim
        row = self._rows[self.pos] if self._rows is not None else self._row
        row[:o] = obs
        row[o:o + a] = action
        row[o + a] = reward
        row[o + a + 1:2 * o + a + 1] = next_obs
        row[2 * o + a + 1] = float(terminated)
        row[2 * o + a + 2] = float(truncated)
        if self._rows is None:
            self.data[self.pos].copy_(torch.from_numpy(row))
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """Draw ``batch_size`` transitions uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator, device=self.device)
        return self.split(self.data.index_select(0, idx))  # (B, width)

    def split(self, rows: torch.Tensor) -> Batch:
        """View a (B, width) block of rows as a :class:`Batch`."""
        return Batch(*(rows[:, lo:hi] for lo, hi in self._cols.values()))

    # ---- persistence (no pickle: tensors for safetensors, plain values for JSON) ---------------

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """(tensors, json-able metadata) that :meth:`load_state_dict` restores exactly."""
        tensors = {"data": self.data[: self.size].contiguous().cpu(),
                   "generator": self.generator.get_state()}
        meta = {"capacity": self.capacity, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "pos": self.pos, "size": self.size}
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, int]) -> None:
        """Restore :meth:`state_dict`'s output; anything inconsistent raises ValueError."""
        want = {"capacity": self.capacity, "obs_dim": self.obs_dim, "act_dim": self.act_dim}
        got = {k: meta.get(k) for k in want}
        if got != want or not all(type(v) is int for v in got.values()):
            raise ValueError(f"replay buffer shape {got} does not match {want}")
        size, pos = meta.get("size"), meta.get("pos")
        if type(size) is not int or type(pos) is not int:
            raise ValueError(f"replay buffer size and pos must be integers, got {size!r}, {pos!r}")
        data = tensors["data"]
        # filled in order until full: below capacity the next row to write is row `size`
        if (not (0 <= size <= self.capacity and 0 <= pos < self.capacity) or (size < self.capacity and pos != size)
                or data.shape != (size, self.width) or data.dtype != torch.float32):
            raise ValueError(f"replay buffer contents are inconsistent (size {size}, pos {pos}, "
                             f"data {tuple(data.shape)})")
        self.data.zero_()
        self.data[:size].copy_(data)
        self.size, self.pos = size, pos
        self.generator.set_state(tensors["generator"])
