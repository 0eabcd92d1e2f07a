"""Experience replay: a preallocated, fixed-capacity, circular store of transitions.

All transitions live in one (capacity, width) float32 tensor on the training device, one row per
transition laid out as ``[obs | action | reward | next_obs | terminated | truncated]``. Sampling draws
one index tensor and gathers the rows with a single ``index_select``; the batch fields are column
views of that gathered block, so nothing is converted from numpy when a batch is drawn.

For checkpoints the rows are cut into fixed chunks of ``chunk_rows`` rows (about 4 MB each). A chunk's
contents change exactly when transitions are written into its rows, so :meth:`ReplayBuffer.chunks`
says, per chunk, how many have been written so far: a checkpoint writer keeps the chunks whose count
did not change since it last saved them, and a loader restores the buffer one chunk at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from .her import EpisodeIndex, Relabeller
from .nstep import n_step_window


class Batch(NamedTuple):
    """A sampled mini-batch; every field is (B, k) float32 on the buffer's device ((N, B, k) for the N agents
    of a group, :class:`ddpgkit.agents.group.DDPGGroup`)."""

    obs: torch.Tensor  # (B, obs_dim)        s
    action: torch.Tensor  # (B, act_dim)     a
    reward: torch.Tensor  # (B, 1)           r
    next_obs: torch.Tensor  # (B, obs_dim)   s'
    terminated: torch.Tensor  # (B, 1)       1.0 where s' is terminal (no bootstrap)
    truncated: torch.Tensor  # (B, 1)        1.0 where the episode was cut by a time limit
    #: (B, 1) γ^m of an n-step batch (``reward`` is then the m-step return R^(m) and ``next_obs`` s_{t+m},
    #: :mod:`ddpgkit.data.nstep`); None for one-step transitions, whose discount is γ.
    discount: torch.Tensor | None = None

    def member(self, k: int) -> Batch:
        """Agent ``k``'s slice of a stacked (N, B, ·) batch."""
        return Batch(*(None if f is None else f[k] for f in self))


#: The size, in bytes, a checkpoint chunk of the buffer aims at.
CHUNK_BYTES = 4 * 2**20  # the size a checkpoint chunk of the buffer aims at


