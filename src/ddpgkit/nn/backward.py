"""The MLP's backward pass written out: what autograd computes for :class:`~ddpgkit.nn.mlp.MLP`, by hand.

For a layer ``h = W x + b``, ``y = g(h)`` and an upstream gradient dL/dy, from the output side:

    dL/dh = dL/dy ⊙ g'(h),   dL/dW = dL/dhᵀ x,   dL/db = Σ_batch dL/dh,   dL/dx = dL/dh W

Each step calls the ATen kernel autograd would call for it (``threshold_backward`` for ReLU,
``tanh_backward``, ``mm``, ``sum``), so the gradients are identical to autograd's bit for bit (tested),
without building and walking a graph. DDPG's fast update (:mod:`ddpgkit.algo.gradients`) is made of
these functions; they modify nothing, so the update can be compiled as a function.

Stacked networks: an MLP whose parameters carry a leading dimension N (``W_i`` (N, out, in), ``b_i``
(N, out); :mod:`ddpgkit.nn.stacked`) is N networks at once, and every function here then takes and
returns tensors with that leading dimension, (N, B, features): the same equations as batched products
(``baddbmm``, ``bmm``, one kernel for all N networks). Batched kernels may round differently from
``mm`` in the last bits, so N stacked networks match N separate ones to float precision, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .mlp import FUNCTIONAL, MLP

Weights = list[tuple[torch.Tensor, torch.Tensor]]  # [(W_i (out, in), b_i (out,))], input side first
Cache = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # per layer: (input x, h = Wx + b, g(h))

_aten = torch.ops.aten

# dL/dh from (dL/dg(h), h, g(h)) for each activation, with the kernels autograd uses. ``grad`` is a fresh
# tensor the caller owns (the product that made it), so ReLU's mask is written into it (the kernel's out=
# form: the same values without a new tensor).
ACTIVATION_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "relu": lambda grad, pre, post: _aten.threshold_backward.grad_input(grad, post, 0, grad_input=grad),
    "tanh": lambda grad, pre, post: _aten.tanh_backward(grad, post),
    "elu": lambda grad, pre, post: _aten.elu_backward(grad, 1.0, 1, 1, False, pre),
    "leaky_relu": lambda grad, pre, post: _aten.leaky_relu_backward(grad, pre, 0.01, False),
    "silu": lambda grad, pre, post: _aten.silu_backward(grad, pre),
    "identity": lambda grad, pre, post: grad,
}


#: Activations whose derivative needs only their output g(h), so forward_with_cache applies them in place on
#: h = Wx + b (the same values; h itself is not needed afterwards), one tensor fewer per layer.
IN_PLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": torch.relu_, "tanh": torch.tanh_}


def layer_weights(mlp: MLP, dtype: torch.dtype | None = None) -> Weights:
    """``(W_i, b_i)`` of every affine layer of ``mlp``, input side first.

    With ``dtype`` (bfloat16), the hidden-to-hidden layers are returned cast to it, once per call;
    the first and last layers, with only a handful of inputs or outputs, stay in the parameters'
    dtype: their products are too small to gain from bf16 and on CPUs its small-matrix kernels
    are slower than fp32's (benchmarks/README.md).
    """
    pairs = [(m._parameters["weight"], m._parameters["bias"]) for m in mlp.linears]  # no Module.__getattr__
    if dtype is None or dtype == pairs[0][0].dtype:
        return pairs
    last = len(pairs) - 1
    return [(w.to(dtype), b.to(dtype)) if 0 < i < last else (w, b) for i, (w, b) in enumerate(pairs)]


def affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``W x + b`` of one layer: x (B, in), W (out, in), b (out,) -> (B, out) through ``F.linear`` (the
    kernel ``nn.Linear`` calls), or stacked: x (N, B, in), W (N, out, in), b (N, out) -> (N, B, out).

    Stacked, the product's orientation is picked by shape (measured, benchmarks/README.md): a layer with one
    output is computed as (N, 1, in) @ (N, in, B), whose (N, 1, B) result is the (N, B, 1) one in memory
    (a batched matrix-vector product in the orientation the BLAS runs fast, ~2x at N = 10, B = 256)."""
    if w.ndim == 2:
        return F.linear(x, w, b)
    if w.shape[1] == 1:
        return torch.baddbmm(b.unsqueeze(-1), w, x.mT).view(x.shape[0], x.shape[1], 1)  # (N, B, 1)
    return torch.baddbmm(b.unsqueeze(1), x, w.mT)


