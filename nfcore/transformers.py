"""Elementwise *transformers* for coupling (and later autoregressive) layers.

A transformer maps ``x_b`` (k,) to ``y_b`` given per-dimension parameters produced by a
conditioner, ``params`` (k, n_params). It is static metadata (a frozen, hashable dataclass with
no arrays). ``forward`` / ``inverse`` return the output and the elementwise log|dy/dx|.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

__all__ = ["Additive", "AffineTransformer"]


@dataclasses.dataclass(frozen=True)
class Additive:
    """NICE: ``y = x + t``; log-det 0 (volume preserving). One parameter per dimension."""

    n_params: int = dataclasses.field(default=1, init=False)

    def forward(self, x, params):
        return x + params[..., 0], jnp.zeros_like(x)

    def inverse(self, y, params):
        return y - params[..., 0], jnp.zeros_like(y)


@dataclasses.dataclass(frozen=True)
class AffineTransformer:
    """RealNVP: ``y = x * exp(s) + t`` with ``s = bound * tanh(s_raw / bound)`` (soft clamp).

    The clamp keeps ``|s| < bound`` so one layer can scale by at most ``e^bound`` and training
    cannot blow up, while ``s ~ s_raw`` near zero (identity at init). log|dy/dx| = s.
    """

    bound: float = 3.0
    n_params: int = dataclasses.field(default=2, init=False)

    def __post_init__(self):
        if not self.bound > 0:
            raise ValueError(f"AffineTransformer bound must be > 0, got {self.bound}.")

    def _scale_shift(self, params):
        s = self.bound * jnp.tanh(params[..., 0] / self.bound)
        return s, params[..., 1]

    def forward(self, x, params):
        s, t = self._scale_shift(params)
        return x * jnp.exp(s) + t, s

    def inverse(self, y, params):
        s, t = self._scale_shift(params)
        return (y - t) * jnp.exp(-s), -s
