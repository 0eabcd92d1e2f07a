"""DDPG's update as the paper writes it (Lillicrap et al. 2015, "Continuous control with deep
reinforcement learning", Algorithm 1):

* :func:`td_target`   — y = r + γ (1 − d) Q_φ'(s', μ_θ'(s'))  (:func:`target_y`: the same from the target networks)
* :func:`critic_loss` — L(φ) = mean_B (Q_φ(s, a) − y)²
* :func:`actor_loss`  — J(θ) = −mean_B Q_φ(s, μ_θ(s))  (its gradient is the deterministic policy gradient)
* :func:`soft_update` — θ' ← τ θ + (1 − τ) θ'
* :func:`exploration_action` — a = clip(μ_θ(s) + N, low, high)

Plain functions of networks and a batch. :func:`autograd_critic_gradients` and
:func:`autograd_actor_gradients` differentiate the two losses by autograd (``backward = "autograd"``);
the default training path computes the same gradients with the backward pass written out
(:mod:`ddpgkit.algo.gradients`), and tests check that both train bit-identical networks. Both take the TD
target from :func:`target_y`, the one place it is computed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..data.buffer import Batch
from ..nn.actor_critic import Actor, Critic
from ..nn.backward import Weights


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """The TD target  y = r + γ (1 − terminated) Q'(s', μ'(s')).

    Only a true termination stops the bootstrap; a transition cut by a time limit (``truncated``)
    still bootstraps from Q'(s', μ'(s')). All arguments and the result are (B, 1).
    """
    return reward + gamma * (1.0 - terminated) * next_q


def target_y(batch: Batch, actor_target: Callable[[torch.Tensor], torch.Tensor],
             critic_target: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], gamma: float) -> torch.Tensor:
    """The TD target of a batch from the target networks: y = r + γ (1 − d) Q_φ'(s', μ_θ'(s')), (B, 1).

    ``actor_target`` maps s' (B, obs_dim) to μ_θ'(s') (B, act_dim) and ``critic_target`` (s', a') to Q_φ'
    (B, 1): the modules themselves, or the written-out forward passes of :mod:`ddpgkit.algo.gradients`
    (stacked: (N, B, ·)). Both gradient paths take y from here, so what changes the target (a minimum over
    twin critics, smoothing noise on μ_θ'(s'), an n-step discount) changes it here. Call it without gradient.
    """
    next_action = actor_target(batch.next_obs)  # (B, act_dim) μ'(s')
    next_q = critic_target(batch.next_obs, next_action)  # (B, 1) Q'(s', μ'(s'))
    return td_target(batch.reward, batch.terminated, next_q, gamma)  # (B, 1)


def critic_loss(critic: Critic, critic_target: Critic, actor_target: Actor, batch: Batch,
                gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L(φ) = 1/B Σ_i (Q_φ(s_i, a_i) − y_i)²,  y_i = r_i + γ (1 − d_i) Q_φ'(s'_i, μ_θ'(s'_i)).

    The target y is computed without gradient (from the target networks, :func:`~ddpgkit.algo.ddpg.target_y`).
    Returns the loss, and for logging the detached Q(s, a) and the target y, both (B, 1).
    """
    with torch.no_grad():
        y = target_y(batch, actor_target, critic_target, gamma)  # (B, 1)
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


def exploration_action(mu: torch.Tensor, noise: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The action DDPG explores with: a = clip(μ(s) + N, low, high). mu: (k, act_dim); noise: (act_dim,) or
    (k, act_dim), one draw per agent; low, high: (act_dim,)."""
    return torch.clamp(mu + noise, low, high)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _pairs(grads: tuple[torch.Tensor, ...]) -> Weights:
    return list(zip(grads[::2], grads[1::2]))


def autograd_critic_gradients(critic: Critic, critic_target: Critic, actor_target: Actor, batch: Batch, gamma: float,
                              dtype: torch.dtype | None = None
                              ) -> tuple[Weights, torch.Tensor, torch.Tensor, torch.Tensor]:
    """∇_φ L(φ) of :func:`critic_loss` by autograd: ([(∂L/∂W_i, ∂L/∂b_i)] in ``critic.parameters()`` order, L,
    Q(s, a) (B, 1), the TD error δ = Q − y (B, 1)); modifies nothing. ``dtype`` (bfloat16): the forward
    passes under autocast in that dtype."""
    with torch.enable_grad(), _autocast(batch.obs.device, dtype):
        loss, q, y = critic_loss(critic, critic_target, actor_target, batch, gamma)
    grads = torch.autograd.grad(loss, list(critic.parameters()))
    return _pairs(grads), loss.detach(), q, q - y


def autograd_actor_gradients(actor: Actor, critic: Critic, obs: torch.Tensor, dtype: torch.dtype | None = None,
                             want_tanh: bool = True) -> tuple[Weights, torch.Tensor, torch.Tensor | None]:
    """∇_θ J(θ) of :func:`actor_loss` by autograd (the critic's weights get no gradient): ([(∂J/∂W_i, ∂J/∂b_i)]
    of the actor, J, and with ``want_tanh`` μ's tanh output (B, act_dim) before the action scale, for the
    health signals, computed again in fp32); modifies nothing. obs: (B, obs_dim); ``dtype`` as in
    :func:`autograd_critic_gradients`."""
    with torch.enable_grad(), _autocast(obs.device, dtype):
        loss = actor_loss(actor, critic, obs)
    grads = torch.autograd.grad(loss, list(actor.parameters()))
    tanh_out = None
    if want_tanh:
        with torch.no_grad():
            tanh_out = actor.net(obs)  # (B, act_dim)
    return _pairs(grads), loss.detach(), tanh_out
