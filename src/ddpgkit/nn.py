"""Neural networks as function approximators (chapter 6, section 6.1).

One layer computes ``y = g(W x + b)`` with an element-wise activation ``g``; stacking layers gives a
multilayer network. :class:`MLP` is that stack, and DDPG's :class:`Actor` μ(s) and :class:`Critic`
Q(s, a) are built from it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


# The same functions without a module call, for MLP.forward (identical results, less overhead).
_FUNCTIONAL = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
    "silu": F.silu,
    "identity": None,
}


def _activation_backward(name: str, grad: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """dL/dh from dL/dg(h), with the same ATen kernels autograd uses (so the numbers are identical)."""
    aten = torch.ops.aten
    if name == "relu":
        return aten.threshold_backward(grad, post, 0)
    if name == "tanh":
        return aten.tanh_backward(grad, post)
    if name == "elu":
        return aten.elu_backward(grad, 1.0, 1, 1, False, pre)
    if name == "leaky_relu":
        return aten.leaky_relu_backward(grad, pre, 0.01, False)
    if name == "silu":
        return aten.silu_backward(grad, pre)
    return grad  # identity


def activation(name: str) -> nn.Module:
    """Return a new activation module by name; unknown names raise a ValueError listing valid ones."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        valid = ", ".join(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; valid: {valid}") from None


class MLP(nn.Sequential):
    """A multilayer perceptron: ``h_{i+1} = g(W_i h_i + b_i)``, the last layer without ``g``.

    Layers are named as in the chapter (``linear0, relu0, linear1, relu1, linear2``), so
    ``print(MLP(1, 1))`` shows the chapter's ``Network``.

    Args:
        in_features: size of the input x.
        out_features: size of the output y.
        hidden: sizes of the hidden layers, input side first.
        activation: name of g between layers (see :data:`ACTIVATIONS`).
        output_activation: name of an activation after the last layer, or None for a linear output.
        final_layer_init: if given, the last layer's weights and biases are drawn from
            uniform(-final_layer_init, +final_layer_init), as DDPG does (3e-3); otherwise PyTorch's
            default initialisation is kept.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        output_activation: str | None = None,
        final_layer_init: float | None = None,
    ) -> None:
        sizes = [in_features, *hidden, out_features]
        if any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"layer sizes must be positive integers, got {sizes}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers[f"linear{i}"] = nn.Linear(n_in, n_out)
            if i < len(sizes) - 2:
                layers[f"{activation}{i}"] = _activation(activation)
        if output_activation is not None:
            layers[f"{output_activation}_out"] = _activation(output_activation)
        super().__init__(layers)
        self.in_features = in_features
        self.out_features = out_features
        self._g = _FUNCTIONAL[activation]
        self._g_out = _FUNCTIONAL[output_activation] if output_activation is not None else None
        self._g_name, self._g_out_name = activation, output_activation
        if final_layer_init is not None:
            if not final_layer_init > 0:
                raise ValueError(f"final_layer_init must be > 0, got {final_layer_init}")
            last = self.linears[-1]
            nn.init.uniform_(last.weight, -final_layer_init, final_layer_init)
            nn.init.uniform_(last.bias, -final_layer_init, final_layer_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_features) -> (B, out_features). The same computation as running the layers in
        order, written with functional calls: a network of a few small layers is dominated by
        per-call overhead, not arithmetic."""
        linears, g = self.linears, self._g
        for lin in linears[:-1]:
            x = F.linear(x, lin.weight, lin.bias)  # W x + b
            if g is not None:
                x = g(x)
        last = linears[-1]
        x = F.linear(x, last.weight, last.bias)
        return x if self._g_out is None else self._g_out(x)

    def forward_with_cache(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """The forward pass without autograd, keeping what :meth:`backward_from` needs: each layer's
        input, pre-activation h and activation g(h). Call it under ``torch.no_grad()``."""
        linears, g = self.linears, self._g
        cache = []
        for lin in linears[:-1]:
            h = F.linear(x, lin.weight, lin.bias)  # W x + b
            a = h if g is None else g(h)
            cache.append((x, h, a))
            x = a
        last = linears[-1]
        h = F.linear(x, last.weight, last.bias)
        y = h if self._g_out is None else self._g_out(h)
        cache.append((x, h, y))
        return y, cache

    def backward_from(self, cache: list[tuple[torch.Tensor, ...]], grad_y: torch.Tensor, *,
                      input_grad: bool = False, weight_grads: bool = True) -> torch.Tensor | None:
        """Back-propagate dL/dy by hand: for each layer, from the output side,

            dL/dW = dL/dhᵀ x,   dL/db = Σ_batch dL/dh,   dL/dx = dL/dh W,   dL/dh_prev = dL/dx ⊙ g'(h_prev)

        storing dL/dW and dL/db in the parameters' ``.grad`` (if ``weight_grads``) and returning
        dL/dx of the network's input (if ``input_grad``). The same kernels as autograd, without its
        graph: the gradients are identical, and a small network's update much cheaper.
        """
        linears = self.linears
        x, h, y = cache[-1]
        grad = grad_y if self._g_out_name is None else _activation_backward(self._g_out_name, grad_y, h, y)
        for i in range(len(linears) - 1, -1, -1):
            lin, x = linears[i], cache[i][0]
            if weight_grads:
                lin.weight.grad = grad.t().mm(x)  # (out, in)
                lin.bias.grad = grad.sum(0)  # (out,)
            if i == 0 and not input_grad:
                return None
            grad = grad.mm(lin.weight)  # dL/dx: (B, in)
            if i > 0:
                _, h_prev, a_prev = cache[i - 1]
                grad = _activation_backward(self._g_name, grad, h_prev, a_prev)
        return grad

    @property
    def linears(self) -> list[nn.Linear]:
        """The affine layers (W_i, b_i), input side first."""
        cached = self.__dict__.get("_linears")
        if cached is None:
            cached = self.__dict__["_linears"] = [m for m in self if isinstance(m, nn.Linear)]
        return cached


_activation = activation  # MLP.__init__ shadows the name with its argument


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters in ``module`` (only those with requires_grad by default)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class Actor(nn.Module):
    """Deterministic policy μ(s): an MLP with tanh output, scaled to the action bounds.

    ``μ(s) = scale * tanh(MLP(s)) + bias`` with ``scale = (high - low) / 2`` and
    ``bias = (high + low) / 2`` per action dimension, held as registered buffers so they move with
    the module and are saved with it.
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
        # obs: (B, obs_dim) -> action: (B, act_dim), inside [low, high]
        return self.net(obs) * self.action_scale + self.action_bias


class Critic(nn.Module):
    """Action-value function Q(s, a): an MLP on concat(s, a) with one linear output, shape (B, 1)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str = "relu",
        final_layer_init: float | None = 3e-3,
    ) -> None:
        super().__init__()
        self.net = MLP(obs_dim + action_dim, 1, hidden, activation, None, final_layer_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        # obs: (B, obs_dim), action: (B, act_dim) -> q: (B, 1)
        return self.net(torch.cat([obs, action], dim=-1))
