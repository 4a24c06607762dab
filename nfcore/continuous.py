"""Continuous normalizing flows: ``dx/dt = v(x, t)``, ``d log|det J|/dt = tr(dv/dx)``.

The flow map ``f`` takes ``z = x(0)`` (base) to ``x = x(1)`` (data); its log-det is the
integrated divergence of the velocity field (the instantaneous change of variables), so
``log q(x(1)) = log p(x(0)) - int_0^1 tr(dv/dx)(x(t), t) dt``. ``ContinuousFlow`` integrates the
state and the log-det together with RK4 (``nfcore.ode``) and is a ``Bijection``: put it in
``Transformed(Normal(D), flow)`` for ``log_prob`` and ``sample``. Two ways to train it:
``nf.fit`` (maximum likelihood through the solver, as FFJORD) and ``fit_flow_matching``
(regress ``v`` on the straight path from noise to data; no ODE solved while training).

References: R. T. Q. Chen et al. (2018), Neural ODEs; W. Grathwohl et al. (2019), FFJORD;
Y. Lipman et al. (2023), Flow Matching; X. Liu et al. (2023), Rectified Flow.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .bijection import Bijection, pytree, static
from .distributions import Normal, Transformed
from .nn import MLP
from .ode import rk4
from .training import minibatches, train
from .validate import check_batch, int_tuple, positive_int

__all__ = ["VelocityField", "LinearField", "ContinuousFlow", "flow_matching_loss", "fit_flow_matching"]


@pytree
class VelocityField:
    """``v(x, t) = MLP([x, t])``: ``(D,), () -> (D,)``; last layer zero, so the flow starts as the identity."""

    net: MLP

    @classmethod
    def init(cls, key, dim, *, hidden=(64, 64), activation="silu") -> "VelocityField":
        dim = positive_int(dim, "dim")
        return cls(MLP.init(key, (dim + 1, *int_tuple(hidden, "hidden"), dim), activation))

    @property
    def dim(self) -> int:
        return self.net.weights[-1].shape[1]

    def __call__(self, x, t):
        return self.net(jnp.concatenate([x, jnp.reshape(t, (1,)).astype(x.dtype)]))


@pytree
class LinearField:
    """``v(x, t) = A x + b``, whose flow is known: ``x(1) = e^A z + A^-1 (e^A - I) b``, log-det ``tr A``."""

    matrix: jnp.ndarray
    shift: jnp.ndarray

    @property
    def dim(self) -> int:
        return self.shift.shape[0]

    def __call__(self, x, t):
        return self.matrix @ x + self.shift


class ContinuousFlow(Bijection):
    """``x = f(z)``: ``dx/dt = field(x, t)`` from ``t = 0`` to ``1`` by ``steps`` RK4 steps.

    ``field``: a pytree callable ``field(x, t) -> (D,)`` with a ``dim`` (``VelocityField``,
    ``LinearField``). Forward: ``log|det J_f(z)| = int_0^1 tr(dv/dx) dt``, integrated alongside
    ``x`` (exact trace: D forward-mode passes, ``jax.jvp``). Inverse: the same ODE from ``t = 1`` back to ``0``,
    log-det ``-int_0^1 tr(dv/dx) dt``. With ``key``, the trace is Hutchinson's estimate
    ``e^T (dv/dx) e`` with one Rademacher probe ``e`` held fixed along the path (unbiased, one
    pass). ``nfe = 4 * steps`` field evaluations per sample. The maps are those of the discrete
    solver: forward and inverse agree with each other and with the true flow to O(steps^-4).
    """

    field: object
    steps: int = static(default=16)

    def __post_init__(self):
        object.__setattr__(self, "steps", positive_int(self.steps, "steps (RK4 steps from t=0 to 1)"))
        if not callable(self.field):
            raise ValueError(f"field must be callable as field(x, t) -> (D,), got {type(self.field).__name__}.")

    @property
    def dim(self) -> int:
        return self.field.dim

    @property
    def nfe(self) -> int:
        """Field evaluations per sample for one pass (RK4: 4 per step)."""
        return 4 * self.steps

    def velocity_and_trace(self, x, t, probe=None):
        """``v(x, t)`` and ``tr(dv/dx)`` for one sample; with a ``probe`` vector ``e``, Hutchinson's
        ``e^T (dv/dx) e`` instead (unbiased when ``E[e e^T] = I``; one pass instead of D)."""
        f = lambda y: self.field(y, t)
        if probe is not None:
            v, jv = jax.jvp(f, (x,), (probe.astype(x.dtype),))
            return v, jnp.dot(probe.astype(x.dtype), jv)
        # exact: v and the D columns of dv/dx in one vmapped forward-mode pass
        tangents = jnp.eye(x.shape[0], dtype=x.dtype)
        v, columns = jax.vmap(lambda e: jax.jvp(f, (x,), (e,)), out_axes=(None, 0))(tangents)
        return v, jnp.trace(columns)

    def _integrate(self, x, t0, t1, key):
        probe = None if key is None else jax.random.rademacher(key, x.shape, dtype=x.dtype)
        return _solve(self, x, probe, t0, t1)

    def forward_and_log_det(self, z, key=None):
        return self._integrate(z, 0.0, 1.0, key)

    def inverse_and_log_det(self, x, key=None):
        return self._integrate(x, 1.0, 0.0, key)


@functools.partial(jax.jit, static_argnames=("t0", "t1"))
def _solve(flow, x, probe, t0, t1):
    # jitted so that eager calls (tests, exploration) compile once per model structure
    rhs = lambda state, t: flow.velocity_and_trace(state[0], t, probe)
    return rk4(rhs, (x, jnp.zeros((), x.dtype)), t0, t1, flow.steps)


def flow_matching_loss(field, batch):
    """``E |v(x_t, t) - (x1 - x0)|^2`` with ``x_t = (1 - t) x0 + t x1`` (straight-line paths).

    ``batch = (x0, x1, t)``: ``(n, D), (n, D), (n,)``; ``field`` is a velocity field or a model
    that holds one (``Transformed(Normal, ContinuousFlow)``). Returns the batch mean.
    """
    if isinstance(field, Transformed):
        field = field.bijection
    if isinstance(field, ContinuousFlow):
        field = field.field
    x0, x1, t = batch
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    v = jax.vmap(field)(xt, t)
    return jnp.mean(jnp.sum((v - (x1 - x0)) ** 2, axis=-1))


def fit_flow_matching(key, model, data, *, steps: int, batch_size: int = 512, **train_kwargs):
    """Conditional flow matching: ``nf.train`` with :func:`flow_matching_loss` on batches of
    ``x0 ~ N(0, I)``, ``x1 ~ data``, ``t ~ U(0, 1)`` (Lipman et al. 2023; Liu et al. 2023).

    ``model``: ``Transformed(Normal(D), ContinuousFlow(...))`` (standard normal base: the paths
    start at its samples). ``data``: an ``(N, D)`` array (drawn with replacement) or a sampler
    ``data(key, n) -> (n, D)``. Other keywords go to ``nf.train``; returns its result, whose
    ``model`` is the trained distribution. No ODE is solved during training.
    """
    if not (isinstance(model, Transformed) and isinstance(model.bijection, ContinuousFlow)):
        raise ValueError("model must be Transformed(Normal(D), ContinuousFlow(...)); "
                         f"got {type(model).__name__}.")
    base = model.base
    if not (isinstance(base, Normal) and base.loc is None and base.log_scale is None):
        raise ValueError("fit_flow_matching needs a standard normal base, Normal(D): the paths start at N(0, I).")
    n, dim = positive_int(batch_size, "batch_size"), model.dim
    if callable(data):
        draw = lambda k: data(k, n)
    else:
        data = check_batch(data, dim, "fit_flow_matching data")
        if data.ndim != 2:
            raise ValueError(f"data must have shape (N, {dim}) or be a sampler, got shape {data.shape}.")
        draw = minibatches(jnp.asarray(data), n)

    def batches(k):
        k0, k1, kt = jax.random.split(k, 3)
        x1 = draw(k1)
        return jax.random.normal(k0, x1.shape, x1.dtype), x1, jax.random.uniform(kt, (n,), x1.dtype)

    return train(key, model, flow_matching_loss, batches, steps=steps, **train_kwargs)
