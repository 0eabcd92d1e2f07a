"""Health signals of DDPG's update: what goes wrong before the learning curve shows it.

Measured on the update's own tensors, on every ``config.health_interval``-th critic step and actor
step (the numbers the update computes anyway: no extra forward pass on the fast path), and summarised
per metrics row by :mod:`ddpgkit.training.loop` (:data:`UPDATE_SIGNALS`):

* ``critic_grad_norm``: ‖∇_φ L‖₂ over all critic parameters (all layers' weights and biases); per row the mean.
* ``actor_grad_norm``: ‖∇_θ L_μ‖₂ over all actor parameters (L_μ = −J: the same norm); 0 means the actor does
  not learn; the mean.
* ``td_error_mean``: 1/B Σ_i abs(δ_i) with δ_i = Q_φ(s_i, a_i) − y_i (y: :func:`~ddpgkit.algo.ddpg.td_target`);
  the mean.
* ``td_error_max``: max_i abs(δ_i); the maximum.
* ``q_max``, ``q_min``: max_i and min_i Q_φ(s_i, a_i) over the batch; the maximum and the minimum.
* ``tanh_saturated``: the share of μ's pre-tanh outputs z (all B × act_dim) where tanh saturates,
  tanh'(z) = 1 − tanh²(z) < 0.01, i.e. abs(z) > 2.99: the actor's gradient through them is shrunk more than
  100-fold; the mean.

"mean" is over the measured updates since the last row, "max"/"min" the extreme over them. The loop
adds two signals of the actions themselves (:data:`ROW_SIGNALS`): ``action_at_bound``, the share of the
exploration actions' components (clip(μ(s) + noise)) at a bound of the action space, and ``noise_rms``,
the root mean square of the exploration noise drawn, in action units.

For a group of stacked agents (:mod:`ddpgkit.nn.stacked`) every signal is per agent: the tensors here
then carry a leading (N,) dimension.

The running record is one tensor, (9,) or (N, 9), laid out as ``_LAYOUT`` says: counts and sums
(for the means) and maxima (q_min kept as the maximum of −Q). :func:`health_values` turns it into a
row's values, :func:`reset_health` starts the next row. :func:`health_warnings` reads a run's rows for
the signs of a failing run (summary.json's ``health_warnings``, printed by ``ddpgkit train``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..nn.backward import Weights

#: The metrics columns the update measures (the table above), in metrics.csv's order.
UPDATE_SIGNALS = ("critic_grad_norm", "actor_grad_norm", "td_error_mean", "td_error_max", "q_max", "q_min",
                  "tanh_saturated")
#: The metrics columns the loop measures from the actions themselves.
ROW_SIGNALS = ("action_at_bound", "noise_rms")

#: abs(tanh(z)) above this value means tanh'(z) = 1 − tanh²(z) < 0.01, i.e. abs(z) > atanh(√0.99) ≈ 2.993.
TANH_SATURATION = math.sqrt(0.99)

# the record's columns: [critic steps measured, Σ critic grad norm, Σ td_error_mean, max td_error_max,
#                        max q_max, max −q_min, actor steps measured, Σ actor grad norm, Σ tanh_saturated]
_LAYOUT = ("critic_n", "critic_grad_norm", "td_error_mean", "td_error_max", "q_max", "neg_q_min",
           "actor_n", "actor_grad_norm", "tanh_saturated")
HEALTH_WIDTH = len(_LAYOUT)
_CRITIC_SUMS, _CRITIC_MAXES, _ACTOR_SUMS = slice(0, 3), slice(3, 6), slice(6, 9)


def new_health(shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
    """An empty record ``(*shape, 9)``: shape () for one agent, (N,) for a group."""
    return reset_health(torch.empty((*shape, HEALTH_WIDTH), device=device))


def reset_health(record: torch.Tensor) -> torch.Tensor:
    """Empty ``record`` in place (sums 0, maxima −inf) and return it."""
    record[..., _CRITIC_SUMS] = 0.0
    record[..., _CRITIC_MAXES] = -math.inf
    record[..., _ACTOR_SUMS] = 0.0
    return record


def grad_norm(grads: Weights, stacked: bool = False) -> torch.Tensor:
    """‖g‖₂ of all layers' gradients together, sqrt(Σ_i ‖∂W_i‖² + ‖∂b_i‖²): 0-d, or (N,) per agent of
    stacked gradients ((N, out, in) and (N, out))."""
    start = 1 if stacked else 0
    norms = [torch.linalg.vector_norm(g, dim=tuple(range(start, g.ndim))) for pair in grads for g in pair]
    return torch.linalg.vector_norm(torch.stack(norms), dim=0)


def record_critic(record: torch.Tensor, grads: Weights, q: torch.Tensor, delta: torch.Tensor) -> None:
    """Add one critic step to ``record``: its gradients, Q(s, a) and δ = Q − y, each (B, 1) or (N, B, 1)."""
    stacked = q.ndim == 3
    abs_delta = delta.abs()
    sums = torch.stack([torch.ones_like(q[..., 0, 0]), grad_norm(grads, stacked), abs_delta.mean((-2, -1))], -1)
    maxes = torch.stack([abs_delta.amax((-2, -1)), q.amax((-2, -1)), -q.amin((-2, -1))], -1)
    record[..., _CRITIC_SUMS] += sums
    record[..., _CRITIC_MAXES] = torch.maximum(record[..., _CRITIC_MAXES], maxes)


def record_actor(record: torch.Tensor, grads: Weights, tanh_out: torch.Tensor) -> None:
    """Add one actor step to ``record``: its gradients and μ's tanh outputs (B, act_dim) or (N, B, act_dim)."""
    stacked = tanh_out.ndim == 3
    saturated = (tanh_out.abs() > TANH_SATURATION).to(tanh_out.dtype).mean((-2, -1))
    record[..., _ACTOR_SUMS] += torch.stack([torch.ones_like(saturated), grad_norm(grads, stacked), saturated], -1)


