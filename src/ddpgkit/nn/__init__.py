"""Neural networks: the chapter's MLP (:mod:`ddpgkit.nn.mlp`), its backward pass written out
(:mod:`ddpgkit.nn.backward`), DDPG's actor and critic built from it (:mod:`ddpgkit.nn.actor_critic`), N of
them stacked as one (:mod:`ddpgkit.nn.stacked`), and the chapter's fit of a network to data
(:mod:`ddpgkit.nn.fitting`)."""

from .actor_critic import Actor, Critic, scale_action
from .mlp import ACTIVATIONS, MLP, activation, count_parameters

__all__ = ["ACTIVATIONS", "MLP", "Actor", "Critic", "activation", "count_parameters", "scale_action"]
