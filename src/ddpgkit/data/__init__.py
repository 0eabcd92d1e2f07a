"""What DDPG learns from: the replay buffer (:mod:`.buffer`) and exploration noise (:mod:`.noise`)."""

from .buffer import Batch, ReplayBuffer
from .noise import ActionNoise, GaussianNoise, NoNoise, OrnsteinUhlenbeckNoise, make_noise

__all__ = ["ActionNoise", "Batch", "GaussianNoise", "NoNoise", "OrnsteinUhlenbeckNoise", "ReplayBuffer", "make_noise"]
