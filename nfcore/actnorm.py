"""ActNorm: a per-dimension affine layer with a data-dependent initialisation (Glow).

Reference: D. P. Kingma, P. Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions",
NeurIPS 2018 (arXiv:1807.03039), section 3.1.
"""
from __future__ import annotations

import jax.numpy as jnp

from .validate import check_batch
from .elementwise import Affine

__all__ = ["ActNorm"]

_DIRECTIONS = ("inverse", "forward")


class ActNorm(Affine):
    """``y = x * exp(log_scale) + shift`` per dimension — :class:`~nfcore.elementwise.Affine`
    (same parameters ``shift``, ``log_scale`` (D,), same maps and log-dets: forward
    ``sum log_scale``, inverse ``x = (y - shift) exp(-log_scale)`` with ``-sum log_scale``) plus a
    **data-dependent initialisation**, :meth:`init_from_data`.

    Glow initialises each actnorm so that, on a first batch, the activations it *outputs while
    the data is being encoded* have zero mean and unit variance per dimension; afterwards the
    parameters are ordinary trainable parameters. In nfcore, forward is base -> data (sampling)
    and density evaluation runs the **inverse** (data -> base). So the default
    ``init_from_data(x, direction="inverse")`` takes ``x`` on the layer's **data side** (what its
    inverse receives during ``log_prob``) and makes ``inverse(x)`` — the **base side** — zero-mean
    and unit-variance: ``shift = mean(x)``, ``log_scale = log std(x)``.

    References: Kingma & Dhariwal (2018), "Glow", sec. 3.1.
    """

    @classmethod
    def identity(cls, dim: int) -> "ActNorm":
        """``shift = 0``, ``log_scale = 0``: the identity map."""
        return cls(jnp.zeros(dim), jnp.zeros(dim))

    @classmethod
    def init_from_data(cls, x_batch, direction: str = "inverse", eps: float = 1e-6) -> "ActNorm":
        """Data-dependent initialisation: the layer standardises ``x_batch`` ``(N, D)``.

        ``direction="inverse"`` (default; the density direction, data -> base): ``x_batch`` is the
        layer's data-side input; afterwards ``vmap(inverse)(x_batch)`` has per-dimension mean 0
        and (population, ``ddof=0``) variance 1. Parameters ``shift = mean``,
        ``log_scale = log std``.

        ``direction="forward"`` (the sampling direction, base -> data, e.g. for a flow trained by
        sampling): ``x_batch`` is the base-side input; afterwards ``vmap(forward)(x_batch)`` has
        mean 0 and variance 1. Parameters ``log_scale = -log std``, ``shift = -mean / std``.

        A dimension whose standard deviation is ``<= eps`` (constant in the batch) gets unit scale
        (only its mean is removed). Parameters have the batch's dtype.
        """
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS} ('inverse' = density direction, data -> base), "
                             f"got {direction!r}.")
        x = jnp.asarray(x_batch)
        if x.ndim != 2:
            raise ValueError(f"ActNorm.init_from_data expects a batch of shape (N, D), got shape {tuple(x.shape)}.")
        x = check_batch(x, x.shape[-1], "ActNorm.init_from_data")
        if x.shape[0] < 2:
            raise ValueError(f"ActNorm.init_from_data needs at least 2 samples to estimate a variance, got {x.shape[0]}.")
        if not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError("ActNorm.init_from_data got non-finite values in x_batch.")
        mean = jnp.mean(x, axis=0)
        std = jnp.std(x, axis=0)
        std = jnp.where(std > eps, std, jnp.ones_like(std))
        if direction == "inverse":
            return cls(mean, jnp.log(std))
        return cls(-mean / std, -jnp.log(std))
