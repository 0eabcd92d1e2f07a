"""DDPG's update as the paper writes it (Lillicrap et al. 2015, "Continuous control with deep
reinforcement learning", Algorithm 1):

* :func:`td_target`   — y = r + γ (1 − d) Q_φ'(s', μ_θ'(s'))
* :func:`critic_loss` — L(φ) = mean_B (Q_φ(s, a) − y)²
* :func:`actor_loss`  — J(θ) = −mean_B Q_φ(s, μ_θ(s))  (its gradient is the deterministic policy gradient)
* :func:`soft_update` — θ' ← τ θ + (1 − τ) θ'

Plain functions of networks and a batch, differentiated by autograd. The default training path
computes the same gradients with the backward pass written out (:mod:`ddpgkit.algo.gradients`);
tests check that both train bit-identical networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.buffer import Batch
from ..nn.actor_critic import Actor, Critic


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """The TD target  y = r + γ (1 − terminated) Q'(s', μ'(s')).

    Only a true termination stops the bootstrap; a transition cut by a time limit (``truncated``)
    still bootstraps from Q'(s', μ'(s')). All arguments and the result are (B, 1).
    """
    return reward + gamma * (1.0 - terminated) * next_q


def critic_loss(critic: Critic, critic_target: Critic, actor_target: Actor, batch: Batch,
                gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L(φ) = 1/B Σ_i (Q_φ(s_i, a_i) − y_i)²,  y_i = r_i + γ (1 − d_i) Q_φ'(s'_i, μ_θ'(s'_i)).

    The target y is computed without gradient (from the target networks). Returns the loss, and for
    logging the detached Q(s, a) and the target y, both (B, 1).
    """
    with torch.no_grad():
        next_q = critic_target(batch.next_obs, actor_target(batch.next_obs))  # (B, 1)
        y = td_target(batch.reward, batch.terminated, next_q, gamma)  # (B, 1)
    q = critic(batch.obs, batch.action)  # (B, 1)
    return F.mse_loss(q, y), q.detach(), y


def actor_loss(actor: Actor, critic: Critic, obs: torch.Tensor) -> torch.Tensor:
    """J(θ) = −1/B Σ_i Q_φ(s_i, μ_θ(s_i)); its gradient is the deterministic policy gradient
    ∇_θ J = −1/B Σ_i ∇_a Q_φ(s_i, a)|_{a=μ_θ(s_i)} ∇_θ μ_θ(s_i). obs: (B, obs_dim) -> a 0-d loss."""
    return -critic(obs, actor(obs)).mean()


@torch.no_grad()
def soft_update(target: torch.nn.Module | list[torch.Tensor], online: torch.nn.Module | list[torch.Tensor],
                tau: float) -> None:
    """Polyak averaging θ' ← τ θ + (1 − τ) θ' over all parameters (τ weights the online network).

    ``target`` and ``online`` are modules or matching lists of parameters (the agent passes the
    actor's and critic's together). One fused ``lerp`` over the lists: θ' + τ (θ − θ') = τ θ + (1 − τ) θ'.
    """
    if isinstance(target, torch.nn.Module):
        target = list(target.parameters())
    if isinstance(online, torch.nn.Module):
        online = list(online.parameters())
    torch._foreach_lerp_(target, online, tau)
