"""The fast path: ∇L(φ) and ∇J(θ) of :mod:`ddpgkit.algo.ddpg`'s losses with the backward pass written out.

Same equations, same kernels as autograd on :func:`~ddpgkit.algo.ddpg.critic_loss` and
:func:`~ddpgkit.algo.ddpg.actor_loss` — in fp32 the gradients are identical bit for bit (tested) —
without building and walking an autograd graph twice per update. Both functions are side-effect
free, so ``compile=True`` can compile them (on CUDA, replayed as CUDA graphs). ``dtype`` (bfloat16)
runs the hidden-to-hidden products in that precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.buffer import Batch
from ..nn.actor_critic import scale_action
from ..nn.backward import Weights, backward, forward_with_cache, layer_weights
from ..nn.mlp import MLP
from .ddpg import td_target


def critic_gradients(critic: MLP, critic_target: MLP, actor_target: MLP, batch: Batch, gamma: float,
                     action_scale: torch.Tensor, action_bias: torch.Tensor, dtype: torch.dtype | None = None
                     ) -> tuple[Weights, torch.Tensor, torch.Tensor]:
    """∇_φ L of :func:`~ddpgkit.algo.ddpg.critic_loss`:

        y = r + γ (1 − d) Q_φ'(s', μ_θ'(s')),   L(φ) = 1/B Σ_i (Q_φ(s_i, a_i) − y_i)²,   ∂L/∂Q = 2 (Q − y) / B

    Takes the MLPs inside the Critic/Actor modules and μ's action scale and bias (act_dim,).
    Returns ([(∂L/∂W_i, ∂L/∂b_i)], L, mean Q(s, a)); modifies nothing.
    """
    next_tanh, _ = forward_with_cache(actor_target, batch.next_obs, layer_weights(actor_target, dtype))
    next_action = scale_action(next_tanh, action_scale, action_bias)  # (B, act_dim) μ'(s')
    next_q, _ = forward_with_cache(critic_target, torch.cat([batch.next_obs, next_action], dim=-1),
                                   layer_weights(critic_target, dtype))  # (B, 1)
    y = td_target(batch.reward, batch.terminated, next_q, gamma)  # (B, 1)
    weights = layer_weights(critic, dtype)
    q, cache = forward_with_cache(critic, torch.cat([batch.obs, batch.action], dim=-1), weights)  # (B, 1)
    loss = F.mse_loss(q, y)
    grads, _ = backward(critic, cache, (q - y) * (2.0 / q.numel()), weights=weights)
    return grads, loss, q.mean()


def actor_gradients(actor: MLP, critic: MLP, obs: torch.Tensor, action_scale: torch.Tensor, action_bias: torch.Tensor,
                    dtype: torch.dtype | None = None) -> tuple[Weights, torch.Tensor]:
    """∇_θ J of :func:`~ddpgkit.algo.ddpg.actor_loss`:

        J(θ) = −1/B Σ_i Q_φ(s_i, μ_θ(s_i)),   ∂J/∂Q = −1/B,
        back through the critic to ∂J/∂a only (its weights get no gradient), ∂J/∂(tanh output) = ∂J/∂a · scale,
        then through μ's MLP.

    obs: (B, obs_dim). Returns ([(∂J/∂W_i, ∂J/∂b_i)] of the actor's MLP, J); modifies nothing.
    """
    actor_weights, critic_weights = layer_weights(actor, dtype), layer_weights(critic, dtype)
    tanh_out, actor_cache = forward_with_cache(actor, obs, actor_weights)  # (B, act_dim)
    action = scale_action(tanh_out, action_scale, action_bias)  # (B, act_dim) μ(s)
    q_pi, critic_cache = forward_with_cache(critic, torch.cat([obs, action], dim=-1), critic_weights)  # (B, 1)
    loss = -q_pi.mean()
    _, grad_in = backward(critic, critic_cache, torch.full_like(q_pi, -1.0 / q_pi.numel()), weights=critic_weights,
                          input_grad=True, weight_grads=False)  # (B, obs_dim + act_dim)
    grads, _ = backward(actor, actor_cache, grad_in[:, obs.shape[1]:] * action_scale, weights=actor_weights)
    return grads, loss
