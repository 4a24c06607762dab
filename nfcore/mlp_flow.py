"""Jang's (2018) "MLP flow": low-rank affine layers alternating with PReLUs.

``x = A_L(PReLU_{L}(... PReLU_1(A_1 z) ...))``-style: ``layers`` blocks of
[:class:`LowRankAffine`, :class:`LeakyReLU`] and a final :class:`LowRankAffine`. It is a
universal-looking but weak flow for 2-D data (each affine map is 2 x 2; each PReLU bends space
only along the axes), which is why chapter 4 uses it to show what maximum likelihood does and
where a model runs out of capacity.
"""
from __future__ import annotations

import dataclasses

import jax

from .chain import Chain
from .distributions import Normal, Transformed
from .elementwise import LeakyReLU, SmoothLeakyReLU
from .layered import standardising_affine
from .lowrank import LowRankAffine

__all__ = ["mlp_flow"]


def mlp_flow(key, dim: int = 2, layers: int = 6, rank: int = 2, shift=None, scale=None,
             smooth: float | None = None) -> Transformed:
    """``Transformed(Normal(dim), Chain([A_1, PReLU_1, ..., A_L, PReLU_L, A_{L+1}]))``, identity at init.

    A plain :class:`Chain` (not a scanned stack), so ``model.bijection.forward_trace(z)`` gives
    every intermediate point for the layer-by-layer picture. ``shift``/``scale`` (D,) initialise
    the last affine layer to the data's mean/std (its diagonal and shift), so the PReLU kinks
    start where the standardised data is. ``smooth``: a ramp half-width ``delta`` > 0 to use
    :class:`SmoothLeakyReLU` (continuous slope; trains reliably, chapter 4) instead of PReLU.
    """
    if int(layers) < 1 or int(rank) < 1 or int(dim) < 1:
        raise ValueError(f"mlp_flow needs dim, layers, rank >= 1, got dim={dim}, layers={layers}, rank={rank}.")
    keys = jax.random.split(key, layers + 1)
    parts = []
    for k in keys[:-1]:
        kink = LeakyReLU.identity(dim) if smooth is None else SmoothLeakyReLU.identity(dim, smooth)
        parts += [LowRankAffine.init(k, dim, rank), kink]
    last = LowRankAffine.init(keys[-1], dim, rank)
    standardise = standardising_affine(dim, shift, scale)  # validates shapes and scale > 0
    if standardise is not None:
        last = dataclasses.replace(last, log_diag=standardise.log_scale, shift=standardise.shift)
    parts.append(last)
    return Transformed(Normal(dim), Chain(parts))
