"""The fast path: ∇L(φ) and ∇L_μ(θ) of :mod:`ddpgkit.algo.ddpg`'s losses with the backward pass written out.

Same equations, same kernels as autograd on :func:`~ddpgkit.algo.ddpg.critic_loss` and
:func:`~ddpgkit.algo.ddpg.actor_loss` — in fp32 the gradients are identical bit for bit (tested) —
without building and walking an autograd graph twice per update. Both functions are side-effect
free, so ``compile=True`` can compile them (on CUDA, replayed as CUDA graphs). ``dtype`` (bfloat16)
runs the hidden-to-hidden products in that precision.

A critic is given as its two MLPs, :data:`CriticNets` ``(obs_net, net)``: ``obs_net`` is None when the
action enters at the input (Q = net([s, a])), else the layers the observation passes alone before the
action joins (Q = net([obs_net(s), a]), the paper's critic; see :class:`~ddpgkit.nn.actor_critic.Critic`).

Stacked networks (:mod:`ddpgkit.nn.stacked`: N agents' networks with a leading dimension) take a
stacked batch, every field (N, B, ·), and give per-agent gradients (N, ...) and per-agent losses and
means (N,): the same equations, each mean over an agent's own B samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.buffer import Batch
from ..nn.actor_critic import Critic, scale_action
from ..nn.backward import Cache, Weights, backward, forward_with_cache, layer_weights
from ..nn.mlp import MLP
from .ddpg import Smoothing, target_y

#: A critic as the functions here take it, its MLPs ``(obs_net, net)`` (:func:`critic_nets`).
CriticNets = tuple[MLP | None, MLP]  # (obs_net, net) of a Critic module
_CriticCache = tuple[Cache | None, Cache, int]  # the caches of both MLPs, and the width of net's non-action input


def critic_nets(critic: Critic) -> CriticNets:
    """The MLPs of a :class:`~ddpgkit.nn.actor_critic.Critic`, as the functions here take them."""
    return critic.obs_net, critic.net


def _critic_forward(critic: CriticNets, obs: torch.Tensor, action: torch.Tensor, dtype: torch.dtype | None
                    ) -> tuple[torch.Tensor, _CriticCache]:
    """Q(s, a) (B, 1) of the critic's MLPs, with what :func:`_critic_backward` needs."""
    obs_net, net = critic
    obs_cache = None
    if obs_net is not None:
        obs, obs_cache = forward_with_cache(obs_net, obs, layer_weights(obs_net, dtype))  # (B, hidden[k-1])
    q, cache = forward_with_cache(net, torch.cat([obs, action], dim=-1), layer_weights(net, dtype))  # (B, 1)
    return q, (obs_cache, cache, obs.shape[-1])


