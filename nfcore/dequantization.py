"""Dequantisation: ``log P(x) >= E_q(u|x)[log p((x + u) / L) - log q(u|x)] - D log L``, in bits/dim.

A continuous density ``p`` on ``[0, 1)^D`` gives the discrete images ``x`` in ``{0, ..., L-1}^D``
the probability ``P(x) = integral over the cell of x``; Jensen's inequality bounds it from below
with any noise density ``q(u|x)`` on ``[0, 1)^D`` (uniform: ``q = 1``; variational: a conditional
flow), and ``log mean_k p(y_k) / q(u_k|x)`` over ``K`` samples is a tighter bound (importance
weighting) that tends to ``log P(x)`` as ``K`` grows. The logit pre-processing
:class:`LogitTransform` maps ``[0, 1)`` to the real line with its log-det, so a flow on R^D gives
a density on ``[0, 1)^D`` and the numbers stay likelihoods of the discrete data.

References: L. Theis, A. van den Oord, M. Bethge, "A note on the evaluation of generative
models", ICLR 2016; J. Ho et al., "Flow++", ICML 2019; L. Dinh et al., "Density estimation
using Real NVP", ICLR 2017 (logit with alpha).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.nn import log_sigmoid

from .bijection import Bijection, pytree, static
from .nn import MLP
from .transformers import AffineTransformer
from .validate import check_sample, positive_int

__all__ = ["LogitTransform", "VariationalDequantizer", "dequantize", "dequantization_bound",
           "importance_weighted_bound", "bits_per_dim"]


class LogitTransform(Bijection):
    """``y = (sigmoid(z) - alpha) / (1 - 2 alpha)``: R -> an interval around ``[0, 1]`` (forward).

    Inverse (the pre-processing of the data): ``z = logit(alpha + (1 - 2 alpha) y)``, log-det
    ``sum [log(1 - 2 alpha) - log s - log(1 - s)]`` with ``s = alpha + (1 - 2 alpha) y``; outside the
    range it gives log-det ``-inf``. ``alpha`` (static, in ``[0, 0.5)``) keeps ``z`` away from
    ``±inf`` at the edges of ``[0, 1)``.
    """

    alpha: float = static(default=0.05)

    def __post_init__(self):
        if not 0.0 <= float(self.alpha) < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5), e.g. 0.05, got {self.alpha}.")

    def forward_and_log_det(self, z):
        a = self.alpha
        ld = log_sigmoid(z) + log_sigmoid(-z) - math.log1p(-2 * a)
        return (jax.nn.sigmoid(z) - a) / (1 - 2 * a), jnp.sum(ld)

    def inverse_and_log_det(self, y):
        s = self.alpha + (1 - 2 * self.alpha) * y
        ok = (s > 0) & (s < 1)
        s = jnp.where(ok, s, 0.5)  # double where: finite gradients outside the range
        log_s, log_1ms = jnp.log(s), jnp.log1p(-s)
        ld = jnp.sum(math.log1p(-2 * self.alpha) - log_s - log_1ms)
        return jnp.where(ok, log_s - log_1ms, 0.0), jnp.where(jnp.all(ok), ld, -jnp.inf)


@pytree
class VariationalDequantizer:
    """``q(u | x)``: ``u = sigmoid(h)``, ``h = g_x(eps)``, ``eps ~ N(0, I_D)`` (one sample).

    ``g_x`` is an elementwise affine map whose shift and log-scale come from an MLP of the image,
    followed by ``len(couplings)`` affine couplings (alternating halves) whose conditioners see
    the other half of ``h`` and the image. ``log q(u|x) = log N(eps) - log|det dg/deps|
    - sum log sigmoid'(h)``. Initialised (last layers zero) to ``u = sigmoid(eps)``.
    """

    base: MLP
    couplings: tuple
    levels: int = static()

    @classmethod
    def init(cls, key, dim: int, levels: int, *, hidden=(64,), layers: int = 2) -> "VariationalDequantizer":
        dim, levels = positive_int(dim, "dim", 2), positive_int(levels, "levels", 2)
        layers = positive_int(layers, "layers", 0)
        keys = jax.random.split(key, layers + 1)
        base = MLP.init(keys[0], (dim, *hidden, 2 * dim))
        half = dim // 2
        nets = tuple(MLP.init(k, ((dim - half if i % 2 else half) + dim, *hidden, 2 * (half if i % 2 else dim - half)))
                     for i, k in enumerate(keys[1:]))
        return cls(base, nets, levels)

    def sample_and_log_prob(self, x, eps):
        """``(u, log q(u|x))`` for one image ``x`` (D,) of levels and one noise ``eps`` (D,)."""
        check_sample(x, None, "VariationalDequantizer")
        check_sample(eps, x.shape[0], "VariationalDequantizer eps")
        c = 2 * x / (self.levels - 1) - 1  # the image on [-1, 1]
        aff = AffineTransformer()
        shift, log_scale = jnp.split(self.base(c), 2)
        h, ld = aff.forward(eps, jnp.stack([log_scale, shift], -1))
        total = jnp.sum(ld)
        half = x.shape[0] // 2
        for i, net in enumerate(self.couplings):
            a, b = (slice(half, None), slice(None, half)) if i % 2 else (slice(None, half), slice(half, None))
            params = net(jnp.concatenate([h[a], c])).reshape(2, -1).T
            hb, ld = aff.forward(h[b], params)
            h, total = h.at[b].set(hb), total + jnp.sum(ld)
        log_q = (jnp.sum(-0.5 * eps**2) - 0.5 * eps.shape[0] * math.log(2 * math.pi) - total
                 - jnp.sum(log_sigmoid(h) + log_sigmoid(-h)))
        return jax.nn.sigmoid(h), log_q


def dequantize(key, x, levels: int, dequantizer: VariationalDequantizer | None = None):
    """``(y, log q(u|x))``: ``y = (x + u) / levels`` in ``[0, 1)^D`` for a batch ``x`` (N, D) of levels.

    Uniform noise (``log q = 0``) without ``dequantizer``; else ``u`` from ``q(u|x)``.
    """
    levels = positive_int(levels, "levels")
    x = jnp.asarray(x, jnp.result_type(float))
    if x.ndim != 2:
        raise ValueError(f"x must be a batch of images of shape (N, D), got shape {x.shape}.")
    if dequantizer is None:
        u = jax.random.uniform(key, x.shape, x.dtype)
        return (x + u) / levels, jnp.zeros(x.shape[0], x.dtype)
    eps = jax.random.normal(key, x.shape, x.dtype)
    u, log_q = jax.vmap(dequantizer.sample_and_log_prob)(x, eps)
    return (x + u) / levels, log_q


@functools.partial(jax.jit, static_argnames="levels")
def dequantization_bound(model, key, x, levels: int, dequantizer=None):
    """One-sample bound per image, ``log p(y) - log q(u|x)`` (N,), nats of the continuous model.

    ``bits_per_dim(bound, D, levels)`` turns it into bits per dimension of the discrete images.
    """
    y, log_q = dequantize(key, x, levels, dequantizer)
    return jax.vmap(model.log_prob_one)(y) - log_q


def importance_weighted_bound(model, key, x, levels: int, dequantizer=None, k: int = 16):
    """``log (1/K) sum_k p(y_k) / q(u_k|x)`` per image (N,): tighter than the bound as ``K`` grows.

    ``K`` calls of the compiled :func:`dequantization_bound` (no extra compilation).
    """
    terms = jnp.stack([dequantization_bound(model, kk, x, positive_int(levels, "levels"), dequantizer)
                       for kk in jax.random.split(key, positive_int(k, "k"))])
    return jax.scipy.special.logsumexp(terms, axis=0) - math.log(k)


def bits_per_dim(log_p, dim: int, levels: int = 1) -> tuple[float, float]:
    """``-(mean log_p - D log L) / (D ln 2)`` and its standard error, from per-image ``log_p`` (N,).

    ``log_p``: nats of a continuous model on data rescaled to ``[0, 1)^D`` (a dequantisation
    bound, or an exact density); ``levels=L`` converts it to the discrete images, whose cells have
    volume ``L^-D``. With ``levels=1``, ``log_p`` is already a log-probability of the discrete data.
    """
    dim, levels = positive_int(dim, "dim"), positive_int(levels, "levels")
    log_p = np.asarray(log_p, np.float64).reshape(-1)
    if log_p.size == 0 or np.isnan(log_p).any():
        raise ValueError(f"log_p must be a non-empty array of per-image log-likelihoods without NaN, got {log_p.size} values.")
    b = -(log_p - dim * math.log(levels)) / (dim * math.log(2))
    se = float(np.std(b, ddof=1) / math.sqrt(b.size)) if b.size > 1 else float("nan")
    return float(np.mean(b)), se
