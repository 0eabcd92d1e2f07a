"""The chapter's network (chapter 6, section 6.1): layers y = g(W x + b) stacked into an MLP.

One layer computes ``y = g(W x + b)`` with an element-wise activation ``g``; stacking layers gives a
multilayer network. :class:`MLP` is that stack. DDPG's actor and critic are built from it
(:mod:`ddpgkit.nn.actor_critic`); its backward pass written out lives in :mod:`ddpgkit.nn.backward`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: The activations g by name (``MLP(..., activation=NAME)``, ``--activation``).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


# The same functions without a module call, for MLP.forward (identical results, less overhead).
FUNCTIONAL = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
    "silu": F.silu,
    "identity": None,
}


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
        activation: name of g between layers (see :data:`~ddpgkit.nn.mlp.ACTIVATIONS`).
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
        self._g = FUNCTIONAL[activation]
        self._g_out = FUNCTIONAL[output_activation] if output_activation is not None else None
        self.activation_name = activation  # g, by name (the written-out backward pass looks up g' by it)
        self.output_activation_name = output_activation
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
