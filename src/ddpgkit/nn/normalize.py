"""Observation normalization: running statistics of the observations collected, and the map the networks see.

    s ↦ clip((s − μ) / sqrt(σ² + ε), −c, c)

with μ and σ² the mean and (population) variance of every observation collected so far, per dimension, and
c = ``obs_clip`` (5 in OpenAI baselines' HER). The statistics are updated from collected data only (each
observation the env returns during training, never a sampled or relabelled batch) with Chan et al.'s parallel
update in float64, and are saved with the networks (``obs_norm.*`` in a checkpoint's model), so that acting,
evaluation, inspection and a later export normalize as training did.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Added to the variance before the square root, so that a dimension that never varied maps to 0, not to inf.
EPS = 1e-8


class RunningNorm(nn.Module):
    """Running mean and variance of ``dim``-dimensional observations and the clipped standardization by them.

    Buffers (saved with the model): ``count`` (), ``mean`` (dim,), ``m2`` (dim,) — the sum of squared deviations
    from the mean — all float64. Before any update it maps s to clip(s, −c, c) (mean 0, variance 1)."""

    def __init__(self, dim: int, clip: float = 5.0) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, obs: np.ndarray | torch.Tensor) -> None:
        """Add observations (dim,) or (k, dim) to the statistics (Chan et al. 1979: the two sets' means and sums
        of squares combined exactly)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float64) if not isinstance(obs, torch.Tensor) else obs,
                            dtype=torch.float64, device=self.mean.device).reshape(-1, self.mean.shape[0])
        n_b = float(x.shape[0])
        if n_b == 0:
            return
        mean_b = x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        n_a = float(self.count)
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / n)
        self.m2 += m2_b + delta ** 2 * (n_a * n_b / n)
        self.count.fill_(n)

    def variance(self) -> torch.Tensor:
        """σ² (dim,), float64: 1 before any observation."""
        n = float(self.count)
        return self.m2 / n if n > 0 else torch.ones_like(self.m2)

    def scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, sqrt(σ² + ε)) as float32 (dim,): what :meth:`forward` uses."""
        return self.mean.float(), torch.sqrt(self.variance() + EPS).float()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """clip((s − μ) / sqrt(σ² + ε), −c, c): observations (..., dim) float32 -> the same shape."""
        mean, std = self.scale()
        return torch.clamp((obs - mean) / std, -self.clip, self.clip)


def normalize_stacked(obs: torch.Tensor, norms: list[RunningNorm]) -> torch.Tensor:
    """N agents' observations (N, ..., dim), each row block k normalized by ``norms[k]``'s statistics."""
    scales = [n.scale() for n in norms]
    mean = torch.stack([m for m, _ in scales])  # (N, dim)
    std = torch.stack([s for _, s in scales])  # (N, dim)
    shape = (len(norms),) + (1,) * (obs.ndim - 2) + (obs.shape[-1],)
    return torch.clamp((obs - mean.reshape(shape)) / std.reshape(shape), -norms[0].clip, norms[0].clip)
