"""2-D training targets with an **exact** log-density and a known entropy.

Every target is a :class:`~nfcore.distributions.Distribution` (``log_prob``, ``sample``) with
``entropy`` (nats) and ``entropy_error`` (an upper bound on its numerical error; 0 when exact).
So a trained model ``q`` reports ``KL(p || q) = E_p[log p - log q] = NLL(q) - H(p) >= 0``.

| target | density | entropy |
|---|---|---|
| ``Banana`` | x2 ~ N(0, 4^2), x1 ~ N(x2^2/4, 1) (Jang 2018) | closed form: log(2 pi e) + log 4 |
| ``TwoMoons`` | uniform angle on two half-circle arcs + N(0, s^2 I) noise | 2-D quadrature (stored) |
| ``EightGaussians`` | equal mixture of N(r (cos, sin)(k pi/4), s^2 I) | 2-D quadrature (stored) |
| ``Checkerboard`` | uniform on the 8 dark cells of a 4x4 board on [-4, 4]^2 | exact: log 32 |
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from .bijection import pytree, static
from .distributions import Distribution, map_in_chunks
from .validate import finite_float, positive_float

__all__ = ["Banana", "TwoMoons", "EightGaussians", "Checkerboard", "TARGETS", "entropy_by_quadrature"]

_LOG2PI = math.log(2 * math.pi)


def _normal_logpdf(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd) - 0.5 * _LOG2PI


@pytree
class Banana(Distribution):
    """Jang's banana: ``x2 ~ N(0, sd2^2)``, ``x1 | x2 ~ N(x2^2 / 4, 1)``.

    ``log p(x) = log N(x2; 0, sd2) + log N(x1; x2^2/4, 1)``; entropy ``H(x2) + H(x1 | x2) =
    1/2 log(2 pi e sd2^2) + 1/2 log(2 pi e)`` exactly (the conditional's entropy does not depend on x2).
    """

    sd2: float = static(default=4.0)
    dim = 2

    def __post_init__(self):
        object.__setattr__(self, "sd2", positive_float(self.sd2, "sd2"))
    entropy_error = 0.0

    @property
    def entropy(self) -> float:
        return 0.5 * math.log(2 * math.pi * math.e * self.sd2**2) + 0.5 * math.log(2 * math.pi * math.e)

    def log_prob_one(self, x):
        return _normal_logpdf(x[1], 0.0, self.sd2) + _normal_logpdf(x[0], x[1] ** 2 / 4.0, 1.0)

    def _sample(self, key, n):
        k1, k2 = jax.random.split(key)
        x2 = self.sd2 * jax.random.normal(k2, (n,))
        x1 = x2**2 / 4.0 + jax.random.normal(k1, (n,))
        return jnp.stack([x1, x2], axis=1)


# Gauss-Legendre nodes on the arc parameter t in [0, pi] for the moons' quadrature.
_GL_T, _GL_W = np.polynomial.legendre.leggauss(256)


@pytree
class TwoMoons(Distribution):
    """Two interleaved half circles with Gaussian noise, as a *density*:

    ``p(x) = 1/2 sum_{k=1,2} (1/pi) int_0^pi N(x; c_k(t), noise^2 I) dt`` with
    ``c_1(t) = (cos t, sin t)`` and ``c_2(t) = (1 - cos t, 1/2 - sin t)``.
    ``log_prob`` integrates over ``t`` with 256-point Gauss-Legendre (node spacing ~0.012 << noise:
    relative error below 1e-10 for noise >= 0.05). Samples: ``t ~ U(0, pi)``, a moon at random, noise.
    Entropy for the default ``noise = 0.1`` by 2-D quadrature (``entropy_by_quadrature``, 2000^2 grid
    on [-2, 3] x [-1.7, 2.2]); stated error bound from halving the grid step.
    """

    noise: float = static(default=0.1)
    dim = 2

    def __post_init__(self):
        object.__setattr__(self, "noise", positive_float(self.noise, "noise"))
    entropy_error = 1e-8

    @property
    def entropy(self) -> float:
        if self.noise != 0.1:
            raise ValueError("the stored entropy is for noise=0.1; compute others with entropy_by_quadrature(target).")
        return _TWO_MOONS_ENTROPY

    def log_prob_one(self, x):
        t = (jnp.asarray(_GL_T, x.dtype) + 1.0) * (math.pi / 2)
        logw = jnp.log(jnp.asarray(_GL_W, x.dtype) * (math.pi / 2) / math.pi)  # (1/pi) dt weights
        c1 = jnp.stack([jnp.cos(t), jnp.sin(t)], 1)
        c2 = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], 1)
        s = self.noise

        def arc(c):
            return logsumexp(logw + jnp.sum(_normal_logpdf(x, c, s), axis=1))

        return jnp.logaddexp(arc(c1), arc(c2)) - math.log(2.0)

    def _sample(self, key, n):
        kt, km, kn = jax.random.split(key, 3)
        t = jax.random.uniform(kt, (n,), minval=0.0, maxval=math.pi)
        upper = jax.random.bernoulli(km, 0.5, (n,))
        c = jnp.where(upper[:, None], jnp.stack([jnp.cos(t), jnp.sin(t)], 1),
                      jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], 1))
        return c + self.noise * jax.random.normal(kn, (n, 2))


@pytree
class EightGaussians(Distribution):
    """Equal mixture of 8 isotropic Gaussians ``N(radius (cos k pi/4, sin k pi/4), sd^2 I)``.

    Entropy: if the components did not overlap it would be ``log 8 + log(2 pi e sd^2)``; the
    stored value (default radius 4, sd 0.5) is by 2-D quadrature, error bound stated.
    """

    radius: float = static(default=4.0)
    sd: float = static(default=0.5)
    dim = 2

    def __post_init__(self):
        object.__setattr__(self, "radius", finite_float(self.radius, "radius"))
        object.__setattr__(self, "sd", positive_float(self.sd, "sd"))
    entropy_error = 1e-8

    @property
    def entropy(self) -> float:
        if (self.radius, self.sd) != (4.0, 0.5):
            raise ValueError("the stored entropy is for radius=4, sd=0.5; compute others with entropy_by_quadrature(target).")
        return _EIGHT_GAUSSIANS_ENTROPY

    def centers(self, dtype=jnp.float32):
        a = jnp.arange(8, dtype=dtype) * (math.pi / 4)
        return self.radius * jnp.stack([jnp.cos(a), jnp.sin(a)], 1)

    def log_prob_one(self, x):
        comp = jnp.sum(_normal_logpdf(x, self.centers(x.dtype), self.sd), axis=1)
        return logsumexp(comp) - math.log(8.0)

    def _sample(self, key, n):
        kc, kn = jax.random.split(key)
        k = jax.random.randint(kc, (n,), 0, 8)
        return self.centers()[k] + self.sd * jax.random.normal(kn, (n, 2))


@pytree
class Checkerboard(Distribution):
    """Uniform on the 8 dark cells of a 4 x 4 checkerboard on ``[-4, 4]^2`` (cells of side 2).

    Density ``1/32`` on dark cells, 0 elsewhere (``log_prob = -inf``); entropy ``log 32`` exactly.
    Its discontinuous edges cannot be matched exactly by a smooth flow: the KL floor is > 0.
    """

    dim = 2
    entropy_error = 0.0

    @property
    def entropy(self) -> float:
        return math.log(32.0)

    def log_prob_one(self, x):
        i = jnp.floor((x + 4.0) / 2.0)
        inside = jnp.all((x >= -4.0) & (x < 4.0))
        dark = jnp.mod(i[0] + i[1], 2) == 0
        return jnp.where(inside & dark, -math.log(32.0), -jnp.inf)

    def _sample(self, key, n):
        kc, ku = jax.random.split(key)
        cell = jax.random.randint(kc, (n,), 0, 8)  # 8 dark cells: row r, column 2*(c//... )
        row = cell // 2
        col = 2 * (cell % 2) + (row % 2)
        u = jax.random.uniform(ku, (n, 2))
        return jnp.stack([-4.0 + 2.0 * (col + u[:, 0]), -4.0 + 2.0 * (row + u[:, 1])], 1)


def entropy_by_quadrature(target, xlim, ylim, n: int = 2000, chunk: int = 200_000) -> float:
    """``-sum p log p dx dy`` by the midpoint rule on an ``n x n`` grid (float64 recommended)."""
    xs = np.linspace(*xlim, n + 1)
    ys = np.linspace(*ylim, n + 1)
    xm, ym = (xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2
    X, Y = np.meshgrid(xm, ym)
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    lp_fn = jax.jit(lambda v: map_in_chunks(target.log_prob_one, v))  # bounded memory
    total = 0.0
    for i in range(0, len(pts), chunk):
        lp = np.asarray(lp_fn(jnp.asarray(pts[i:i + chunk])))
        p = np.exp(lp)
        total += float(np.sum(np.where(p > 0, -p * lp, 0.0)))
    return total * (xs[1] - xs[0]) * (ys[1] - ys[0])


# Stored by entropy_by_quadrature in float64 (see tests/test_targets.py for the recomputation).
_TWO_MOONS_ENTROPY = 1.0075848348464  # grids 1000^2, 2000^2, 3000^2 agree to 2e-13
_EIGHT_GAUSSIANS_ENTROPY = 3.5247255302428  # grids 500^2..2000^2 on [-7, 7]^2 agree to 5e-11

TARGETS = {"banana": Banana, "two_moons": TwoMoons, "eight_gaussians": EightGaussians, "checkerboard": Checkerboard}
