"""Elementwise bijections: ``y_i = g(x_i)``, so the Jacobian is diagonal and
``log|det J| = sum_i log|g'(x_i)|`` costs O(D).

Each class documents Forward / Inverse / log-det. Parameters are unconstrained
(positivity via ``exp``) and the ``identity(dim)`` constructor gives the identity map.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax.nn import softplus

from .bijection import Bijection, static

__all__ = ["Shift", "Scale", "Affine", "Exp", "Softplus", "Sigmoid", "Logit", "Tanh", "LeakyReLU",
           "SmoothLeakyReLU"]


def _sum(a):
    return jnp.sum(a, axis=-1)


def _outside(y, inside, x_fn, log_det_fn):
    """Inverse of a map whose range is ``inside(y)``: points outside get ``log_det = -inf``
    (zero density) and a finite placeholder ``x``. The double ``where`` keeps gradients finite."""
    ok = inside(y)
    x = x_fn(jnp.where(ok, y, _SAFE_Y))
    return jnp.where(ok, x, 0.0), jnp.where(jnp.all(ok), log_det_fn(x), -jnp.inf)


_SAFE_Y = 0.5  # lies inside every range below: (0, inf), (0, 1), (-1, 1)


class Shift(Bijection):
    """``y = x + shift``.  Forward/inverse log-det: 0 (volume preserving).

    ``shift``: (D,).

    References: Papamakarios et al. (2021), "Normalizing Flows for Probabilistic Modeling and Inference", JMLR, sec. 3.
    """

    shift: jnp.ndarray

    @property
    def dim(self) -> int:
        return self.shift.shape[-1]

    @classmethod
    def identity(cls, dim: int) -> "Shift":
        return cls(jnp.zeros(dim))

    def forward_and_log_det(self, x):
        return x + self.shift, jnp.zeros((), x.dtype)

    def inverse_and_log_det(self, y):
        return y - self.shift, jnp.zeros((), y.dtype)


class Scale(Bijection):
    """``y = scale * x`` with any non-zero ``scale`` (negative values flip the axis).

    log-det: ``sum log|scale|``; inverse ``x = y / scale`` with log-det ``-sum log|scale|``.
    ``scale``: (D,). A zero entry is not invertible; use :class:`Affine` (``exp``-parametrised)
    when the scale is learned.

    References: Papamakarios et al. (2021), JMLR, sec. 3.
    """

    scale: jnp.ndarray

    @property
    def dim(self) -> int:
        return self.scale.shape[-1]

    @classmethod
    def identity(cls, dim: int) -> "Scale":
        return cls(jnp.ones(dim))

    def forward_and_log_det(self, x):
        return self.scale * x, _sum(jnp.log(jnp.abs(self.scale)))

    def inverse_and_log_det(self, y):
        return y / self.scale, -_sum(jnp.log(jnp.abs(self.scale)))


class Affine(Bijection):
    """``y = exp(log_scale) * x + shift`` — a learnable, always-invertible affine map.

    log-det: ``sum log_scale``; inverse ``x = (y - shift) * exp(-log_scale)``.
    ``shift``, ``log_scale``: (D,), unconstrained.

    References: Papamakarios et al. (2021), JMLR, sec. 3.
    """

    shift: jnp.ndarray
    log_scale: jnp.ndarray

    @property
    def dim(self) -> int:
        return self.shift.shape[-1]

    @classmethod
    def identity(cls, dim: int) -> "Affine":
        return cls(jnp.zeros(dim), jnp.zeros(dim))

    def forward_and_log_det(self, x):
        return x * jnp.exp(self.log_scale) + self.shift, _sum(self.log_scale)

    def inverse_and_log_det(self, y):
        return (y - self.shift) * jnp.exp(-self.log_scale), -_sum(self.log_scale)


class Exp(Bijection):
    """``y = exp(x)``: R -> (0, inf).  log-det ``sum x``; inverse ``x = log y``, log-det ``-sum log y``.

    ``Transformed(Normal, Exp())`` is the LogNormal distribution. Inverse of ``y <= 0``: log-det
    ``-inf`` (zero density).

    References: Jang (2018), "Normalizing Flows Tutorial, Part 1" (Exp -> LogNormal).
    """

    def forward_and_log_det(self, x):
        return jnp.exp(x), _sum(x)

    def inverse_and_log_det(self, y):
        return _outside(y, lambda v: v > 0, jnp.log, lambda x: -_sum(x))


class Softplus(Bijection):
    """``y = log(1 + e^x)``: R -> (0, inf) (inverse of ``y <= 0``: log-det ``-inf``).

    log-det ``sum log sigmoid(x) = -sum softplus(-x)``; inverse ``x = y + log(-expm1(-y))``.

    References: Papamakarios et al. (2021), JMLR, sec. 3.
    """

    def forward_and_log_det(self, x):
        return softplus(x), -_sum(softplus(-x))

    def inverse_and_log_det(self, y):
        return _outside(y, lambda v: v > 0, lambda v: v + jnp.log(-jnp.expm1(-v)), lambda x: _sum(softplus(-x)))


def _sigmoid_log_det(x):
    # log sigma'(x) = log sigma(x) + log sigma(-x) = -softplus(-x) - softplus(x)
    return -_sum(softplus(-x) + softplus(x))


class Sigmoid(Bijection):
    """``y = 1 / (1 + e^-x)``: R -> (0, 1) (inverse outside (0, 1): log-det ``-inf``).

    log-det ``-sum [softplus(x) + softplus(-x)]``; inverse ``x = log y - log(1 - y)``.
    In float32 ``y`` rounds to 1 for ``x`` above ~17, so the inverse is exact only inside that range.

    References: Dinh, Sohl-Dickstein & Bengio (2017), RealNVP (logit pre-processing).
    """

    def forward_and_log_det(self, x):
        return 1.0 / (1.0 + jnp.exp(-x)), _sigmoid_log_det(x)

    def inverse_and_log_det(self, y):
        return _outside(y, lambda v: (v > 0) & (v < 1), lambda v: jnp.log(v) - jnp.log1p(-v),
                        lambda x: -_sigmoid_log_det(x))


class Logit(Bijection):
    """``y = log x - log(1 - x)``: (0, 1) -> R, the inverse of :class:`Sigmoid`.

    log-det ``sum [softplus(y) + softplus(-y)]`` evaluated at the output ``y``.

    References: Dinh, Sohl-Dickstein & Bengio (2017), RealNVP (logit pre-processing).
    """

    def forward_and_log_det(self, x):
        return Sigmoid().inverse_and_log_det(x)

    def inverse_and_log_det(self, y):
        return Sigmoid().forward_and_log_det(y)


class Tanh(Bijection):
    """``y = tanh x``: R -> (-1, 1) (inverse outside (-1, 1): log-det ``-inf``).

    log-det ``sum log(1 - tanh^2 x) = sum 2 (log 2 - x - softplus(-2x))`` (stable for large |x|);
    inverse ``x = atanh y``. Saturates: in float32 ``tanh x`` rounds to ±1 for |x| above ~8.

    References: Papamakarios et al. (2021), JMLR, sec. 3.
    """

    def forward_and_log_det(self, x):
        return jnp.tanh(x), _sum(2.0 * (jnp.log(2.0) - x - softplus(-2.0 * x)))

    def inverse_and_log_det(self, y):
        return _outside(y, lambda v: jnp.abs(v) < 1, jnp.arctanh,
                        lambda x: -_sum(2.0 * (jnp.log(2.0) - x - softplus(-2.0 * x))))


class LeakyReLU(Bijection):
    """PReLU: ``y = x`` for ``x >= 0`` and ``y = alpha * x`` for ``x < 0``, per dimension.

    ``alpha = exp(log_slope)`` > 0 is learnable (``log_slope``: (D,); 0 is the identity).
    log-det ``sum_{i: x_i < 0} log alpha_i``; inverse divides the negative part by ``alpha``.

    References: Jang (2018), "Normalizing Flows Tutorial, Part 1" (PReLU bijector).
    """

    log_slope: jnp.ndarray

    @property
    def dim(self) -> int:
        return self.log_slope.shape[-1]

    @classmethod
    def identity(cls, dim: int) -> "LeakyReLU":
        return cls(jnp.zeros(dim))

    @classmethod
    def with_slope(cls, slope, dim: int) -> "LeakyReLU":
        """A PReLU whose every dimension starts with the same slope ``slope`` > 0."""
        if not slope > 0:
            raise ValueError(f"LeakyReLU slope must be > 0 to be invertible, got {slope}.")
        return cls(jnp.full((dim,), jnp.log(slope)))

    def forward_and_log_det(self, x):
        neg = x < 0
        y = jnp.where(neg, x * jnp.exp(self.log_slope), x)
        return y, _sum(jnp.where(neg, self.log_slope, 0.0))

    def inverse_and_log_det(self, y):
        neg = y < 0
        x = jnp.where(neg, y * jnp.exp(-self.log_slope), y)
        return x, -_sum(jnp.where(neg, self.log_slope, 0.0))


class SmoothLeakyReLU(Bijection):
    """PReLU whose slope ramps linearly from ``alpha`` to 1 over ``[-delta, delta]`` (C^1).

    ``g(u) = alpha u`` for ``u <= -delta``, ``u`` for ``u >= delta``, and in between, with
    ``w = u + delta``, ``g = -alpha delta + alpha w + (1 - alpha) w^2 / (4 delta)``, so the slope
    ``g'(u) = alpha + (1 - alpha) w / (2 delta)`` is continuous (chapter 4: a PReLU's density jumps
    at the kink and autodiff misses that term of the gradient; this one does not jump). Forward
    log-det ``sum_i log g'(u_i)``; inverse: the stable root ``w = 2c / (alpha + sqrt(alpha^2 +
    (1 - alpha) c / delta))``, ``c = y + alpha delta``. ``log_slope`` (D,): ``alpha = exp(log_slope)``,
    0 is the identity; ``delta`` > 0: static half-width of the ramp.

    References: this course, chapter 4 (a C^1 PReLU).
    """

    log_slope: jnp.ndarray
    delta: float = static(default=0.5)

    @property
    def dim(self) -> int:
        return self.log_slope.shape[-1]

    def __post_init__(self):
        if not self.delta > 0:
            raise ValueError(f"SmoothLeakyReLU delta must be > 0 (delta -> 0 is a plain LeakyReLU), got {self.delta}.")

    @classmethod
    def identity(cls, dim: int, delta: float = 0.5) -> "SmoothLeakyReLU":
        return cls(jnp.zeros(dim), delta)

    def _log_slope_at(self, w, a):
        return jnp.log(a + (1 - a) * w / (2 * self.delta))

    def forward_and_log_det(self, u):
        a, dl = jnp.exp(self.log_slope), self.delta
        w = jnp.clip(u + dl, 0.0, 2 * dl)
        middle = -a * dl + a * w + (1 - a) * w**2 / (4 * dl)
        y = jnp.where(u <= -dl, a * u, jnp.where(u >= dl, u, middle))
        return y, _sum(self._log_slope_at(w, a))

    def inverse_and_log_det(self, y):
        a, dl = jnp.exp(self.log_slope), self.delta
        c = jnp.clip(y, -a * dl, dl) + a * dl  # clip: keeps the unused branch finite
        w = 2 * c / (a + jnp.sqrt(a**2 + (1 - a) * c / dl))
        u = jnp.where(y <= -a * dl, y / a, jnp.where(y >= dl, y, w - dl))
        return u, -_sum(self._log_slope_at(w, a))
