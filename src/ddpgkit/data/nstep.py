"""n-step returns from the replay buffer's rows, computed when a batch is drawn.

For a sampled transition t the n-step TD target (Sutton & Barto 2018, §7.1; used by D4PG, Barth-Maron et al.
2018, and Rainbow, Hessel et al. 2018) sums up to n rewards before it bootstraps::

    R_t^(m) = Σ_{k=0}^{m−1} γ^k r_{t+k}
    y_t     = R_t^(m) + γ^m (1 − d_{t+m−1}) Q_φ'(s_{t+m}, μ_θ'(s_{t+m}))

where m ≤ n is where the sum stops: at n rewards; at the first transition of the window that ends its episode —
by a termination (d = 1: no bootstrap) or by a truncation (d = 0: bootstrap from the truncated state s_{t+m},
the transition's own next observation); or at the newest transition stored (its episode goes on, but what
follows is not in the buffer yet). The sum never crosses an episode boundary. With n = 1 it is DDPG's
one-step target, m = 1.

The buffer stores the environment's one-step transitions as they happened (one episode's steps in
consecutive rows), so nothing is pending outside it: the window is read from the rows when a batch is drawn,
and a checkpoint of the buffer is the whole n-step state.
"""

from __future__ import annotations

import torch


def n_step_window(rewards: torch.Tensor, ends: torch.Tensor, ahead: torch.Tensor, n: int,
                  gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The n-step return of B windows of consecutive transitions, and where each stops.

    Args:
        rewards: (B, n) r_t, ..., r_{t+n−1} of each window (rows past its stop are ignored).
        ends: (B, n) True where that transition ended its episode (terminated or truncated).
        ahead: (B,) how many transitions were stored after t (the newest one stops the window).
        n: the window's length; gamma: γ.

    Returns (R (B, 1), the stop index m − 1 (B,), γ^m (B, 1)): R = Σ_{k<m} γ^k r_{t+k}, the sum in order k = 0,
    1, ... (each term γ^k r in float32, as a written-out loop adds them).
    """
    k = torch.arange(n, device=rewards.device)  # (n,)
    stop_here = ends | (k == n - 1) | (k[None, :] == ahead[:, None])  # (B, n): the window may stop at k
    stop = stop_here.int().argmax(dim=1)  # (B,) the first k where it may: m − 1
    powers = gamma ** k.to(torch.float64)  # (n,) γ^k, rounded once to float32 below
    included = k[None, :] <= stop[:, None]  # (B, n)
    terms = torch.where(included, rewards * powers.to(rewards.dtype), torch.zeros_like(rewards))  # (B, n)
    ret = terms[:, :1].clone()
    for j in range(1, n):  # in order, as the sum is written
        ret += terms[:, j:j + 1]
    discount = (gamma ** (stop.to(torch.float64) + 1.0)).to(rewards.dtype)[:, None]  # (B, 1) γ^m
    return ret, stop, discount
