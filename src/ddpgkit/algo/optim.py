"""The optimiser step of the update: Adam through its fused kernel, without torch.optim's per-call Python.

``optimizer.step()`` spends most of a small network's step in bookkeeping (~100 µs against ~20 µs of
kernel on this project's CPU). :func:`adam_step` runs the kernel ``step()`` runs, on the optimiser's own
state, so parameters and state come out bit-identical (tested):

* where this torch has it, the fused kernel itself (``torch._fused_adam_``, private: feature-detected
  at import, its result tested against ``step()``);
* else torch's public functional Adam (``torch.optim.adam.adam``, in that module's ``__all__``) with
  ``fused=True`` — the same kernel behind ~20 µs more of Python per call (measured: 43 against 21 µs),
  which is why it is the fallback and not the default.

Only settings this module knows are sent that way; anything else goes through ``optimizer.step()``.
:func:`adam_step` says which path ran, so a test notices if the fast path ever stops running.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch.optim.adam import adam as functional_adam

# Feature detection, once: the optimiser and the functional API take ``fused``; the kernel may exist.
FUSED_AVAILABLE = ("fused" in inspect.signature(functional_adam).parameters
                   and "fused" in inspect.signature(torch.optim.Adam).parameters)
FUSED_KERNEL: Callable[..., None] | None = getattr(torch, "_fused_adam_", None)

# The param-group keys this module knows; each setting must be absent (older torch) or plain (see _plain).
_KNOWN_KEYS = frozenset({"params", "lr", "betas", "eps", "weight_decay", "fused", "amsgrad", "maximize",
                         "differentiable", "capturable", "decoupled_weight_decay", "foreach"})


def make_adam(params: list[torch.Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has it for the parameters' device (one call per
    step instead of a dozen list operations), else the foreach implementation. Same update rule."""
    if FUSED_AVAILABLE:
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # pragma: no cover - a device without the fused kernel
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def _plain(group: dict) -> bool:
    """The group's settings are those under which the direct call equals ``step()`` (a flat chain of
    lookups: this runs twice per update)."""
    get = group.get
    return not (get("fused") is not True or get("amsgrad", False) or get("maximize", False)
                or get("differentiable", False) or get("capturable", False) or get("decoupled_weight_decay", False)
                or get("foreach") is not None or isinstance(group["lr"], torch.Tensor)
                or not group.keys() <= _KNOWN_KEYS)


def fast_path_applies(optimizer: torch.optim.Optimizer) -> bool:
    """True where :func:`adam_step` can call the fused kernel directly: one fused param group of known
    keys with plain settings, a float learning rate, and state already created (by a first ``step()``)."""
    groups = optimizer.param_groups
    if not FUSED_AVAILABLE or len(groups) != 1 or not _plain(groups[0]):
        return False
    state = optimizer.state.get(groups[0]["params"][0])
    return bool(state) and "exp_avg" in state and "exp_avg_sq" in state and "step" in state


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
    state = optimizer.state
    grads = [p.grad for p in params]
    if any(g is None for g in grads):
        optimizer.step()
        return False
    states = [state[p] for p in params]
    exp_avgs, exp_avg_sqs, steps = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], \
        [s["step"] for s in states]
    beta1, beta2 = group["betas"]
    if FUSED_KERNEL is not None:
        torch._foreach_add_(steps, 1)  # what step() does before the kernel
        FUSED_KERNEL(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
                     beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                     grad_scale=None, found_inf=None)
    else:
        with torch.no_grad():
            functional_adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True, grad_scale=None,
                            found_inf=None, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
    return True


def stack_adam_state(stacked: torch.optim.Optimizer, members: list[torch.optim.Optimizer]) -> None:
    """Give ``stacked`` (an Adam over parameters stacked from the members', :mod:`ddpgkit.nn.stacked`)
    the members' moments stacked (N, ...) and their common step count; nothing when no member has
    stepped yet. Raises ValueError if some members have state and others not, or the counts differ."""
    params = stacked.param_groups[0]["params"]
    member_params = [m.param_groups[0]["params"] for m in members]
    have = [all(p in m.state and m.state[p] for p in ps) for m, ps in zip(members, member_params)]
    if not any(have):
        return
    if not all(have):
        raise ValueError("some optimisers of the group have state and others not")
    for i, p in enumerate(params):
        states = [m.state[ps[i]] for m, ps in zip(members, member_params)]
        steps = {float(s["step"]) for s in states}
        if len(steps) != 1:
            raise ValueError(f"the group's optimisers have taken different numbers of steps: {sorted(steps)}")
        stacked.state[p] = {"step": states[0]["step"].clone(),
                            "exp_avg": torch.stack([s["exp_avg"] for s in states]),
                            "exp_avg_sq": torch.stack([s["exp_avg_sq"] for s in states])}
    link_adam_state(stacked, members)


def link_adam_state(stacked: torch.optim.Optimizer, members: list[torch.optim.Optimizer]) -> bool:
    """Point every member's Adam state at its slice of ``stacked``'s (moments as views, the step count
    shared), so that a member's ``state_dict`` (its checkpoint) is its part of the stacked state. Returns
    False (and links nothing) while ``stacked`` has no state yet."""
    params = stacked.param_groups[0]["params"]
    if not all(p in stacked.state and stacked.state[p] for p in params):
        return False
    for k, m in enumerate(members):
        for p, q in zip(params, m.param_groups[0]["params"]):
            st = stacked.state[p]
            m.state[q] = {"step": st["step"], "exp_avg": st["exp_avg"][k], "exp_avg_sq": st["exp_avg_sq"][k]}
    return True
