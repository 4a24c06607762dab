"""Elementwise *transformers* for coupling and autoregressive layers.

A transformer maps ``x_b`` (k,) to ``y_b`` given per-dimension parameters produced by a
conditioner, ``params`` (k, n_params). It is static metadata (a frozen, hashable dataclass with
no arrays). ``forward`` / ``inverse`` return the output and the elementwise ``log|dy/dx|``.
Three kinds: :class:`Additive` (NICE), :class:`AffineTransformer` (RealNVP, MAF) and
:class:`~nfcore.spline.RationalQuadraticSpline` (neural spline flows).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from .spline import RationalQuadraticSpline
from .validate import positive_float

__all__ = ["Additive", "AffineTransformer", "RationalQuadraticSpline", "check_transformer"]


def check_transformer(transformer) -> None:
    """``ValueError`` unless ``transformer`` has ``n_params >= 1`` and ``forward``/``inverse`` methods."""
    n = getattr(transformer, "n_params", None)
    if not (isinstance(n, int) and n >= 1 and callable(getattr(transformer, "forward", None))
            and callable(getattr(transformer, "inverse", None))):
        raise ValueError(f"transformer must be an nfcore transformer such as nfcore.transformers.AffineTransformer() "
                         f"(an object with n_params >= 1 and forward(x, params) / inverse(y, params)), got {transformer!r}.")


@dataclasses.dataclass(frozen=True)
class Additive:
    """NICE: ``y = x + t``; log-det 0 (volume preserving). One parameter per dimension.

    References: Dinh, Krueger & Bengio (2015), "NICE".
    """

    n_params: int = dataclasses.field(default=1, init=False)

    def forward(self, x, params):
        return x + params[..., 0], jnp.zeros_like(x)

    def inverse(self, y, params):
        return y - params[..., 0], jnp.zeros_like(y)


@dataclasses.dataclass(frozen=True)
class AffineTransformer:
    """RealNVP: ``y = x * exp(s) + t`` with ``s = c * tanh(s_raw / c)``, ``c = log_scale_clamp``.

    The soft clamp keeps ``|s| < c`` so one layer can scale by at most ``e^c`` and training
    cannot blow up, while ``s ~ s_raw`` near zero (identity at init). ``log|dy/dx| = s``.
    References: Dinh, Sohl-Dickstein & Bengio (2017), "Density estimation using Real NVP".
    """

    log_scale_clamp: float = 3.0
    n_params: int = dataclasses.field(default=2, init=False)

    def __post_init__(self):
        object.__setattr__(self, "log_scale_clamp", positive_float(self.log_scale_clamp, "log_scale_clamp"))

    def scale_and_shift(self, params):
        """``(s, t)``, each ``(k,)``: the clamped log-scale and the shift from ``params (k, 2)``."""
        c = self.log_scale_clamp
        return c * jnp.tanh(params[..., 0] / c), params[..., 1]

    def forward(self, x, params):
        s, t = self.scale_and_shift(params)
        return x * jnp.exp(s) + t, s

    def inverse(self, y, params):
        s, t = self.scale_and_shift(params)
        return (y - t) * jnp.exp(-s), -s
