"""The optimiser step of the update: Adam, through its fused kernel, without torch.optim's per-call Python.

``optimizer.step()`` spends most of a small network's step in bookkeeping (~100 µs against ~35 µs of
kernel on this project's CPU). :func:`adam_step` calls torch's public functional Adam
(``torch.optim.adam.adam``, in that module's ``__all__``) with ``fused=True`` on the optimiser's own
state, which runs the same kernel ``step()`` runs: parameters and state come out bit-identical
(tested). Only the configurations this module knows are sent that way; anything else goes through
``optimizer.step()``, and :func:`adam_step` says which path ran so a test can notice if the fast path
ever stops running.
"""

from __future__ import annotations

import inspect

import torch
from torch.optim.adam import adam as functional_adam

# Feature detection, once: the functional API takes ``fused`` (torch >= 2.0) and the optimiser too.
FUSED_AVAILABLE = ("fused" in inspect.signature(functional_adam).parameters
                   and "fused" in inspect.signature(torch.optim.Adam).parameters)

# Param-group settings under which the fast call is exactly ``step()``: each key must be absent
# (older torch) or hold this value.
_PLAIN_GROUP = {"amsgrad": False, "maximize": False, "differentiable": False, "capturable": False,
                "decoupled_weight_decay": False, "foreach": None}
_KNOWN_KEYS = {"params", "lr", "betas", "eps", "weight_decay", "fused", *_PLAIN_GROUP}


def make_adam(params: list[torch.Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has it for the parameters' device (one call per
    step instead of a dozen list operations), else the foreach implementation. Same update rule."""
    if FUSED_AVAILABLE:
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - a device without the fused kernel
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def fast_path_applies(optimizer: torch.optim.Optimizer) -> bool:
    """True where :func:`adam_step` can call the fused kernel directly: one fused param group of known
    keys with plain settings, a float learning rate, and state already created (by a first ``step()``)."""
    groups = optimizer.param_groups
    if not FUSED_AVAILABLE or len(groups) != 1:
        return False
    group = groups[0]
    if not group.get("fused") or not set(group) <= _KNOWN_KEYS or isinstance(group["lr"], torch.Tensor):
        return False
    if any(group.get(k, plain) != plain for k, plain in _PLAIN_GROUP.items()):
        return False
    state = optimizer.state.get(group["params"][0])
    return bool(state) and all(k in state for k in ("step", "exp_avg", "exp_avg_sq"))


def adam_step(optimizer: torch.optim.Optimizer) -> bool:
    """``optimizer.step()`` for a fused Adam, minus torch.optim's per-call bookkeeping.

    Returns True if the fused kernel was called directly, False if it went through
    ``optimizer.step()`` (the first step, which creates the state; any setting :func:`fast_path_applies`
    does not know; a parameter without a gradient).
    """
    if not fast_path_applies(optimizer):
        optimizer.step()
        return False
    group = optimizer.param_groups[0]
    params = group["params"]
    grads = [p.grad for p in params]
    if any(g is None for g in grads):
        optimizer.step()
        return False
    states = [optimizer.state[p] for p in params]
    beta1, beta2 = group["betas"]
    with torch.no_grad():
        functional_adam(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                        [s["step"] for s in states], fused=True, grad_scale=None, found_inf=None, amsgrad=False,
                        beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=False)
    return True