def chunk_rows_for(width: int) -> int:
    """Rows per checkpoint chunk for rows of ``width`` float32 values: the power of two that keeps a
    chunk at or below :data:`CHUNK_BYTES` (at least 256 rows)."""
    rows = max(256, CHUNK_BYTES // (4 * width))
    return 1 << (rows.bit_length() - 1)


class ReplayBuffer:
    """Circular replay buffer with uniform sampling.

    Args:
        capacity: maximum number of transitions; the oldest is overwritten when full.
        obs_dim, act_dim: sizes of an observation and an action.
        device: where the storage (and every sampled batch) lives.
        seed: seed of the buffer's own sampling generator. It is a CPU generator wherever the buffer lives (the
            indices are drawn on the CPU and moved), so its state — and a checkpoint's — is the same on every
            device, and a run saved on one device resumes on another.
        chunk_rows: rows per checkpoint chunk (default: :func:`~ddpgkit.data.buffer.chunk_rows_for` the row width).
        n_step, gamma: with ``n_step`` > 1 a sampled transition is an n-step one (:mod:`ddpgkit.data.nstep`,
            discounted with ``gamma``), read from the stored one-step rows when the batch is drawn.
        relabeller: Hindsight Experience Replay (:mod:`ddpgkit.data.her`): a drawn batch's goals replaced by goals
            reached later in the same episode, which the buffer then tracks (:attr:`episodes`); one-step only.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: str | torch.device = "cpu",
                 seed: int = 0, chunk_rows: int | None = None, n_step: int = 1, gamma: float = 0.99,
                 relabeller: Relabeller | None = None) -> None:
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
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        self.n_step, self.gamma = n_step, gamma
        #: the width of a sampled row (an n-step row carries γ^m in one more column)
        self.sample_width = self.width + (n_step > 1)
        self.data = torch.zeros(capacity, self.width, dtype=torch.float32, device=self.device)  # (C, width)
        # On the CPU, rows are written through a numpy view of the storage (no tensor op per add);
        # elsewhere through a staging row on the host and one copy to the device.
        self._rows = self.data.numpy() if self.device.type == "cpu" else None
        self._row = np.zeros(self.width, dtype=np.float32)
        self.pos = 0  # next row to write
        self.edited: set[int] = set()  # chunks changed in place since the last save asked (cut_episode)
        self.size = 0  # rows filled
        self.added = 0  # transitions ever added (pos = added % capacity, size = min(added, capacity))
        self.chunk_rows = chunk_rows or chunk_rows_for(self.width)
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        self.generator = torch.Generator()  # on the CPU whatever the device: a state every device can restore
        self.generator.manual_seed(seed)
        if relabeller is not None and n_step > 1:
            raise ValueError("HER relabelling of n-step transitions is not built (each reward of the window would "
                             "need recomputing): use n_step = 1 with her")
        self.relabeller = relabeller
        #: the episode of every row (HER's relabelling draws goals from it); None without a relabeller
        self.episodes = EpisodeIndex(capacity) if relabeller is not None else None

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
        if self.episodes is not None:
            self.episodes.added(self.added, bool(terminated or truncated))
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def cut_episode(self) -> None:
        """The newest transition's episode was cut short outside the env (a run resumed from a checkpoint taken
        mid-episode drops the rest of it): with n-step sampling, mark it truncated, so that no window runs on
        into the next episode's first transition and its sum bootstraps from this transition's next state, as
        at a time limit; with HER, so that the cut episode's goals are drawn from it alone (its episode ends here).
        Other one-step buffers are left as they are (their TD target does not read the flag)."""
        if (self.n_step == 1 and self.episodes is None) or self.size == 0:
            return
        row = (self.pos - 1) % self.capacity
        terminated, truncated = self._cols["terminated"][0], self._cols["truncated"][0]
        if float(self.data[row, terminated]) == 0.0 and float(self.data[row, truncated]) == 0.0:
            self.data[row, truncated] = 1.0
            self.edited.add(row // self.chunk_rows)  # its write count did not change: a save must rewrite it
            if self.episodes is not None:  # HER: the cut episode ends here, no goal drawn past it
                self.episodes.close(self.added - 1)

    def sample(self, batch_size: int) -> Batch:
        """Draw ``batch_size`` transitions uniformly with replacement."""
        return self.split(self.sample_rows(batch_size))

    def sample_rows(self, batch_size: int) -> torch.Tensor:
        """The rows of ``batch_size`` transitions drawn uniformly with replacement: (B, width)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator)  # (B,) drawn on the CPU
        if self.relabeller is not None:
            return self._relabelled_rows(idx)  # (B, width)
        if self.device.type != "cpu":
            idx = idx.to(self.device, non_blocking=True)
        if self.n_step > 1:
            return self._n_step_rows(idx)  # (B, width + 1)
        return self.data.index_select(0, idx)  # (B, width)

    def _relabelled_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (B,) (on the CPU) with HER's goals (:class:`~ddpgkit.data.her.Relabeller`): (B, width)."""
        assert self.relabeller is not None and self.episodes is not None
        u = torch.rand(2, len(idx), generator=self.generator)  # (2, B): which are relabelled, and with which goal
        rows = self.data.index_select(0, idx.to(self.device, non_blocking=True))  # (B, width)
        index = self.added - 1 - (self.pos - 1 - idx.numpy()) % self.capacity  # (B,) absolute indices
        start, end = self.episodes.bounds(index, self.added, self.size)
        next0 = self._cols["next_obs"][0]
        alo, ahi = self.relabeller.goals.achieved

        def achieved(j: np.ndarray) -> torch.Tensor:  # achieved_goal(s'_j) of transitions j (absolute): (b, g)
            rows_j = torch.as_tensor(j % self.capacity, device=self.device)
            return self.data[rows_j, next0 + alo:next0 + ahi]

        return self.relabeller.relabel(rows, index, achieved, start, end, u, self._cols)

    def _n_step_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """The n-step transitions from rows ``idx`` (B,): ``[s_t | a_t | R^(m) | s_{t+m} | terminated | truncated
        | γ^m]``, (B, width + 1), the last three of the row where the window stopped (:func:`n_step_window`)."""
        n, cols = self.n_step, self._cols
        window = (idx[:, None] + torch.arange(n, device=idx.device)) % self.capacity  # (B, n) row indices
        rows = self.data.index_select(0, window.reshape(-1)).reshape(len(idx), n, self.width)  # (B, n, width)
        r, term, trunc = cols["reward"][0], cols["terminated"][0], cols["truncated"][0]
        ahead = (self.pos - 1 - idx) % self.capacity  # (B,) rows stored after idx (the newest is pos − 1)
        ret, stop, discount = n_step_window(rows[..., r], (rows[..., term] + rows[..., trunc]) > 0, ahead, n,
                                            self.gamma)
        last = rows[torch.arange(len(idx), device=idx.device), stop]  # (B, width) the row where it stopped
        first = rows[:, 0]  # (B, width)
        return torch.cat([first[:, :r], ret, last[:, r + 1:], discount], dim=1)  # (B, width + 1)

    def latest(self, n: int) -> Batch:
        """The ``n`` transitions added last (at most ``len(self)``), oldest first: (n, ·)."""
        if not 0 <= n <= self.size:
            raise ValueError(f"the buffer holds {self.size} transitions, asked for the latest {n}")
        idx = torch.arange(self.pos - n, self.pos, device=self.device) % self.capacity
        return self.split(self.data.index_select(0, idx))  # (n, width)

    def split(self, rows: torch.Tensor) -> Batch:
        """View a (B, width) block of rows, or a stacked (N, B, width) one, as a :class:`Batch` (an n-step block,
        (·, width + 1), with its ``discount`` column)."""
        fields = [rows[..., lo:hi] for lo, hi in self._cols.values()]
        discount = rows[..., self.width:] if rows.shape[-1] > self.width else None
        return Batch(*fields, discount=discount)

    # ---- persistence (no pickle: tensors for safetensors, plain values for JSON) ---------------

    def chunks(self) -> list[tuple[int, int]]:
        """``(index, writes)`` of every chunk holding at least one transition, in order: chunk ``k``
        is rows ``[k · chunk_rows, (k + 1) · chunk_rows)``, and ``writes`` counts the transitions
        written into those rows so far, so a chunk's contents changed iff its count did."""
        laps, rem = divmod(self.added, self.capacity)
        out = []
        for k in range(-(-self.size // self.chunk_rows)):
            lo = k * self.chunk_rows
            hi = min(lo + self.chunk_rows, self.capacity)
            out.append((k, laps * (hi - lo) + min(max(rem - lo, 0), hi - lo)))
        return out

    def chunk(self, k: int) -> torch.Tensor:
        """The filled rows of chunk ``k`` on the CPU: (rows, width)."""
        lo = k * self.chunk_rows
        return self.data[lo:min(lo + self.chunk_rows, self.size)].cpu()

    def state_dict(self, with_data: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """(tensors, json-able metadata) that :meth:`load_state_dict` restores exactly. Without
        ``with_data`` the rows are left out: the caller saves :meth:`chunk` ``(k)`` for every chunk."""
        tensors = {"generator": self.generator.get_state()}
        if with_data:
            tensors["data"] = self.data[: self.size].contiguous().cpu()
        meta = {"capacity": self.capacity, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "pos": self.pos, "size": self.size, "added": self.added, "chunk_rows": self.chunk_rows}
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, int],
                        read_chunk: Callable[[int], torch.Tensor] | None = None) -> None:
        """Restore :meth:`state_dict`'s output; anything inconsistent raises ValueError. The rows come
        from ``tensors["data"]`` or, without it, one chunk at a time from ``read_chunk(k)`` (so that
        loading never holds a second copy of the buffer)."""
        want = {"capacity": self.capacity, "obs_dim": self.obs_dim, "act_dim": self.act_dim}
        got = {k: meta.get(k) for k in want}
        if got != want or not all(type(v) is int for v in got.values()):
            raise ValueError(f"replay buffer shape {got} does not match {want}")
        size, pos = meta.get("size"), meta.get("pos")
        if type(size) is not int or type(pos) is not int:
            raise ValueError(f"replay buffer size and pos must be integers, got {size!r}, {pos!r}")
        added, chunk_rows = meta.get("added"), meta.get("chunk_rows")
        if type(added) is not int or type(chunk_rows) is not int or chunk_rows < 1:
            raise ValueError(f"replay buffer added and chunk_rows must be integers, got {added!r}, {chunk_rows!r}")
        # filled in order until full: below capacity the next row to write is row `size`
        if (not (0 <= size <= self.capacity and 0 <= pos < self.capacity) or (size < self.capacity and pos != size)
                or size != min(added, self.capacity) or pos != added % self.capacity):
            raise ValueError(f"replay buffer contents are inconsistent (size {size}, pos {pos}, added {added})")
        self.chunk_rows = chunk_rows
        if "data" in tensors:
            data = tensors["data"]
            if data.shape != (size, self.width) or data.dtype != torch.float32:
                raise ValueError(f"replay buffer data has shape {tuple(data.shape)} {data.dtype}, expected "
                                 f"({size}, {self.width}) float32")
            self.data.zero_()
            self.data[:size].copy_(data)
        elif read_chunk is None:
            raise ValueError("replay buffer rows missing (no data and no chunks)")
        else:
            self.data.zero_()
            for k in range(-(-size // chunk_rows)):
                lo = k * chunk_rows
                rows = read_chunk(k)
                n = min(lo + chunk_rows, size) - lo
                if rows.shape != (n, self.width) or rows.dtype != torch.float32:
                    raise ValueError(f"replay buffer chunk {k} has shape {tuple(rows.shape)} {rows.dtype}, "
                                     f"expected ({n}, {self.width}) float32")
                self.data[lo:lo + n].copy_(rows)
        self.size, self.pos, self.added = size, pos, added
        self.generator.set_state(tensors["generator"])
        if self.episodes is not None:  # the episodes from the rows' end flags, oldest row first
            order = torch.arange(added - size, added) % self.capacity
            term, trunc = self._cols["terminated"][0], self._cols["truncated"][0]
            flags = self.data.index_select(0, order.to(self.device))[:, term:trunc + 1].sum(1) > 0  # (size,)
            self.episodes.rebuild(flags.cpu().numpy(), added)
