"""Distributions: ``Normal``, ``Uniform`` and ``Transformed(base, bijection)``.

Every distribution implements ``log_prob_one(x)`` — the log-density of **one** sample ``(D,)``,
the function that ``fit``, the targets and the metrics vmap — and ``_sample(key, n)``. The public
``log_prob`` accepts ``(D,)`` or ``(N, D)``, validates the shape and rejects NaN up front with a
``ValueError`` naming expected vs actual, and gives ``-inf`` (zero density) to any sample with an
infinite component. ``sample(key, n)`` returns ``(n, D)``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .bijection import Bijection, pytree, static
from .validate import check_batch, finite_float, positive_int

__all__ = ["Distribution", "Normal", "Uniform", "Transformed", "check_batch", "map_in_chunks"]


EVAL_CHUNK = 8192  # rows per chunk when a large batch is evaluated (bounds peak memory)


def map_in_chunks(f, x):
    """``vmap(f)(x)`` for ``x (N, D)``, ``EVAL_CHUNK`` rows at a time under ``lax.map`` (padded last
    chunk): only one chunk's intermediates are alive at once, whatever ``N``."""
    n = x.shape[0]
    if n <= EVAL_CHUNK:
        return jax.vmap(f)(x)
    pad = (-n) % EVAL_CHUNK
    xp = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, x.shape[1]))]) if pad else x
    return jax.lax.map(jax.vmap(f), xp.reshape(-1, EVAL_CHUNK, x.shape[1])).reshape(-1)[:n]


def _concrete(a) -> bool:
    return isinstance(a, (np.ndarray, jax.Array)) and not isinstance(a, jax.core.Tracer)


class Distribution:
    """Base class: subclasses (decorated with :func:`~nfcore.bijection.pytree`) implement
    ``log_prob_one((D,)) -> ()`` and ``_sample(key, n) -> (n, D)``, and have a ``dim``."""

    dim: int

    def log_prob_one(self, x):  # pragma: no cover - abstract
        """``log p(x)`` for one sample ``x`` of shape ``(D,)`` (no validation: callers vmap it)."""
        raise NotImplementedError

    def _finite_log_prob_one(self, x):
        # a sample with a +-inf component has zero density (the double where keeps gradients
        # finite), and so has one so far out that the density underflows to NaN (e.g. inf - inf)
        ok = jnp.all(jnp.isfinite(x))
        lp = self.log_prob_one(jnp.where(ok, x, jnp.zeros_like(x)))
        return jnp.where(ok & ~jnp.isnan(lp), lp, -jnp.inf)

    def log_prob(self, x):
        """``log p(x)``: ``(D,) -> ()`` or ``(N, D) -> (N,)``; ``-inf`` where ``x`` has an inf."""
        x = check_batch(x, self.dim, f"{type(self).__name__}.log_prob")
        return self._finite_log_prob_one(x) if x.ndim == 1 else map_in_chunks(self._finite_log_prob_one, x)

    def prob(self, x):
        """``p(x) = exp(log_prob(x))``."""
        return jnp.exp(self.log_prob(x))

    def sample(self, key, n: int):
        """``n`` independent samples, shape ``(n, D)``."""
        return self._sample(key, positive_int(n, "n (the number of samples)"))

    def sample_and_log_prob(self, key, n: int):
        """Samples ``(n, D)`` and their log-densities ``(n,)``."""
        x = self.sample(key, n)
        return x, jax.vmap(self.log_prob_one)(x)


@pytree
class Normal(Distribution):
    """Diagonal Gaussian ``N(loc, diag(exp(log_scale))^2)``; ``Normal(dim)`` is standard with no parameters.

    ``log p(x) = -D/2 log(2 pi) - sum log_scale - 1/2 sum ((x - loc) / scale)^2``.
    ``loc``, ``log_scale``: ``(D,)`` or ``None`` (0).
    """

    dim: int = static()
    loc: jnp.ndarray | None = None
    log_scale: jnp.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "dim", positive_int(self.dim, "Normal dim"))
        for name in ("loc", "log_scale"):
            a = getattr(self, name)
            if _concrete(a) and a.shape != (self.dim,):
                raise ValueError(f"Normal {name} must have shape ({self.dim},) to match dim={self.dim}, "
                                 f"got shape {a.shape}.")

    def _standardise(self, x):
        z = x if self.loc is None else x - self.loc
        if self.log_scale is not None:
            return z * jnp.exp(-self.log_scale), jnp.sum(self.log_scale)
        return z, 0.0

    def log_prob_one(self, x):
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


@pytree
class Uniform(Distribution):
    """Uniform on the box ``[low, high)`` (static finite bounds, tuples of length D).

    ``log p = -sum log(high - low)`` inside, ``-inf`` outside.
    """

    low: tuple = static()
    high: tuple = static()

    def __post_init__(self):
        low = tuple(finite_float(v, "Uniform low") for v in np.atleast_1d(self.low).tolist())
        high = tuple(finite_float(v, "Uniform high") for v in np.atleast_1d(self.high).tolist())
        if len(low) != len(high) or not all(h > lo for lo, h in zip(low, high)):
            raise ValueError(f"Uniform needs low and high of the same length with high > low in every "
                             f"dimension, got low={self.low}, high={self.high}.")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def dim(self) -> int:
        return len(self.low)

    def log_prob_one(self, x):
        lo, hi = jnp.asarray(self.low), jnp.asarray(self.high)
        inside = jnp.all((x >= lo) & (x < hi))
        return jnp.where(inside, -jnp.sum(jnp.log(hi - lo)), -jnp.inf)

    def _sample(self, key, n):
        return jax.random.uniform(key, (n, self.dim), minval=jnp.asarray(self.low), maxval=jnp.asarray(self.high))

    def entropy(self):
        return float(np.sum(np.log(np.asarray(self.high) - np.asarray(self.low))))


@pytree
class Transformed(Distribution):
    """The distribution of ``x = f(z)``, ``z ~ base``:

    ``log q(x) = log p_base(f^-1(x)) + log|det J_{f^-1}(x)|``  (density: the inverse pass);
    sampling is the forward pass.
    """

    base: Distribution
    bijection: Bijection

    def __post_init__(self):
        if not isinstance(self.base, Distribution) and _concrete_tree(self.base):
            raise ValueError(f"Transformed base must be an nfcore distribution (e.g. nf.Normal(2)), "
                             f"got {type(self.base).__name__}.")
        if not isinstance(self.bijection, Bijection) and _concrete_tree(self.bijection):
            raise ValueError(f"Transformed bijection must be an nfcore Bijection, got {type(self.bijection).__name__}.")

    @property
    def dim(self) -> int:
        return self.base.dim

    def log_prob_one(self, x):
        z, ld = self.bijection.inverse_and_log_det(x)
        return self.base.log_prob_one(z) + ld

    def _sample(self, key, n):
        return jax.vmap(self.bijection.forward)(self.base._sample(key, n))

    def sample_and_log_prob(self, key, n: int):
        """Forward pass only: ``log q(x) = log p(z) - log|det J_f(z)|``."""
        z = self.base.sample(key, n)
        x, ld = jax.vmap(self.bijection.forward_and_log_det)(z)
        return x, jax.vmap(self.base.log_prob_one)(z) - ld


def _concrete_tree(obj) -> bool:
    # jax rebuilds pytrees with placeholder leaves (None, object(), tracers) during transformations:
    # type checks only make sense on objects a user built, i.e. not JAX's placeholders
    return not (obj is None or type(obj) is object or isinstance(obj, (int, jax.core.Tracer)))
