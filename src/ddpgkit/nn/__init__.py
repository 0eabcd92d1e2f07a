"""Neural networks: the chapter's MLP (:mod:`.mlp`), its backward pass written out (:mod:`.backward`),
and DDPG's actor and critic built from it (:mod:`.actor_critic`)."""

from .actor_critic import Actor, Critic, scale_action
from .mlp import ACTIVATIONS, MLP, activation, count_parameters

__all__ = ["ACTIVATIONS", "MLP", "Actor", "Critic", "activation", "count_parameters", "scale_action"]
