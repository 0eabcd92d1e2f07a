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


# The same functions without a module call, for the written-out pass (ddpgkit.nn.backward): identical results.
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
        self._sizes = list(zip(sizes[:-1], sizes[1:]))  # (in, out) of each affine layer, for is_stock
        self.activation_name = activation  # g, by name (the written-out backward pass looks up g' by it)
        self.output_activation_name = output_activation
        if final_layer_init is not None:
            if not final_layer_init > 0:
                raise ValueError(f"final_layer_init must be > 0, got {final_layer_init}")
            last = self.linears[-1]
            nn.init.uniform_(last.weight, -final_layer_init, final_layer_init)
            nn.init.uniform_(last.bias, -final_layer_init, final_layer_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_features) -> (B, out_features): the named modules called in order, as the chapter's
        ``Network.forward`` calls them (``h0 = relu0(linear0(x))``, ``h1 = relu1(linear1(h0))``,
        ``y = linear2(h1)``). So a forward hook on ``relu0`` sees ``h0``, and ``f.relu0 = nn.Tanh()``
        changes the network. (DDPG's default update does not call this: it runs the written-out pass of
        :mod:`ddpgkit.nn.backward`, which computes the network :meth:`is_stock` describes.)"""
        for module in self._modules.values():
            x = module(x)
        return x

    def is_stock(self) -> bool:
        """True while every module is the kind the constructor made (``linearI`` an ``nn.Linear`` of the
        sizes given, each activation the named kind) and none of them, nor the MLP, carries a forward hook:
        then :mod:`ddpgkit.nn.backward`'s written-out pass, which reads only the weights and the activation
        names, computes what :meth:`forward` computes. A module swapped (``f.relu0 = nn.Tanh()``) or hooked
        makes it False; DDPG's learner then refuses its written-out update (``backward="autograd"`` runs it)."""
        kinds = {name: ACTIVATIONS[self.activation_name] for name in self._modules if not name.startswith("linear")}
        if self.output_activation_name is not None:
            kinds[f"{self.output_activation_name}_out"] = ACTIVATIONS[self.output_activation_name]
        for name, module in [("", self), *self._modules.items()]:
            if module._forward_hooks or module._forward_pre_hooks:
                return False
            if name and type(module) is not (nn.Linear if name.startswith("linear") else kinds[name]):
                return False
        return [(m.in_features, m.out_features) for m in self.linears] == self._sizes

    def __setattr__(self, name: str, value: object) -> None:
        self.__dict__.pop("_linears", None)  # a layer replaced: look the affine layers up again
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.pop("_linears", None)  # a layer removed: likewise
        super().__delattr__(name)

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
