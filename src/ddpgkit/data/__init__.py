"""What DDPG learns from: the replay buffer (:mod:`ddpgkit.data.buffer`), with n-step returns
(:mod:`ddpgkit.data.nstep`) and Hindsight Experience Replay (:mod:`ddpgkit.data.her`) read from its rows."""

from .buffer import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer"]
