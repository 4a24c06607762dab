"""Distributions: ``Normal``, ``Uniform`` and ``Transformed(base, bijection)``.

``log_prob`` accepts one sample ``(D,)`` or a batch ``(N, D)`` and validates the shape and
the values (no NaN) up front with a ``ValueError`` naming expected vs actual.
``sample(key, n)`` returns ``(n, D)``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .bijection import Bijection, bijection, static

__all__ = ["Distribution", "Normal", "Uniform", "Transformed", "check_batch"]


def check_batch(x, dim: int, who: str = "log_prob"):
    """Validate ``x`` as ``(D,)`` or ``(N, D)`` with ``D == dim`` and no NaN; return it as an array.

    The NaN check runs only on concrete arrays (not inside ``jit``), where it can raise.
    """
    if not hasattr(x, "shape"):
        x = jnp.asarray(x)
    if x.ndim not in (1, 2) or x.shape[-1] != dim:
        raise ValueError(
            f"{who} expects one sample of shape ({dim},) or a batch of shape (N, {dim}), "
            f"got shape {tuple(x.shape)}."
        )
    if not isinstance(x, jax.core.Tracer) and bool(np.isnan(np.asarray(x)).any()):
        n_bad = int(np.isnan(np.asarray(x)).any(axis=-1).sum()) if x.ndim == 2 else 1
        raise ValueError(f"{who} got NaN values in {n_bad} sample(s); remove or impute them first.")
    return x


class Distribution:
    """Base class. Subclasses implement ``_log_prob_one((D,)) -> ()`` and ``_sample(key, n)``."""

    dim: int

    def log_prob(self, x):
        """``log p(x)``: ``(D,) -> ()`` or ``(N, D) -> (N,)``."""
        x = check_batch(x, self.dim, f"{type(self).__name__}.log_prob")
        return self._log_prob_one(x) if x.ndim == 1 else jax.vmap(self._log_prob_one)(x)

    def prob(self, x):
        """``p(x) = exp(log_prob(x))``."""
        return jnp.exp(self.log_prob(x))

    def sample(self, key, n: int):
        """``n`` independent samples, shape ``(n, D)``."""
        if int(n) < 1:
            raise ValueError(f"sample needs n >= 1, got n={n}.")
        return self._sample(key, int(n))

    def sample_and_log_prob(self, key, n: int):
        """Samples ``(n, D)`` and their log-densities ``(n,)``."""
        x = self.sample(key, n)
        return x, jax.vmap(self._log_prob_one)(x)


@bijection
class Normal(Distribution):
    """Diagonal Gaussian ``N(loc, diag(exp(log_scale))^2)``; ``Normal(dim)`` is standard with no parameters.

    ``log p(x) = -D/2 log(2 pi) - sum log_scale - 1/2 sum ((x - loc) / scale)^2``.
    """

    dim: int = static()
    loc: jnp.ndarray | None = None
    log_scale: jnp.ndarray | None = None

    def __post_init__(self):
        if int(self.dim) < 1:
            raise ValueError(f"Normal needs dim >= 1, got {self.dim}.")

    def _standardise(self, x):
        z = x if self.loc is None else x - self.loc
        if self.log_scale is not None:
            return z * jnp.exp(-self.log_scale), jnp.sum(self.log_scale)
        return z, 0.0

    def _log_prob_one(self, x):
        z, log_scale_sum = self._standardise(x)
        return -0.5 * jnp.sum(z**2) - 0.5 * self.dim * math.log(2 * math.pi) - log_scale_sum

    def _sample(self, key, n):
        z = jax.random.normal(key, (n, self.dim))
        if self.log_scale is not None:
            z = z * jnp.exp(self.log_scale)
        return z if self.loc is None else z + self.loc

    def entropy(self):
        """``H = D/2 log(2 pi e) + sum log_scale`` in nats."""
        h = 0.5 * self.dim * math.log(2 * math.pi * math.e)
        return h if self.log_scale is None else h + jnp.sum(self.log_scale)


@bijection
class Uniform(Distribution):
    """Uniform on the box ``[low, high)`` (static bounds, tuples of length D); ``log p = -sum log(high - low)`` inside, ``-inf`` outside."""

    low: tuple = static()
    high: tuple = static()

    def __post_init__(self):
        if len(self.low) != len(self.high) or not all(h > l for l, h in zip(self.low, self.high)):
            raise ValueError(f"Uniform needs len(low) == len(high) and high > low, got low={self.low}, high={self.high}.")

    @property
    def dim(self) -> int:
        return len(self.low)

    def _log_prob_one(self, x):
        lo, hi = jnp.asarray(self.low), jnp.asarray(self.high)
        inside = jnp.all((x >= lo) & (x < hi))
        return jnp.where(inside, -jnp.sum(jnp.log(hi - lo)), -jnp.inf)

    def _sample(self, key, n):
        return jax.random.uniform(key, (n, self.dim), minval=jnp.asarray(self.low), maxval=jnp.asarray(self.high))

    def entropy(self):
        return float(np.sum(np.log(np.asarray(self.high) - np.asarray(self.low))))


@bijection
class Transformed(Distribution):
    """The distribution of ``x = f(z)``, ``z ~ base``:

    ``log q(x) = log p_base(f^-1(x)) + log|det J_{f^-1}(x)|``  (density: the inverse pass);
    sampling is the forward pass.
    """

    base: Distribution
    bijection: Bijection

    @property
    def dim(self) -> int:
        return self.base.dim

    def _log_prob_one(self, x):
        z, ld = self.bijection.inverse_and_log_det(x)
        return self.base._log_prob_one(z) + ld

    def _sample(self, key, n):
        return jax.vmap(self.bijection.forward)(self.base._sample(key, n))

    def sample_and_log_prob(self, key, n: int):
        """Forward pass only: ``log q(x) = log p(z) - log|det J_f(z)|``."""
        z = self.base.sample(key, n)
        x, ld = jax.vmap(self.bijection.forward_and_log_det)(z)
        return x, jax.vmap(self.base._log_prob_one)(z) - ld
