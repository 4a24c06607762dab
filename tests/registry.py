"""The single list of every bijection in nfcore, each with random non-identity parameters.

Each entry says where its forward input lives (``x_bound``: samples in ``[-x_bound, x_bound]``,
or the open unit interval for ``unit``), and which extreme points the forward / inverse must
survive. ``tests/test_bijections.py`` runs every check on every entry, and a meta-test fails
when nfcore gains a bijection class that is missing here.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import nfcore as nf
from nfcore import ActNorm, MaskedAutoregressive, Planar, Radial, RationalQuadraticSpline
from nfcore.testing import randomise

D = 3


def _rand(key, shape, scale=0.5):
    return scale * jax.random.normal(key, shape)


@dataclasses.dataclass
class Entry:
    name: str
    make: Callable  # key -> bijection (float64 parameters)
    x_bound: float = 50.0  # forward-domain samples in [-x_bound, x_bound] (round trip, 1e5 points)
    unit: bool = False  # forward domain is (0, 1)^D instead
    positive: bool = False  # forward domain is (0, inf)^D
    x_extremes: tuple = (-50.0, 50.0)  # forward inputs that must give finite values and gradients
    y_extremes: tuple = (-50.0, 50.0)  # inverse inputs that must give finite values and gradients
    rtol32: float = 1e-5  # round-trip tolerance in float32 (relative to 1 + |x|)
    dim: int = D  # sample length (image layers need their own, e.g. Squeeze)
    tol64: float = 1e-10  # float64 tolerance of the log-det vs autodiff and of the round trip

    def sample_x(self, key, n, bound=None):
        if self.unit:
            return jax.random.uniform(key, (n, self.dim), minval=1e-3, maxval=1 - 1e-3)
        b = self.x_bound if bound is None else min(bound, self.x_bound)
        if self.positive:
            return jax.random.uniform(key, (n, self.dim), minval=1e-3, maxval=b)
        return jax.random.uniform(key, (n, self.dim), minval=-b, maxval=b)


def _linear(key):
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    base = nf.Linear.identity(D, k5)
    return nf.Linear(_rand(k1, (D, D)), _rand(k2, (D, D)), _rand(k3, (D,), 0.3), _rand(k4, (D,)), base.perm)


def _lowrank(key):
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    b = nf.LowRankAffine.init(k1, D, 2)
    return nf.LowRankAffine(_rand(k2, (D, D), 0.3), _rand(k3, (D,), 0.3), b.V, jnp.abs(_rand(k4, (2,))), _rand(k5, (D,)))


def _affine(key):
    k1, k2 = jax.random.split(key)
    return nf.Affine(_rand(k1, (D,)), _rand(k2, (D,)))


def _prelu(key):
    return nf.LeakyReLU(_rand(key, (D,)) - 1.0)


def _stack(key):
    keys = jax.random.split(key, 3)
    return nf.Stack(jax.vmap(_affine)(keys))


def _coupling(transformer, mask=(True, False, True)):
    def make(key):
        c = nf.Coupling.init(key, mask, hidden=(8, 8), transformer=transformer)
        return randomise(c, jax.random.fold_in(key, 7))
    return make


def _autoregressive(transformer, parallel, order):
    def make(key):
        b = MaskedAutoregressive.init(key, D, hidden=(8, 8), transformer=transformer, order=order, parallel=parallel)
        return randomise(b, jax.random.fold_in(key, 7))
    return make


def _conditioned(key, make):
    """``nf.Conditioned(layer, c)``: a conditional layer with random float64 parameters and a fixed context."""
    layer = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), make(key))
    return nf.Conditioned(randomise(layer, jax.random.fold_in(key, 7)), _rand(jax.random.fold_in(key, 8), (2,), 1.0))


ENTRIES = [
    Entry("Shift", lambda k: nf.Shift(_rand(k, (D,)))),
    Entry("Scale", lambda k: nf.Scale(jnp.array([2.0, -0.5, 1.3]) + _rand(k, (D,), 0.1))),
    Entry("Affine", _affine),
    Entry("Exp", lambda k: nf.Exp(), x_bound=50.0, y_extremes=(1e-30, 1e30)),
    Entry("Softplus", lambda k: nf.Softplus(), y_extremes=(1e-20, 50.0)),
    # sigmoid(x) rounds to 1 in float32 for x above ~17; 1 - y has ~6e-8 resolution, so the
    # float32 round trip is only meaningful for moderate |x|.
    Entry("Sigmoid", lambda k: nf.Sigmoid(), x_bound=6.0, y_extremes=(1e-6, 1 - 1e-6), rtol32=3e-4),
    Entry("Logit", lambda k: nf.Logit(), unit=True, x_extremes=(1e-6, 1 - 1e-6), rtol32=3e-4),
    Entry("Tanh", lambda k: nf.Tanh(), x_bound=4.0, y_extremes=(-1 + 1e-6, 1 - 1e-6), rtol32=3e-4),
    Entry("LeakyReLU", _prelu),
    # delta 0.7 and log-slopes around -1: random points land on both sides of and inside the ramps
    Entry("SmoothLeakyReLU", lambda k: nf.SmoothLeakyReLU(_rand(k, (D,)) - 1.0, 0.7)),
    Entry("Linear", _linear, rtol32=3e-5),
    Entry("LowRankAffine", _lowrank, rtol32=3e-5),
    Entry("Chain", lambda k: nf.Chain([_affine(k), _prelu(jax.random.fold_in(k, 1)), _linear(jax.random.fold_in(k, 2))]), rtol32=3e-5),
    Entry("Invert", lambda k: nf.Invert(_lowrank(k)), rtol32=3e-5),
    Entry("Stack", _stack),
    # |x| up to 50 through random conditioners makes |t| large: float32 cancellation in y - t
    Entry("Coupling-affine", _coupling(nf.transformers.AffineTransformer(3.0)), rtol32=2e-4),
    Entry("Coupling-additive", _coupling(nf.transformers.Additive(), mask=(False, True, True)), rtol32=2e-4),
    # tanh hidden units keep the raw spline parameters O(1) even for |x_a| = 50; a silu
    # conditioner gives raw values ~90 there, i.e. slopes ~1e-7 that no float32 inverse can undo
    Entry("Coupling-spline", lambda k: randomise(nf.Coupling.init(
        k, (True, False, True), hidden=(8, 8), transformer=RationalQuadraticSpline(bins=5, tail_bound=3.0),
        activation="tanh"), jax.random.fold_in(k, 7))),
    Entry("ActNorm", lambda k: ActNorm(_rand(k, (D,)), _rand(jax.random.fold_in(k, 1), (D,)))),
    # autoregressive layers (MAF: sequential forward / one-pass inverse; IAF: the reverse), non-natural orders
    Entry("MAF-affine", _autoregressive(nf.transformers.AffineTransformer(3.0), "inverse", (2, 0, 1)), rtol32=2e-4),
    # IAF's inverse is the ill-conditioned direction here: |J^-1| eps |y| ~ 1e-4 at the worst of 1e5 points
    Entry("IAF-affine", _autoregressive(nf.transformers.AffineTransformer(3.0), "forward", (1, 2, 0)), rtol32=5e-4),
    Entry("MAF-additive", _autoregressive(nf.transformers.Additive(), "inverse", (0, 2, 1)), rtol32=2e-4),
    # chapter 10 (images): the logit pre-processing (forward = sigmoid direction, range around [0, 1]),
    # squeeze on a 2 x 4 x 2 image (its own dim, 16), factor-out of (2, 0) with a coupling inside
    Entry("LogitTransform", lambda k: nf.LogitTransform(0.05), x_bound=6.0, y_extremes=(-0.05, 1.05), rtol32=3e-4),
    Entry("Squeeze", lambda k: nf.Squeeze(2, 4, 2), dim=16),
    Entry("FactorOut", lambda k: nf.FactorOut(randomise(nf.Coupling.init(k, (True, False), hidden=(8,)),
                                                        jax.random.fold_in(k, 7)), (2, 0), 3), rtol32=2e-4),
    # A continuous flow (chapter 11). Its log-det is the RK4-integrated divergence, while the
    # autodiff reference is the Jacobian of the solver's own discrete map, and its inverse is a
    # second RK4 solve backwards: both agree with the exact flow, hence with each other, only to
    # the solver's O(h^4) error (measured ~1e-6 at 16 steps for this field, ~3e-9 at 64), not to
    # round-off. So the float64 checks use 1e-5 here; tests/test_continuous.py checks the
    # convergence order and closed forms.
    Entry("ContinuousFlow", lambda k: nf.ContinuousFlow(randomise(nf.VelocityField.init(
        k, D, hidden=(8, 8), activation="tanh"), jax.random.fold_in(k, 7), 0.5), steps=16),
        rtol32=1e-4, tol64=1e-5),
    # conditional layers (chapter 12): the Jacobian in x for a fixed context c, via nf.Conditioned
    Entry("Coupling-affine-context", lambda k: _conditioned(k, lambda kk: nf.Coupling.init(
        kk, (True, False, True), hidden=(8, 8), context_dim=2)), rtol32=2e-4),
    Entry("MAF-affine-context", lambda k: _conditioned(k, lambda kk: MaskedAutoregressive.init(
        kk, D, hidden=(8, 8), order=(2, 0, 1), context_dim=2)), rtol32=2e-4),
    Entry("IAF-affine-context", lambda k: _conditioned(k, lambda kk: MaskedAutoregressive.init(
        kk, D, hidden=(8, 8), order=(1, 2, 0), parallel="forward", context_dim=2)), rtol32=5e-4),
    Entry("Invert-MAF-context", lambda k: _conditioned(k, lambda kk: nf.Invert(MaskedAutoregressive.init(
        kk, D, hidden=(8, 8), order=(0, 2, 1), context_dim=2))), rtol32=5e-4),
    # Stack of (Chain of two couplings) + a trailing coupling + an unconditional Affine: the context threads
    Entry("conditional_flow", lambda k: _conditioned(k, lambda kk: nf.conditional_flow(
        kk, D, 2, layers=3, hidden=(8, 8), shift=jnp.zeros(D), scale=jnp.ones(D)).bijection), rtol32=2e-3),
    # planar: w^T u < 0 pushed towards the constraint (w^T u_hat near -1, a nearly flat direction);
    # the inverse is a safeguarded Newton root along w; where 1 + m tanh'(a) is small the inverse is
    # ill-conditioned (float32 error ~ eps |x| / (1 + m tanh'(a)) ~ 1e-5)
    Entry("Planar", lambda k: Planar(_rand(k, (D,), 1.0) - 1.0, _rand(jax.random.fold_in(k, 1), (D,), 1.0) + 0.5,
                                     _rand(jax.random.fold_in(k, 2), ())), rtol32=1e-4),
    Entry("Radial", lambda k: Radial(_rand(k, (D,), 1.0), _rand(jax.random.fold_in(k, 1), ()),
                                     _rand(jax.random.fold_in(k, 2), ()) - 1.0)),
]


def all_bijection_classes():
    """Every concrete Bijection subclass defined anywhere in the nfcore package."""
    import importlib
    import pkgutil

    found = set()
    for mod in pkgutil.iter_modules(nf.__path__):
        m = importlib.import_module(f"nfcore.{mod.name}")
        for obj in vars(m).values():
            if isinstance(obj, type) and issubclass(obj, nf.Bijection) and obj is not nf.Bijection and obj.__module__.startswith("nfcore"):
                found.add(obj)
    return found


def to32(tree):
    return jax.tree_util.tree_map(lambda a: a.astype(np.float32) if hasattr(a, "dtype") and a.dtype == np.float64 else a, tree)