def health_values(record: torch.Tensor) -> dict[str, float | None]:
    """One agent's record (9,) as the row's :data:`UPDATE_SIGNALS` (None where nothing was measured)."""
    c_n, c_norm, td_mean, td_max, q_max, neg_q_min, a_n, a_norm, sat = record.tolist()
    values: dict[str, float | None] = dict.fromkeys(UPDATE_SIGNALS)
    if c_n > 0:
        values.update(critic_grad_norm=c_norm / c_n, td_error_mean=td_mean / c_n, td_error_max=td_max,
                      q_max=q_max, q_min=-neg_q_min)
    if a_n > 0:
        values.update(actor_grad_norm=a_norm / a_n, tanh_saturated=sat / a_n)
    return values


#: The share of saturated pre-tanh outputs at which :func:`health_warnings` warns.
SATURATION_WARNING = 0.99
#: The share of exploration actions at the bounds at which :func:`health_warnings` warns.
AT_BOUND_WARNING = 0.99


def health_warnings(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Warning signs in a run's metrics rows, one line each, from the last row that carries the update's
    signals (what the run ended with): the actor's gradient exactly 0 (it no longer learns: Tianshou
    #1268's failure), μ's pre-tanh outputs saturated almost everywhere (tanh' < 0.01 for at least
    :data:`SATURATION_WARNING` of them: its gradient is shrunk 100-fold), the exploration actions pinned
    at the bounds (at least :data:`AT_BOUND_WARNING` of their components). A healthy run gives []."""
    last = next((r for r in reversed(rows) if r.get("critic_grad_norm") is not None), None)
    if last is None:
        return []
    step = int(last["step"])
    found = []
    if last.get("actor_grad_norm") == 0.0:
        found.append(f"the actor's gradient was exactly 0 at step {step:,}: the actor no longer learns "
                     "(dead ReLUs, or every pre-tanh output saturated)")
    saturated = last.get("tanh_saturated")
    if saturated is not None and saturated >= SATURATION_WARNING:
        found.append(f"{saturated:.1%} of the actor's pre-tanh outputs were saturated at step {step:,} (tanh' < 0.01): "
                     "its gradient through them is shrunk 100-fold (a smaller final_layer_init or actor_lr may help)")
    at_bound = last.get("action_at_bound")
    if at_bound is not None and at_bound >= AT_BOUND_WARNING:
        found.append(f"{at_bound:.1%} of the exploration actions sat at the action bounds up to step {step:,}")
    return found
