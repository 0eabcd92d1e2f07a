"""DDPG's update: the paper's equations (:mod:`.ddpg`), the same gradients with the backward pass
written out (:mod:`.gradients`, the default fast path), and the Adam step (:mod:`.optim`)."""

from .ddpg import actor_loss, critic_loss, soft_update, td_target

__all__ = ["actor_loss", "critic_loss", "soft_update", "td_target"]
