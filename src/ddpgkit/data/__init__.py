"""What DDPG learns from: the replay buffer (:mod:`ddpgkit.data.buffer`)."""

from .buffer import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer"]
