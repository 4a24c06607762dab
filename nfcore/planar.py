"""Planar and radial flows: ``f(z) = z + u_hat h(w^T z + b)`` and ``f(z) = z + beta_hat (z - z0) / (alpha + |z - z0|)``.

The two classic layers for variational inference (Rezende & Mohamed, 2015), each with its
invertibility constraint built into the parametrisation, so every parameter value is a bijection:

* ``Planar``: ``u_hat = u + (m(w^T u) - w^T u) w / |w|^2`` with ``m(a) = -1 + softplus(a)``, so
  ``w^T u_hat = m(w^T u) > -1`` (floored at ``-1 + 1e-6``) and ``det J = 1 + h'(w^T z + b) w^T u_hat > 0`` (``h = tanh``).
  The inverse is a 1-D monotone root along ``w``, solved by safeguarded Newton (bisection inside a
  shrinking bracket) for a fixed number of steps, then one differentiable Newton step.
* ``Radial``: ``alpha = softplus(raw_alpha) > 0`` and ``beta_hat = -alpha + softplus(beta) > -alpha``.
  The inverse radius solves a quadratic in closed form.

Each layer is cheap in both directions (O(D)); a fresh ``init`` is the identity map.

References: D. J. Rezende, S. Mohamed (2015), Variational Inference with Normalizing Flows, ICML,
Sec. 4.1 and Appendix A.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.nn import softplus

from .bijection import Bijection

__all__ = ["Planar", "Radial"]

_TINY = 1e-30  # guards |w|^2 = 0 and |z - z0| = 0 (a layer with w = 0 is a translation)
_M_MIN = -1.0 + 1e-6  # floor of w^T u_hat
_A_STAR = math.log(math.e - 1.0)  # m(a) = 0 at a = log(e - 1): u = a* w / |w|^2 gives u_hat = 0


def _norm(v):
    return jnp.sqrt(jnp.sum(v**2) + _TINY)


class Planar(Bijection):
    """``x = z + u_hat tanh(w^T z + b)``, ``log|det J| = log(1 + (1 - tanh^2(w^T z + b)) w^T u_hat)``.

    Forward: closed form. Inverse: with ``a = w^T z + b`` and ``m = w^T u_hat > -1``,
    ``w^T x + b = a + m tanh(a)`` is strictly increasing in ``a``; its root lies in
    ``[c - |m|, c + |m|]`` (``c = w^T x + b``); then ``z = x - u_hat tanh(a)``. Inverse log-det:
    minus the forward one at that ``z``. ``u``, ``w``: (D,); ``b``: ().

    >>> import jax, jax.numpy as jnp
    >>> layer = Planar.init(jax.random.key(0), 2)   # the identity
    >>> bool(jnp.allclose(layer.forward(jnp.ones(2)), 1.0))
    True
    """

    u: jnp.ndarray
    w: jnp.ndarray
    b: jnp.ndarray

    NEWTON_STEPS = 40  # safeguarded steps; the bracket also halves at least every other step

    @classmethod
    def init(cls, key, dim: int, scale: float = 1.0) -> "Planar":
        """The identity (``u_hat = 0``) with a random direction ``w ~ N(0, scale^2 I / D)``."""
        w = scale * jax.random.normal(key, (int(dim),)) / math.sqrt(dim)
        return cls(_A_STAR * w / jnp.sum(w**2), w, jnp.zeros(()))

    @property
    def dim(self) -> int:
        return self.w.shape[-1]

    def constrained(self):
        """``(m, u_hat)`` with ``m = w^T u_hat = -1 + softplus(w^T u)``, kept ``>= -1 + 1e-6`` so that
        rounding never reaches the boundary (``softplus`` underflows below ``w^T u ~ -17`` in float32)."""
        wu = jnp.dot(self.w, self.u)
        m = jnp.maximum(-1.0 + softplus(wu), _M_MIN)
        return m, self.u + (m - wu) * self.w / jnp.maximum(jnp.sum(self.w**2), _TINY)

    def u_hat(self):
        """The constrained ``u_hat``, with ``w^T u_hat = -1 + softplus(w^T u) > -1``."""
        return self.constrained()[1]

    def _log_det(self, a, m):
        return jnp.log1p((1.0 - jnp.tanh(a) ** 2) * m)

    def forward_and_log_det(self, z):
        m, u_hat = self.constrained()
        a = jnp.dot(self.w, z) + self.b
        return z + u_hat * jnp.tanh(a), self._log_det(a, m)

    def inverse_and_log_det(self, x):
        m, u_hat = self.constrained()
        c = jnp.dot(self.w, x) + self.b
        g = lambda a: a + m * jnp.tanh(a) - c        # increasing, g(lo) <= 0 <= g(hi)
        dg = lambda a: 1.0 + m * (1.0 - jnp.tanh(a) ** 2)

        def step(_, state):
            a, lo, hi = state
            ga = g(a)
            lo, hi = jnp.where(ga < 0, a, lo), jnp.where(ga < 0, hi, a)
            newton = a - ga / dg(a)
            inside = (newton > lo) & (newton < hi)
            return jnp.where(inside, newton, 0.5 * (lo + hi)), lo, hi

        lo, hi = c - jnp.abs(m), c + jnp.abs(m)
        a, _, _ = jax.lax.fori_loop(0, self.NEWTON_STEPS, step, (c, lo, hi))
        a = jax.lax.stop_gradient(a)
        a = a - g(a) / dg(a)  # one Newton step at the root: exact first derivatives (implicit function)
        return x - u_hat * jnp.tanh(a), -self._log_det(a, m)


class Radial(Bijection):
    """``x = z + beta_hat (z - z0) / (alpha + r)``, ``r = |z - z0|``, with
    ``log|det J| = (D - 1) log(1 + beta_hat h) + log(1 + beta_hat h - beta_hat r h^2)``, ``h = 1/(alpha + r)``.

    ``alpha = softplus(raw_alpha)``, ``beta_hat = -alpha + softplus(beta)``. Inverse: the radius
    ``rho = |x - z0| = r (alpha + r + beta_hat) / (alpha + r)`` gives
    ``r^2 + (alpha + beta_hat - rho) r - alpha rho = 0`` (one root ``r >= 0``), then
    ``z = z0 + (x - z0) / (1 + beta_hat h(r))``. ``z0``: (D,); ``raw_alpha``, ``beta``: ().
    """

    z0: jnp.ndarray
    raw_alpha: jnp.ndarray
    beta: jnp.ndarray

    @classmethod
    def init(cls, key, dim: int, scale: float = 1.0) -> "Radial":
        """The identity (``alpha = log 2``, ``beta_hat = 0``) centred at ``z0 ~ N(0, scale^2 I)``."""
        return cls(scale * jax.random.normal(key, (int(dim),)), jnp.zeros(()), jnp.zeros(()))

    @property
    def dim(self) -> int:
        return self.z0.shape[-1]

    def _alpha_beta(self):
        alpha = softplus(self.raw_alpha)
        return alpha, -alpha + softplus(self.beta)

    def _log_det(self, r, alpha, beta):
        h = 1.0 / (alpha + r)
        return (self.dim - 1) * jnp.log1p(beta * h) + jnp.log1p(beta * h - beta * r * h**2)

    def forward_and_log_det(self, z):
        alpha, beta = self._alpha_beta()
        r = _norm(z - self.z0)
        return z + beta * (z - self.z0) / (alpha + r), self._log_det(r, alpha, beta)

    def inverse_and_log_det(self, x):
        alpha, beta = self._alpha_beta()
        rho = _norm(x - self.z0)
        q = alpha + beta - rho
        disc = jnp.sqrt(q**2 + 4.0 * alpha * rho)
        # the root without cancellation: 2 alpha rho / (q + disc) when q >= 0, else (disc - q) / 2
        r = jnp.where(q >= 0, 2.0 * alpha * rho / jnp.where(q >= 0, q + disc, 1.0), 0.5 * (disc - q))
        z = self.z0 + (x - self.z0) / (1.0 + beta / (alpha + r))
        return z, -self._log_det(r, alpha, beta)
