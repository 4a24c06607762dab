"""Checks shared by the test-suite and the chapters: every bijection against autodiff.

``check_bijection(b, x)`` compares, at every row of ``x`` (N, D) and in one compiled call, the
layer's log-dets with ``log|det|`` of the Jacobian that :func:`jax.jacfwd` computes from its own
outputs, and runs the round trip. Use float64 (``jax.config.update("jax_enable_x64", True)``)
to check to ~1e-10.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["autodiff_log_det", "check_bijection", "randomise", "n_params"]


def autodiff_log_det(f, x):
    """``log|det J_f(x)|`` from the dense autodiff Jacobian of ``f: (D,) -> (D,)`` (O(D^3))."""
    return jnp.linalg.slogdet(jax.jacfwd(f)(x))[1]


@jax.jit
def _errors(b, x):
    def one(x):
        y, ld = b.forward_and_log_det(x)
        x_back, ild = b.inverse_and_log_det(y)
        return jnp.stack([jnp.abs(ld - autodiff_log_det(b.forward, x)),
                          jnp.abs(ild - autodiff_log_det(b.inverse, y)),
                          jnp.abs(ild + ld),
                          jnp.max(jnp.abs(x_back - x) / (1 + jnp.abs(x)))])

    return jax.vmap(one)(x)


def check_bijection(b, x, tol: float = 1e-10) -> dict:
    """Assert, at every row of ``x`` (N, D): forward log-det = autodiff, inverse log-det = autodiff,
    inverse log-det = -forward log-det, and ``f^-1(f(x)) = x`` (relative to ``1 + |x|``), each within
    ``tol`` (scaled by ``1 + |log-det|`` for log-dets). Returns the worst error of each check."""
    x = jnp.atleast_2d(jnp.asarray(x))
    errs = np.asarray(_errors(b, x))
    scale = 1.0 + np.abs(np.asarray(jax.vmap(lambda v: b.forward_and_log_det(v)[1])(x)))
    worst = {"forward_log_det": float(np.max(errs[:, 0] / scale)), "inverse_log_det": float(np.max(errs[:, 1] / scale)),
             "log_det_sum": float(np.max(errs[:, 2] / scale)), "round_trip": float(np.max(errs[:, 3]))}
    bad = {k: v for k, v in worst.items() if not v <= tol}  # `not <=` also catches NaN
    if bad:
        raise AssertionError(f"{type(b).__name__}: errors above {tol:g}: {bad}")
    return worst


@functools.partial(jax.jit, static_argnums=(1, 2))
def _normal(key, n: int, dtype):
    return jax.random.normal(key, (n,), dtype)


def randomise(tree, key, scale: float = 0.3):
    """``tree`` with ``scale * N(0, 1)`` added to every array leaf (non-identity test parameters).

    Leaf i gets ``jax.random.normal(keys[i], leaf.shape)``, drawn as the first ``leaf.size``
    numbers of a draw whose length is a power of two (the same numbers with JAX's default
    partitionable threefry): one compiled draw per power of two, not one per leaf shape.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for a, k in zip(leaves, keys):
        a = np.asarray(a)
        n = a.size
        z = np.asarray(_normal(k, 1 << max(n - 1, 0).bit_length(), a.dtype))
        out.append(jnp.asarray(a + scale * z[:n].reshape(a.shape)))
    return jax.tree_util.tree_unflatten(treedef, out)


def n_params(tree) -> int:
    """The number of trainable numbers: the total size of the array leaves."""
    return int(sum(np.size(a) for a in jax.tree_util.tree_leaves(tree)))