def forward_with_cache(mlp: MLP, x: torch.Tensor, weights: Weights | None = None) -> tuple[torch.Tensor, Cache]:
    """``mlp(x)`` without autograd, keeping what :func:`backward` needs: each layer's input x,
    pre-activation h and activation g(h) (for ReLU and tanh, whose derivatives need only g(h), h is
    overwritten by g(h): :data:`IN_PLACE`). Call it under ``torch.no_grad()``.

    x: (B, in_features) -> y: (B, out_features); stacked networks: (N, B, ·) -> (N, B, ·). ``weights``
    (from :func:`layer_weights`) replaces the parameters, e.g. by bfloat16 copies; each layer's input
    is cast to its weights' dtype.
    """
    weights = weights if weights is not None else layer_weights(mlp)
    g = IN_PLACE.get(mlp.activation_name, FUNCTIONAL[mlp.activation_name])
    out_name = mlp.output_activation_name
    g_out = None if out_name is None else IN_PLACE.get(out_name, FUNCTIONAL[out_name])
    cache: Cache = []
    for w, b in weights[:-1]:
        if x.dtype != w.dtype:
            x = x.to(w.dtype)
        h = affine(x, w, b)  # W x + b
        a = h if g is None else g(h)
        cache.append((x, h, a))
        x = a
    w, b = weights[-1]
    if x.dtype != w.dtype:
        x = x.to(w.dtype)
    h = affine(x, w, b)
    y = h if g_out is None else g_out(h)
    cache.append((x, h, y))
    return y, cache


def backward(mlp: MLP, cache: Cache, grad_y: torch.Tensor, *, input_grad: bool | slice = False,
             weight_grads: bool = True, weights: Weights | None = None) -> tuple[Weights | None, torch.Tensor | None]:
    """Back-propagate dL/dy (B, out_features), stacked (N, B, out_features), through ``mlp`` by hand
    (equations in the module doc).

    Returns ``(grads, dx)``: ``[(dL/dW_i, dL/db_i)]`` input side first, in the parameters' dtype
    (None unless ``weight_grads``), and dL/dx (B, in_features) of the network's input (None unless
    ``input_grad``; ``input_grad`` a slice: only those input features, (B, len)). Nothing is modified.
    ``weights`` must be what the forward pass used; with reduced-precision copies the products run in
    that precision.
    """
    params = layer_weights(mlp)
    weights = weights if weights is not None else params
    g_backward = ACTIVATION_BACKWARD[mlp.activation_name]
    out_name = mlp.output_activation_name
    x, h, y = cache[-1]
    if grad_y.dtype != h.dtype:
        grad_y = grad_y.to(h.dtype)
    grad = grad_y if out_name is None else ACTIVATION_BACKWARD[out_name](grad_y, h, y)
    grads: Weights = []
    for i in range(len(params) - 1, -1, -1):
        x = cache[i][0]
        if grad.dtype != x.dtype:
            grad = grad.to(x.dtype)
        if weight_grads:
            w, b = params[i]
            dw = weight_gradient(grad, x)  # (out, in); stacked (N, out, in)
            if dw.dtype == w.dtype:
                grads.append((dw, grad.sum(-2)))  # (out, in), (out,)
            else:
                grads.append((dw.to(w.dtype), grad.sum(-2, dtype=b.dtype)))
        if i == 0:
            if input_grad is False:
                grad = None
                break
            w_in = weights[i][0]
            if isinstance(input_grad, slice):
                if w_in.ndim == 2:  # the whole product, then the columns: autograd's numbers
                    grad = grad.matmul(w_in)[..., input_grad]
                    break
                # stacked: only the columns asked for, as ((W_cols)ᵀ dL/dhᵀ)ᵀ: few columns are a batched
                # matrix-vector product, fast in this orientation (measured, benchmarks/README.md)
                grad = w_in[..., input_grad].mT.contiguous().matmul(grad.mT).mT  # (N, B, len)
                break
            grad = grad.matmul(w_in)  # dL/dx: (B, in) by mm; stacked (N, B, in) by bmm
            break
        grad = grad.matmul(weights[i][0])  # dL/dx: (B, in) by mm; stacked (N, B, in) by bmm
        _, h_prev, a_prev = cache[i - 1]
        if grad.dtype != h_prev.dtype:
            grad = grad.to(h_prev.dtype)
        grad = g_backward(grad, h_prev, a_prev)
    return (grads[::-1] if weight_grads else None), grad


def weight_gradient(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dL/dW = dL/dhᵀ x of one layer: grad (B, out), x (B, in) -> (out, in) by ``mm``, as autograd computes it;
    stacked, (N, B, out) and (N, B, in) -> (N, out, in) by ``bmm``, and where the layer has fewer inputs than
    outputs (a first layer) as (xᵀ dL/dh)ᵀ, the orientation the BLAS runs ~2x faster there (measured,
    benchmarks/README.md)."""
    if grad.ndim == 3 and x.shape[-1] < grad.shape[-1]:
        return x.mT.matmul(grad).mT.contiguous()  # (N, in, out) -> (N, out, in)
    return grad.mT.matmul(x)


def set_grads(mlps: MLP | Sequence[MLP | None], grads: Weights) -> None:
    """Store ``[(dL/dW_i, dL/db_i)]`` (input side first; several MLPs: the first one's layers first, None
    skipped) as the parameters' ``.grad``."""
    nets = [mlps] if isinstance(mlps, MLP) else [m for m in mlps if m is not None]
    pairs = [p for m in nets for p in layer_weights(m)]
    if len(pairs) != len(grads):
        raise ValueError(f"{len(grads)} gradients for {len(pairs)} layers")
    for (w, b), (dw, db) in zip(pairs, grads):
        w.grad, b.grad = dw, db