def _critic_backward(critic: CriticNets, cache: _CriticCache, grad_q: torch.Tensor, dtype: torch.dtype | None,
                     weight_grads: bool) -> tuple[Weights | None, torch.Tensor | None]:
    """From ∂/∂Q (B, 1): with ``weight_grads``, the gradients of every critic layer (obs_net's first, as
    ``Critic.parameters()`` orders them) and None; without, None and ∂/∂a (B, act_dim) — the actor step's
    only need. Only the input features that are needed are back-propagated to."""
    obs_net, net = critic
    obs_cache, net_cache, width = cache
    if not weight_grads:  # ∂Q/∂a: the action's columns of net's input
        _, grad_a = backward(net, net_cache, grad_q, weights=layer_weights(net, dtype),
                             input_grad=slice(width, None), weight_grads=False)  # (B, act_dim)
        return None, grad_a
    if obs_net is None:  # Q = net([s, a]): no input gradient needed
        grads, _ = backward(net, net_cache, grad_q, weights=layer_weights(net, dtype))
        return grads, None
    grads, grad_obs = backward(net, net_cache, grad_q, weights=layer_weights(net, dtype),
                               input_grad=slice(0, width))  # (B, width): on through the observation's own layers
    obs_grads, _ = backward(obs_net, obs_cache, grad_obs, weights=layer_weights(obs_net, dtype))
    assert grads is not None and obs_grads is not None
    return obs_grads + grads, None


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean over the batch of a (B, 1) tensor (0-d), or per agent of a stacked (N, B, 1) one: (N,)."""
    return x.mean() if x.ndim == 2 else x.mean((-2, -1))


def critic_gradients(critic: CriticNets, critic_target: CriticNets, actor_target: MLP, batch: Batch, gamma: float,
                     action_scale: torch.Tensor, action_bias: torch.Tensor, dtype: torch.dtype | None = None,
                     critic2: CriticNets | None = None, critic2_target: CriticNets | None = None,
                     smoothing: Smoothing | None = None) -> tuple[Weights, torch.Tensor, torch.Tensor, torch.Tensor]:
    """∇_φ L of :func:`~ddpgkit.algo.ddpg.critic_loss`:

        y = r + γ (1 − d) Q_φ'(s', μ_θ'(s'))  (:func:`~ddpgkit.algo.ddpg.target_y`, the written-out forward passes)
        L(φ) = 1/B Σ_i (Q_φ(s_i, a_i) − y_i)²,   ∂L/∂Q = 2 (Q − y) / B

    Takes the MLPs inside the Critic/Actor modules (:func:`critic_nets`) and μ's action scale and bias
    (act_dim,). Returns ([(∂L/∂W_i, ∂L/∂b_i)] in ``Critic.parameters()`` order, L, Q(s, a) (B, 1), the
    TD error δ = Q − y (B, 1)); modifies nothing. With ``critic2`` (TD3's twin, its target ``critic2_target``),
    y is the clipped double-Q target, L the sum of both critics' losses, the second critic's gradients follow
    the first's, and Q and δ are both critics' rows, (2B, 1); ``smoothing``: target policy smoothing
    (:func:`~ddpgkit.algo.ddpg.smoothed_target_action`).
    """
    def mu_target(s: torch.Tensor) -> torch.Tensor:  # μ'(s): (B, act_dim)
        return scale_action(forward_with_cache(actor_target, s, layer_weights(actor_target, dtype))[0], action_scale,
                            action_bias)

    def q_target(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # Q'(s, a): (B, 1)
        return _critic_forward(critic_target, s, a, dtype)[0]

    def q2_target(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # Q'_2(s, a): (B, 1)
        assert critic2_target is not None
        return _critic_forward(critic2_target, s, a, dtype)[0]

    y = target_y(batch, mu_target, q_target, gamma, q2_target if critic2_target is not None else None,
                 smoothing)  # (B, 1)
    grads, loss, q, delta = _critic_step(critic, batch, y, dtype)
    if critic2 is None:
        return grads, loss, q, delta
    grads2, loss2, q2, delta2 = _critic_step(critic2, batch, y, dtype)
    return grads + grads2, loss + loss2, torch.cat([q, q2], dim=-2), torch.cat([delta, delta2], dim=-2)  # (2B, 1)


def _critic_step(critic: CriticNets, batch: Batch, y: torch.Tensor, dtype: torch.dtype | None
                 ) -> tuple[Weights, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One critic's ∇_φ L against the target y (B, 1): (gradients, L, Q(s, a) (B, 1), δ = Q − y (B, 1))."""
    q, cache = _critic_forward(critic, batch.obs, batch.action, dtype)  # (B, 1)
    delta = q - y  # (B, 1) the TD error
    loss = F.mse_loss(q, y) if q.ndim == 2 else batch_mean(delta.square())
    grads, _ = _critic_backward(critic, cache, delta * (2.0 / q.shape[-2]), dtype, weight_grads=True)
    assert grads is not None
    return grads, loss, q, delta


def actor_gradients(actor: MLP, critic: CriticNets, obs: torch.Tensor, action_scale: torch.Tensor,
                    action_bias: torch.Tensor, dtype: torch.dtype | None = None, action_l2: float = 0.0
                    ) -> tuple[Weights, torch.Tensor, torch.Tensor]:
    """∇_θ L_μ of :func:`~ddpgkit.algo.ddpg.actor_loss`:

        L_μ(θ) = −J(θ) = −1/B Σ_i Q_φ(s_i, μ_θ(s_i)),   ∂L_μ/∂Q = −1/B,
        back through the critic to ∂L_μ/∂a only (its weights get no gradient), ∂L_μ/∂(tanh output) = ∂L_μ/∂a · scale,
        then through μ's MLP.

    With ``action_l2`` = λ > 0, L_μ gains λ/(B·A) Σ ū² (ū the tanh output, (B, A)) and ∂L_μ/∂ū gains 2λ ū / (B·A).

    obs: (B, obs_dim). Returns ([(∂L_μ/∂W_i, ∂L_μ/∂b_i)] of the actor's MLP, L_μ, μ's tanh output (B, act_dim)
    before the action scale); modifies nothing.
    """
    actor_weights = layer_weights(actor, dtype)
    tanh_out, actor_cache = forward_with_cache(actor, obs, actor_weights)  # (B, act_dim)
    action = scale_action(tanh_out, action_scale, action_bias)  # (B, act_dim) μ(s)
    q_pi, critic_cache = _critic_forward(critic, obs, action, dtype)  # (B, 1)
    loss = -batch_mean(q_pi)
    _, grad_a = _critic_backward(critic, critic_cache, torch.full_like(q_pi, -1.0 / q_pi.shape[-2]), dtype,
                                 weight_grads=False)  # (B, act_dim)
    grad_unit = grad_a * action_scale  # (B, act_dim) ∂L_μ/∂ū
    if action_l2 != 0.0:  # the action penalty λ mean(ū²), per agent over its B·A entries
        loss = loss + action_l2 * tanh_out.square().mean((-2, -1))
        grad_unit = grad_unit + tanh_out * (2.0 * action_l2 / (tanh_out.shape[-2] * tanh_out.shape[-1]))
    grads, _ = backward(actor, actor_cache, grad_unit, weights=actor_weights)
    return grads, loss, tanh_out
