"""DDPG's update: the paper's equations (:mod:`ddpgkit.algo.ddpg`), the same gradients with the backward pass
written out (:mod:`ddpgkit.algo.gradients`, the default fast path), and the Adam step (:mod:`ddpgkit.algo.optim`)."""

from .ddpg import actor_loss, critic_loss, soft_update, td_target

__all__ = ["actor_loss", "critic_loss", "soft_update", "td_target"]
