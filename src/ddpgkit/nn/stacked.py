"""N networks of one architecture stored as one: every parameter stacked along a new first dimension.

``stack_modules([m_0, ..., m_{N-1}])`` returns a module of the same class and layout whose parameters
are (N, *shape) tensors, and re-points every member's parameters to views of them: ``m_k``'s weight
*is* ``stacked.weight[k]`` afterwards. A batched update writes the stacked tensors in place, each
member sees its own slice at once, and everything that reads a member (acting, evaluation,
``state_dict``, checkpoints) works on it unchanged. The functions of :mod:`ddpgkit.nn.backward` and
:mod:`ddpgkit.algo.gradients` take such stacked networks with (N, B, ·) inputs (fastpbrl's
``[P, in, out]`` population layers, for N independent agents instead of one).

Buffers (``Actor.action_scale``) are not stacked: the members must hold equal ones (the same env).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def stack_modules(members: Sequence[nn.Module]) -> nn.Module:
    """One module holding the members' parameters stacked ``(N, *shape)``; each member's parameters become
    views of it (their values are kept). Raises ValueError for no members, different layouts, or
    different buffers."""
    if not members:
        raise ValueError("stack_modules needs at least one module")
    first = members[0]
    names = [name for name, _ in first.named_parameters()]
    for m in members[1:]:
        if type(m) is not type(first) or [n for n, _ in m.named_parameters()] != names:
            raise ValueError("stacked modules must have the same class and parameters")
        for (name, p), (_, q) in zip(first.named_parameters(), m.named_parameters()):
            if p.shape != q.shape or p.dtype != q.dtype or p.device != q.device:
                raise ValueError(f"parameter {name}: {tuple(q.shape)} {q.dtype} differs from "
                                 f"{tuple(p.shape)} {p.dtype}")
        for (name, b), (_, c) in zip(first.named_buffers(), m.named_buffers()):
            if not torch.equal(b, c):
                raise ValueError(f"buffer {name} differs between the stacked modules")
    stacked = copy.deepcopy(first)
    with torch.no_grad():
        for name, _ in first.named_parameters():
            owner_path, _, attr = name.rpartition(".")
            owner = stacked.get_submodule(owner_path)
            params = [m.get_parameter(name) for m in members]
            data = torch.stack([p.detach() for p in params])  # (N, *shape)
            owner._parameters[attr] = nn.Parameter(data, requires_grad=params[0].requires_grad)
            for k, p in enumerate(params):
                p.data = data[k]  # the member's parameter is now a view of the stacked tensor
    return stacked


def stack_size(module: nn.Module) -> int:
    """N of a module made by :func:`stack_modules` (the first dimension of its parameters)."""
    return next(module.parameters()).shape[0]
