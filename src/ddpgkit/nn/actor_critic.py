"""DDPG's two networks, both the chapter's MLP: the actor μ(s) and the critic Q(s, a).

    μ(s) = scale · tanh(f_θ(s)) + bias,   scale = (high − low) / 2,   bias = (high + low) / 2
    Q(s, a) = f_φ([s, a])   (one linear output: Q is (B, 1) everywhere), or, as in Lillicrap et al. (2015),
    Q(s, a) = f_φ([g_φ(s), a]) with the action entering at a later hidden layer (``action_layer``)

:func:`scale_action` is the one place the actor's output is mapped to the action bounds; the
module, the agent's acting path and the fast update all call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .mlp import MLP


def scale_action(tanh_out: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """μ(s) from the actor MLP's tanh output: ``scale · tanh_out + bias``, per action dimension.

    tanh_out: (B, act_dim) in [-1, 1]; scale, bias: (act_dim,) -> (B, act_dim) in [low, high].
    """
    return tanh_out * scale + bias


class Actor(nn.Module):
    """Deterministic policy μ(s): an MLP with tanh output, scaled to the action bounds.

    ``scale`` and ``bias`` are registered buffers (``action_scale``, ``action_bias``), so they move
    with the module and are saved with it.
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float] | torch.Tensor,
        action_high: Sequence[float] | torch.Tensor,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        final_layer_init: float | None = 3e-3,
    ) -> None:
        super().__init__()
        low = torch.as_tensor(action_low, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(action_high, dtype=torch.float32).reshape(-1)
        if low.shape != high.shape or not torch.all(torch.isfinite(low) & torch.isfinite(high)):
            raise ValueError("action bounds must be finite and of equal shape")
        if not torch.all(high > low):
            raise ValueError("action bounds need high > low in every dimension")
        self.net = MLP(obs_dim, low.numel(), hidden, activation, "tanh", final_layer_init)
        self.register_buffer("action_scale", (high - low) / 2)  # (act_dim,)
        self.register_buffer("action_bias", (high + low) / 2)  # (act_dim,)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """μ(s): observations (B, obs_dim) -> actions (B, act_dim) within the action bounds."""
        # obs: (B, obs_dim) -> action: (B, act_dim), inside [low, high]
        return scale_action(self.net(obs), self.action_scale, self.action_bias)


class Critic(nn.Module):
    """Action-value function Q(s, a) with one linear output, shape (B, 1).

    ``action_layer=0`` (the default): an MLP on concat(s, a). ``action_layer=k > 0``: the observation
    alone passes the first k hidden layers (``obs_net``, each with the activation), and the action is
    concatenated to their output before hidden layer k (``net``); the paper's critic is k = 1 ("actions
    were not included until the 2nd hidden layer of Q").
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        final_layer_init: float | None = 3e-3,
        action_layer: int = 0,
    ) -> None:
        super().__init__()
        hidden = tuple(hidden)
        if not 0 <= action_layer < max(len(hidden), 1):
            raise ValueError(f"action_layer must be in [0, {max(len(hidden) - 1, 0)}] for hidden {hidden}, "
                             f"got {action_layer}")
        self.action_layer = action_layer
        if action_layer == 0:
            self.obs_net = None
            self.net = MLP(obs_dim + action_dim, 1, hidden, activation, None, final_layer_init)
        else:
            k = action_layer
            self.obs_net = MLP(obs_dim, hidden[k - 1], hidden[:k - 1], activation, activation)
            self.net = MLP(hidden[k - 1] + action_dim, 1, hidden[k:], activation, None, final_layer_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(s, a): observations (B, obs_dim) and actions (B, act_dim) -> values (B, 1)."""
        # obs: (B, obs_dim), action: (B, act_dim) -> q: (B, 1)
        features = obs if self.obs_net is None else self.obs_net(obs)  # (B, obs_dim) or (B, hidden[k-1])
        return self.net(torch.cat([features, action], dim=-1))
