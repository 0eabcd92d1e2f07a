"""Exploration noise added to the deterministic action μ(s) while training.

Each noise object draws from its own explicit ``torch.Generator`` (so a run is reproducible and its
state can be saved), returns a (act_dim,) float32 tensor, and has ``reset()`` for episode starts.
The agents call :meth:`ActionNoise.draw`, which also keeps the sum of squares of what it drew, for the
``noise_rms`` health signal of the metrics rows (:meth:`ActionNoise.pop_rms`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch


class ActionNoise(ABC):
    """Base class: ``sample()`` returns the next noise vector, ``reset()`` starts a new episode."""

    def __init__(self, scale: torch.Tensor, seed: int = 0) -> None:
        self.scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)  # (act_dim,)
        self.generator = torch.Generator().manual_seed(seed)
        self._sum_sq, self._count = 0.0, 0  # Σ x_i² over the noise components drawn, and their number

    @abstractmethod
    def sample(self) -> torch.Tensor:
        """The next (act_dim,) noise vector."""

    def draw(self) -> torch.Tensor:
        """:meth:`sample`, counted for :meth:`pop_rms`."""
        x = self.sample()
        self._sum_sq += torch.dot(x, x).item()
        self._count += x.numel()
        return x

    def pop_rms(self) -> float | None:
        """The root mean square of the noise components drawn since the last call (None if none were), in
        action units; starts counting anew."""
        total, n = self._sum_sq, self._count
        self._sum_sq, self._count = 0.0, 0
        return math.sqrt(total / n) if n else None

    def reset(self) -> None:  # noqa: B027 - stateless noises have nothing to reset
        """Called at the start of every episode."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator's state and the ``noise_rms`` count, as tensors (safetensors, no pickle)."""
        return {"generator": self.generator.get_state(),
                "drawn": torch.tensor([self._sum_sq, self._count], dtype=torch.float64)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`'s output; a value of the wrong shape or range raises ValueError."""
        self.generator.set_state(state["generator"])
        drawn = state["drawn"]
        if drawn.shape != (2,) or drawn.dtype != torch.float64:
            raise ValueError(f"noise.drawn has shape {tuple(drawn.shape)} {drawn.dtype}, expected (2,) float64")
        total, n = drawn.tolist()
        if not (math.isfinite(total) and total >= 0 and n >= 0 and n == int(n)):
            raise ValueError(f"noise.drawn must be [sum of squares >= 0, count], got {[total, n]}")
        self._sum_sq, self._count = float(total), int(n)


class NoNoise(ActionNoise):
    """Zero noise: the deterministic policy explores only through the warm-up's random actions."""

    def sample(self) -> torch.Tensor:
        return torch.zeros_like(self.scale)


class GaussianNoise(ActionNoise):
    """Independent N(0, σ²) per step and dimension, with σ = ``scale`` (per action dimension)."""

    def sample(self) -> torch.Tensor:
        return self.scale * torch.randn(self.scale.shape, generator=self.generator)


class OrnsteinUhlenbeckNoise(ActionNoise):
    """Temporally correlated noise, the one DDPG's paper used:

    x_{t+1} = x_t + θ (μ − x_t) dt + σ √dt · ε_t,   ε_t ~ N(0, I),   x_0 = μ = 0 at every ``reset()``

    with σ = ``scale``. Its stationary standard deviation is σ √(dt / (1 − (1 − θ dt)²)) ≈ σ / √(2θ).
    """

    def __init__(self, scale: torch.Tensor, theta: float = 0.15, dt: float = 1e-2, seed: int = 0) -> None:
        super().__init__(scale, seed)
        self.theta, self.dt = float(theta), float(dt)
        self.x = torch.zeros_like(self.scale)

    def sample(self) -> torch.Tensor:
        eps = torch.randn(self.scale.shape, generator=self.generator)
        self.x = self.x + self.theta * (0.0 - self.x) * self.dt + self.scale * math.sqrt(self.dt) * eps
        return self.x.clone()

    def reset(self) -> None:
        self.x = torch.zeros_like(self.scale)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The base class's state and the process's current value x."""
        return {**super().state_dict(), "x": self.x.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict`'s output."""
        super().load_state_dict(state)
        self.x = state["x"].clone()


def make_noise(kind: str, scale: torch.Tensor, *, theta: float = 0.15, dt: float = 1e-2, seed: int = 0) -> ActionNoise:
    """Noise by config name: ``gaussian``, ``ou`` or ``none``."""
    if kind == "gaussian":
        return GaussianNoise(scale, seed)
    if kind == "ou":
        return OrnsteinUhlenbeckNoise(scale, theta, dt, seed)
    if kind == "none":
        return NoNoise(scale, seed)
    raise ValueError(f"unknown noise {kind!r}; valid: gaussian, ou, none")
