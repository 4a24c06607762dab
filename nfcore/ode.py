"""A fixed-step ODE solver: classical Runge-Kutta (RK4) under ``jax.lax.scan``.

``y(t1) ~ rk4(f, y0, t0, t1, steps)`` for ``dy/dt = f(y, t)``, where ``y`` is any pytree of
arrays. Global error O(h^4) with ``h = (t1 - t0) / steps``; ``4 * steps`` evaluations of ``f``.
``t1 < t0`` integrates backwards. Compile time does not grow with ``steps`` (one scanned step),
and ``jax.grad`` differentiates through the discrete steps (discretise-then-optimise).

References: W. Kutta (1901); E. Hairer, S. P. Norsett, G. Wanner (1993), *Solving Ordinary
Differential Equations I*, section II.1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .validate import positive_int

__all__ = ["rk4"]


def rk4(f, y0, t0, t1, steps: int):
    """Integrate ``dy/dt = f(y, t)`` from ``t0`` to ``t1`` in ``steps`` RK4 steps; return ``y(t1)``.

    >>> import jax.numpy as jnp

from .validate import positive_int
    >>> y = rk4(lambda y, t: -y, jnp.ones(1), 0.0, 1.0, 8)   # exp(-1) = 0.3678794...
    >>> round(float(y[0]), 5)
    0.36788
    """
    steps = positive_int(steps, "steps (RK4 steps)")
    h = (t1 - t0) / steps
    add = lambda y, *terms: jax.tree_util.tree_map(lambda a, *b: a + sum(b), y, *terms)
    scale = lambda c, k: jax.tree_util.tree_map(lambda a: c * a, k)

    def step(y, i):
        t = t0 + i * h
        k1 = f(y, t)
        k2 = f(add(y, scale(h / 2, k1)), t + h / 2)
        k3 = f(add(y, scale(h / 2, k2)), t + h / 2)
        k4 = f(add(y, scale(h, k3)), t + h)
        return add(y, scale(h / 6, k1), scale(h / 3, k2), scale(h / 3, k3), scale(h / 6, k4)), None

    y, _ = jax.lax.scan(step, y0, jnp.arange(steps))
    return y
