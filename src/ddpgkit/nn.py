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


def _backward_fn(name: str):
    """dL/dh from (dL/dg(h), h, g(h)) for activation ``name``, with the same ATen kernels autograd
    uses, so the numbers are identical."""
    aten = torch.ops.aten
    return {
        "relu": lambda grad, pre, post: aten.threshold_backward(grad, post, 0),
        "tanh": lambda grad, pre, post: aten.tanh_backward(grad, post),
        "elu": lambda grad, pre, post: aten.elu_backward(grad, 1.0, 1, 1, False, pre),
        "leaky_relu": lambda grad, pre, post: aten.leaky_relu_backward(grad, pre, 0.01, False),
        "silu": lambda grad, pre, post: aten.silu_backward(grad, pre),
        "identity": lambda grad, pre, post: grad,
    }[name]


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
        self._g_backward = _backward_fn(activation)
        self._g_out_backward = _backward_fn(output_activation) if output_activation is not None else None
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

    def layer_weights(self, dtype: torch.dtype | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(W_i, b_i)`` of every affine layer, input side first.

        With ``dtype`` (bfloat16), the hidden-to-hidden layers are returned cast to it, once per call;
        the first and last layers, with only a handful of inputs or outputs, stay in the parameters'
        dtype: their products are too small to gain from bf16 and on CPUs its small-matrix kernels
        are slower than fp32's (benchmarks/README.md).
        """
        pairs = [(m._parameters["weight"], m._parameters["bias"]) for m in self.linears]  # no Module.__getattr__
        if dtype is None or dtype == pairs[0][0].dtype:
            return pairs
        last = len(pairs) - 1
        return [(w.to(dtype), b.to(dtype)) if 0 < i < last else (w, b) for i, (w, b) in enumerate(pairs)]

    def forward_with_cache(self, x: torch.Tensor, weights: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                           ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """The forward pass without autograd, keeping what :meth:`backward_from` needs: each layer's
        input, pre-activation h and activation g(h). Call it under ``torch.no_grad()``.

        ``weights`` (from :meth:`layer_weights`) replaces the parameters, e.g. by bfloat16 copies;
        each layer's input is cast to its weights' dtype.
        """
        weights = weights if weights is not None else self.layer_weights()
        g = self._g
        cache = []
        for w, b in weights[:-1]:
            if x.dtype != w.dtype:
                x = x.to(w.dtype)
            h = F.linear(x, w, b)  # W x + b
            a = h if g is None else g(h)
            cache.append((x, h, a))
            x = a
        w, b = weights[-1]
        if x.dtype != w.dtype:
            x = x.to(w.dtype)
        h = F.linear(x, w, b)
        y = h if self._g_out is None else self._g_out(h)
        cache.append((x, h, y))
        return y, cache

    def backward(self, cache: list[tuple[torch.Tensor, ...]], grad_y: torch.Tensor, *, input_grad: bool = False,
                 weight_grads: bool = True, weights: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                 ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]] | None, torch.Tensor | None]:
        """Back-propagate dL/dy by hand: for each layer, from the output side,

            dL/dW = dL/dhᵀ x,   dL/db = Σ_batch dL/dh,   dL/dx = dL/dh W,   dL/dh_prev = dL/dx ⊙ g'(h_prev)

        Returns ``(grads, dx)``: ``[(dL/dW_i, dL/db_i)]`` input side first, in the parameters' dtype
        (None unless ``weight_grads``), and dL/dx of the network's input (None unless ``input_grad``).
        Nothing is modified (so the update can be compiled as a function). The same kernels as
        autograd, without its graph: the gradients are identical. ``weights`` must be what the
        forward pass used; with reduced-precision copies the products run in that precision.
        """
        params = self.layer_weights()
        weights = weights if weights is not None else params
        x, h, y = cache[-1]
        if grad_y.dtype != h.dtype:
            grad_y = grad_y.to(h.dtype)
        grad = grad_y if self._g_out_backward is None else self._g_out_backward(grad_y, h, y)
        g_backward = self._g_backward
        grads: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i in range(len(params) - 1, -1, -1):
            x = cache[i][0]
            if grad.dtype != x.dtype:
                grad = grad.to(x.dtype)
            if weight_grads:
                w, b = params[i]
                dw = grad.t().mm(x)  # (out, in)
                if dw.dtype == w.dtype:
                    grads.append((dw, grad.sum(0)))  # (out, in), (out,)
                else:
                    grads.append((dw.to(w.dtype), grad.sum(0, dtype=b.dtype)))
            if i == 0 and not input_grad:
                grad = None
                break
            grad = grad.mm(weights[i][0])  # dL/dx: (B, in)
            if i > 0:
                _, h_prev, a_prev = cache[i - 1]
                if grad.dtype != h_prev.dtype:
                    grad = grad.to(h_prev.dtype)
                grad = g_backward(grad, h_prev, a_prev)
        return (grads[::-1] if weight_grads else None), grad

    def backward_from(self, cache: list[tuple[torch.Tensor, ...]], grad_y: torch.Tensor, *,
                      input_grad: bool = False, weight_grads: bool = True,
                      weights: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor | None:
        """:meth:`backward`, storing dL/dW and dL/db in the parameters' ``.grad`` (if ``weight_grads``)
        and returning dL/dx of the network's input (if ``input_grad``, else None)."""
        grads, dx = self.backward(cache, grad_y, input_grad=input_grad, weight_grads=weight_grads, weights=weights)
        if grads is not None:
            self.set_grads(grads)
        return dx

    def set_grads(self, grads: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Store ``[(dL/dW_i, dL/db_i)]`` (input side first) as the parameters' ``.grad``."""
        for (w, b), (dw, db) in zip(self.layer_weights(), grads):
            w.grad, b.grad = dw, db

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
