"""DDPG's update as the paper writes it (Lillicrap et al. 2015, "Continuous control with deep
reinforcement learning", Algorithm 1):

* :func:`td_target`   — y = r + γ (1 − d) Q_φ'(s', μ_θ'(s'))  (:func:`target_y`: the same from the target networks)
* :func:`critic_loss` — L(φ) = mean_B (Q_φ(s, a) − y)²
* :func:`actor_loss`  — L_μ(θ) = −J(θ) = −mean_B Q_φ(s, μ_θ(s)), the objective J(θ) = E_s[Q_φ(s, μ_θ(s))] that the
  paper maximises, negated to be minimised (its gradient is the deterministic policy gradient, negated)
* :func:`soft_update` — θ' ← τ θ + (1 − τ) θ'
* :func:`exploration_action` — a = clip(μ_θ(s) + N, low, high)

The DDPG family's later fixes, each an addition to these equations, off unless the config asks for it
(Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods", TD3; n-step returns:
:mod:`ddpgkit.data.nstep`):

* :func:`clipped_double_q` — y = r + γ (1 − d) min_{i=1,2} Q_φ'_i(s', ã)  (``n_critics = 2``)
* :func:`target_policy_noise`, :func:`smoothed_target_action` — ã = clip(μ_θ'(s') + ε, low, high),
  ε = clip(N(0, σ²), −c, c)  (``target_noise`` σ, ``target_noise_clip`` c)
* an n-step batch: y = R^(m) + γ^m (1 − d) Q_φ'(s_{t+m}, μ_θ'(s_{t+m}))  (``n_step``; :func:`td_target` with γ^m)
* the HER paper's action penalty (Andrychowicz et al. 2017): L_μ(θ) = −mean_B Q_φ(s, μ_θ(s)) + λ mean_{B,A} ū², with
  ū = (μ_θ(s) − bias) / scale = tanh(f_θ(s)) the action in [−1, 1]  (``action_l2`` λ; :func:`actor_loss`)

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
from ..nn.actor_critic import Actor, Critic, scale_action
from ..nn.backward import Weights


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor,
              gamma: float | torch.Tensor) -> torch.Tensor:
    """The TD target  y = r + γ (1 − terminated) Q'(s', μ'(s')).

    Only a true termination stops the bootstrap; a transition cut by a time limit (``truncated``)
    still bootstraps from Q'(s', μ'(s')). All arguments and the result are (B, 1). Of an n-step batch
    (:mod:`ddpgkit.data.nstep`) ``reward`` is the m-step return R^(m), ``next_q`` is at s_{t+m} and ``gamma``
    is γ^m per transition, (B, 1):  y = R^(m) + γ^m (1 − terminated) Q'(s_{t+m}, μ'(s_{t+m})).
    """
    return reward + gamma * (1.0 - terminated) * next_q


def clipped_double_q(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """TD3's clipped double-Q learning (Fujimoto et al. 2018, eq. 10): the target takes the smaller of two target
    critics, y = r + γ (1 − d) min_{i=1,2} Q_φ'_i(s', ã), so that one critic's overestimate is not learned from.
    q1, q2: (B, 1) -> (B, 1)."""
    return torch.minimum(q1, q2)


def target_policy_noise(z: torch.Tensor, sigma: float, clip: float, scale: torch.Tensor) -> torch.Tensor:
    """TD3's target policy smoothing noise (Fujimoto et al. 2018, eq. 15) in action units:
    ε = clip(σ z, −c, c) · scale, z ~ N(0, I) (B, act_dim), with σ and c fractions of the action scale
    (high − low) / 2 (act_dim,), as ``noise_scale`` is."""
    return torch.clamp(sigma * z, -clip, clip) * scale


def smoothed_target_action(next_action: torch.Tensor, noise: torch.Tensor, low: torch.Tensor,
                           high: torch.Tensor) -> torch.Tensor:
    """ã = clip(μ_θ'(s') + ε, low, high): the target action with smoothing noise ε (:func:`target_policy_noise`),
    kept inside the actions μ can take. next_action, noise: (B, act_dim); low, high: (act_dim,)."""
    return torch.clamp(next_action + noise, low, high)


#: Target policy smoothing of one batch, (ε (B, act_dim) in action units, low (act_dim,), high (act_dim,)).
Smoothing = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
#: A target critic as :func:`target_y` takes it, (s' (B, obs_dim), a' (B, act_dim)) -> Q' (B, 1).
QFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def target_y(batch: Batch, actor_target: Callable[[torch.Tensor], torch.Tensor], critic_target: QFunction,
             gamma: float, critic2_target: QFunction | None = None, smoothing: Smoothing | None = None
             ) -> torch.Tensor:
    """The TD target of a batch from the target networks: y = r + γ (1 − d) Q_φ'(s', μ_θ'(s')), (B, 1).

    ``actor_target`` maps s' (B, obs_dim) to μ_θ'(s') (B, act_dim) and ``critic_target`` (s', a') to Q_φ'
    (B, 1): the modules themselves, or the written-out forward passes of :mod:`ddpgkit.algo.gradients`
    (stacked: (N, B, ·)). Both gradient paths take y from here, the one place it is computed. The later fixes
    change it here and nowhere else: ``smoothing`` puts noise on μ_θ'(s') (:func:`smoothed_target_action`),
    ``critic2_target`` takes the minimum of two target critics (:func:`clipped_double_q`), and an n-step batch
    (``batch.discount`` = γ^m) discounts by γ^m. Call it without gradient.
    """
    next_action = actor_target(batch.next_obs)  # (B, act_dim) μ'(s')
    if smoothing is not None:
        noise, low, high = smoothing
        next_action = smoothed_target_action(next_action, noise, low, high)  # (B, act_dim) ã
    next_q = critic_target(batch.next_obs, next_action)  # (B, 1) Q'(s', μ'(s'))
    if critic2_target is not None:
        next_q = clipped_double_q(next_q, critic2_target(batch.next_obs, next_action))  # (B, 1)
    discount = gamma if batch.discount is None else batch.discount  # γ, or γ^m (B, 1) of an n-step batch
    return td_target(batch.reward, batch.terminated, next_q, discount)  # (B, 1)


def critic_loss(critic: Critic, critic_target: Critic, actor_target: Actor, batch: Batch, gamma: float,
                critic2: Critic | None = None, critic2_target: Critic | None = None,
                smoothing: Smoothing | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L(φ) = 1/B Σ_i (Q_φ(s_i, a_i) − y_i)²,  y_i = r_i + γ (1 − d_i) Q_φ'(s'_i, μ_θ'(s'_i)).

    The target y is computed without gradient (from the target networks, :func:`~ddpgkit.algo.ddpg.target_y`).
    Returns the loss, and for logging the detached Q(s, a) and the target y, both (B, 1).

    With a second critic (``critic2``, TD3's), both learn from the one clipped double-Q target:
    L(φ_1, φ_2) = Σ_{i=1,2} 1/B Σ_j (Q_φ_i(s_j, a_j) − y_j)², and Q(s, a) and y are both critics' rows, (2B, 1).
    """
    with torch.no_grad():
        y = target_y(batch, actor_target, critic_target, gamma, critic2_target, smoothing)  # (B, 1)
    q = critic(batch.obs, batch.action)  # (B, 1)
    loss = F.mse_loss(q, y)
    if critic2 is None:
        return loss, q.detach(), y
    q2 = critic2(batch.obs, batch.action)  # (B, 1)
    return loss + F.mse_loss(q2, y), torch.cat([q, q2], dim=-2).detach(), torch.cat([y, y], dim=-2)  # (2B, 1)


