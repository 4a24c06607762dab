"""Targets: exact densities that integrate to one, samples that match them, stated entropies."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf
from nfcore.targets import Banana, Checkerboard, EightGaussians, TwoMoons, entropy_by_quadrature

# (target, integration box) — the box holds all but a negligible part of the mass
CASES = [
    (Banana(), (-8.0, 80.0), (-24.0, 24.0)),
    (TwoMoons(), (-2.0, 3.0), (-1.7, 2.2)),
    (EightGaussians(), (-7.0, 7.0), (-7.0, 7.0)),
    (Checkerboard(), (-4.0, 4.0), (-4.0, 4.0)),
]
IDS = [type(c[0]).__name__ for c in CASES]


@pytest.mark.parametrize("target, xlim, ylim", CASES, ids=IDS)
def test_density_integrates_to_one(target, xlim, ylim):
    n = 400  # the midpoint rule converges fast for these smooth, boxed densities
    xs = np.linspace(*xlim, n + 1)
    ys = np.linspace(*ylim, n + 1)
    X, Y = np.meshgrid((xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2)
    p = target.prob(jnp.asarray(np.stack([X.ravel(), Y.ravel()], 1)))
    total = float(jnp.sum(p)) * (xs[1] - xs[0]) * (ys[1] - ys[0])
    assert abs(total - 1.0) < 1e-4


@pytest.mark.parametrize("target, xlim, ylim", CASES, ids=IDS)
def test_monte_carlo_entropy_agrees_with_stated_value(target, xlim, ylim):
    x = target.sample(jax.random.PRNGKey(0), 200_000)
    lp = np.asarray(target.log_prob(x), np.float64)
    assert np.all(np.isfinite(lp)), "samples must lie where the density is positive"
    mc, se = -lp.mean(), lp.std() / math.sqrt(len(lp))
    assert abs(mc - target.entropy) < 4 * se + 1e-6, f"MC {mc:.5f} ± {se:.5f} vs stated {target.entropy:.5f}"


@pytest.mark.parametrize("target, xlim, ylim", CASES[1:3], ids=IDS[1:3])
def test_stored_entropy_recomputed_by_quadrature(target, xlim, ylim):
    h = entropy_by_quadrature(target, xlim, ylim, n=400)
    assert abs(h - target.entropy) < 1e-6


def test_banana_matches_its_definition():
    b = Banana()
    x = jnp.array([[1.0, 2.0], [-0.5, -3.0]])
    x1, x2 = x[:, 0], x[:, 1]
    by_hand = (-0.5 * (x2 / 4) ** 2 - math.log(4) - 0.5 * math.log(2 * math.pi)
               - 0.5 * (x1 - x2**2 / 4) ** 2 - 0.5 * math.log(2 * math.pi))
    np.testing.assert_allclose(b.log_prob(x), by_hand, rtol=1e-12)
    assert b.entropy == pytest.approx(math.log(2 * math.pi * math.e) + math.log(4), rel=1e-14)


def test_two_moons_quadrature_converged():
    # 256 Gauss-Legendre nodes vs a 65536-point midpoint rule along the arcs (its error ~1e-9)
    tm = TwoMoons()
    x = tm.sample(jax.random.PRNGKey(3), 20)
    t = (jnp.arange(65536) + 0.5) * math.pi / 65536
    def brute(p):
        def arc(c):
            d = jnp.sum((p - c) ** 2, 1)
            return jnp.mean(jnp.exp(-0.5 * d / 0.01)) / (2 * math.pi * 0.01)
        c1 = jnp.stack([jnp.cos(t), jnp.sin(t)], 1)
        c2 = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], 1)
        return jnp.log(0.5 * (arc(c1) + arc(c2)))
    np.testing.assert_allclose(tm.log_prob(x), jax.vmap(brute)(x), rtol=1e-8)


def test_checkerboard_samples_only_dark_cells():
    x = Checkerboard().sample(jax.random.PRNGKey(1), 10_000)
    cells = np.floor((np.asarray(x) + 4) / 2).astype(int)
    assert np.all((cells.sum(1) % 2) == 0)
    assert len({tuple(c) for c in cells}) == 8


@pytest.mark.parametrize("target, xlim, ylim", CASES, ids=IDS)
def test_log_prob_one_is_what_log_prob_batches(target, xlim, ylim):
    x = target.sample(jax.random.PRNGKey(5), 64)
    assert x.shape == (64, 2) and target.dim == 2
    lp = target.log_prob(x)
    assert lp.shape == (64,) and np.all(np.isfinite(lp))
    np.testing.assert_allclose(jax.vmap(target.log_prob_one)(x), lp, rtol=1e-12)
    np.testing.assert_allclose(target.log_prob(x[0]), lp[0], rtol=1e-12)


def test_targets_validate_input():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        Banana().log_prob(jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        TwoMoons().log_prob(jnp.array([jnp.nan, 0.0]))