def actor_loss(actor: Actor, critic: Critic, obs: torch.Tensor, action_l2: float = 0.0) -> torch.Tensor:
    """The actor's loss L_μ(θ) = −J(θ) = −1/B Σ_i Q_φ(s_i, μ_θ(s_i)): the paper maximises J(θ) = E_s[Q_φ(s, μ_θ(s))],
    an optimiser minimises, so the loss is J's negative. Its gradient is the deterministic policy gradient negated,
    ∇_θ L_μ = −1/B Σ_i ∇_a Q_φ(s_i, a)|_{a=μ_θ(s_i)} ∇_θ μ_θ(s_i). obs: (B, obs_dim) -> a 0-d loss.

    With ``action_l2`` = λ > 0 (the HER paper's DDPG): L_μ(θ) = −1/B Σ_i Q_φ(s_i, μ_θ(s_i)) + λ/(B·A) Σ_{i,j} ū_ij²,
    ū = tanh(f_θ(s)) = (μ_θ(s) − bias) / scale (B, act_dim), the action in [−1, 1] (baselines' π / max_u)."""
    if action_l2 == 0.0:
        return -critic(obs, actor(obs)).mean()
    unit = actor.net(obs)  # (B, act_dim) ū = tanh(f(s))
    action = scale_action(unit, actor.action_scale, actor.action_bias)  # (B, act_dim) μ(s)
    return -critic(obs, action).mean() + action_l2 * unit.square().mean()


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
                              dtype: torch.dtype | None = None, critic2: Critic | None = None,
                              critic2_target: Critic | None = None, smoothing: Smoothing | None = None
                              ) -> tuple[Weights, torch.Tensor, torch.Tensor, torch.Tensor]:
    """∇_φ L(φ) of :func:`critic_loss` by autograd: ([(∂L/∂W_i, ∂L/∂b_i)] in ``critic.parameters()`` order, L,
    Q(s, a) (B, 1), the TD error δ = Q − y (B, 1)); modifies nothing. ``dtype`` (bfloat16): the forward
    passes under autocast in that dtype. With ``critic2``: the second critic's gradients follow the first's,
    and Q and δ are both critics' rows, (2B, 1)."""
    params = list(critic.parameters()) + (list(critic2.parameters()) if critic2 is not None else [])
    with torch.enable_grad(), _autocast(batch.obs.device, dtype):
        loss, q, y = critic_loss(critic, critic_target, actor_target, batch, gamma, critic2, critic2_target,
                                 smoothing)
    grads = torch.autograd.grad(loss, params)
    return _pairs(grads), loss.detach(), q, q - y


def autograd_actor_gradients(actor: Actor, critic: Critic, obs: torch.Tensor, dtype: torch.dtype | None = None,
                             want_tanh: bool = True, action_l2: float = 0.0
                             ) -> tuple[Weights, torch.Tensor, torch.Tensor | None]:
    """∇_θ L_μ(θ) of :func:`actor_loss` by autograd (the critic's weights get no gradient): ([(∂L_μ/∂W_i, ∂L_μ/∂b_i)]
    of the actor, L_μ, and with ``want_tanh`` μ's tanh output (B, act_dim) before the action scale, for the
    health signals, computed again in fp32); modifies nothing. obs: (B, obs_dim); ``dtype`` as in
    :func:`autograd_critic_gradients`."""
    with torch.enable_grad(), _autocast(obs.device, dtype):
        loss = actor_loss(actor, critic, obs, action_l2)
    grads = torch.autograd.grad(loss, list(actor.parameters()))
    tanh_out = None
    if want_tanh:
        with torch.no_grad():
            tanh_out = actor.net(obs)  # (B, act_dim)
    return _pairs(grads), loss.detach(), tanh_out
