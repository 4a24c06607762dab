"""Distributions: densities integrate to one, closed forms, and clear errors on bad input."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf


def _trapz_1d(f, lo, hi, n=200_001):
    x = jnp.linspace(lo, hi, n)[:, None]
    return float(jnp.trapezoid(jnp.exp(f(x)), x[:, 0]))


def _midpoints(kink, half_width, h):
    # cell edges at kink + k h, so the PReLU's density jump lies on an edge (midpoint rule stays O(h^2))
    k = int(half_width / h)
    return kink + (jnp.arange(-k, k) + 0.5) * h


def test_1d_transformed_density_integrates_to_one():
    flow = nf.Chain([nf.Affine(jnp.array([0.7]), jnp.array([0.4])), nf.LeakyReLU(jnp.array([-1.2])), nf.Shift(jnp.array([-0.3]))])
    q = nf.Transformed(nf.Normal(1), flow)
    h = 1e-3
    x = _midpoints(-0.3, 60.0, h)[:, None]
    assert abs(float(jnp.sum(q.prob(x)) * h) - 1.0) < 1e-6


def test_2d_transformed_density_integrates_to_one():
    k = jax.random.PRNGKey(0)
    lr = nf.LowRankAffine.init(k, 2, 1)
    lr = nf.LowRankAffine(jnp.array([[0.0, 0.0], [0.8, 0.0]]), jnp.array([0.2, -0.3]), lr.V, jnp.array([0.9]), jnp.array([1.0, -0.5]))
    q = nf.Transformed(nf.Normal(2), nf.Chain([lr, nf.LeakyReLU(jnp.array([-0.7, 0.5]))]))
    h = 0.02
    g = _midpoints(0.0, 25.0, h)  # the density jumps along both axes (PReLU is the last layer)
    X, Y = jnp.meshgrid(g, g)
    total = float(jnp.sum(q.prob(jnp.stack([X.ravel(), Y.ravel()], 1))) * h * h)
    assert abs(total - 1.0) < 1e-5


def test_normal_and_uniform_integrate_to_one():
    assert abs(_trapz_1d(nf.Normal(1, jnp.array([1.0]), jnp.array([0.5])).log_prob, -30, 30) - 1) < 1e-8
    u = nf.Uniform(low=(1.0,), high=(3.0,))
    x = jnp.linspace(0.0, 4.0, 400_001)[:, None]
    assert abs(float(jnp.trapezoid(u.prob(x), x[:, 0])) - 1.0) < 1e-4


def test_exp_of_normal_is_lognormal():
    q = nf.Transformed(nf.Normal(1), nf.Exp())
    y = jnp.linspace(0.01, 20.0, 1000)[:, None]
    closed = -jnp.log(y[:, 0]) - 0.5 * math.log(2 * math.pi) - 0.5 * jnp.log(y[:, 0]) ** 2
    np.testing.assert_allclose(q.log_prob(y), closed, rtol=1e-12, atol=1e-12)


def test_sample_and_log_prob_agree_with_log_prob():
    q = nf.Transformed(nf.Normal(2), nf.Chain([nf.Affine(jnp.array([1.0, 2.0]), jnp.array([0.3, -0.2])), nf.Tanh()]))
    x, lp = q.sample_and_log_prob(jax.random.PRNGKey(1), 50)
    assert x.shape == (50, 2) and lp.shape == (50,)
    np.testing.assert_allclose(lp, q.log_prob(x), rtol=1e-6)


def test_normal_entropy_matches_monte_carlo():
    n = nf.Normal(2, jnp.zeros(2), jnp.array([0.5, -1.0]))
    x = n.sample(jax.random.PRNGKey(2), 200_000)
    mc = -jnp.mean(n.log_prob(x))
    assert abs(float(mc) - float(n.entropy())) < 0.02


def test_log_prob_shapes_and_values():
    q = nf.Normal(2)
    assert q.log_prob(jnp.zeros(2)).shape == ()
    assert q.log_prob(jnp.zeros((7, 2))).shape == (7,)
    x = jnp.array([[0.0, 0.0], [1.0, -2.0], [jnp.inf, 0.0], [0.0, -jnp.inf]])
    lp = q.log_prob(x)
    np.testing.assert_allclose(lp[:2], [-math.log(2 * math.pi), -math.log(2 * math.pi) - 2.5], rtol=1e-12)
    assert np.all(lp[2:] == -np.inf), lp  # a row with a +-inf component has zero density
    # log_prob_one (public in 0.2) is the one-sample density that log_prob batches
    np.testing.assert_allclose(jax.vmap(q.log_prob_one)(x[:2]), lp[:2], rtol=1e-12)
    np.testing.assert_allclose(q.log_prob(x[1]), lp[1], rtol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (jnp.zeros(3), r"\(2,\).*\(N, 2\).*\(3,\)"),
    (jnp.zeros((4, 3)), r"\(N, 2\).*\(4, 3\)"),
    (jnp.zeros((2, 2, 2)), r"\(2, 2, 2\)"),
])
def test_log_prob_wrong_shape_names_expected_and_actual(bad, match):
    with pytest.raises(ValueError, match=match):
        nf.Transformed(nf.Normal(2), nf.Exp()).log_prob(bad)


def test_log_prob_nan_raises():
    x = jnp.array([[0.0, 1.0], [jnp.nan, 0.0]])
    with pytest.raises(ValueError, match="NaN.*1 sample"):
        nf.Normal(2).log_prob(x)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        nf.Normal(0)
    with pytest.raises(ValueError, match="high > low"):
        nf.Uniform(low=(1.0,), high=(0.0,))
    with pytest.raises(ValueError, match=r"n \(the number of samples\) must be an integer >= 1"):
        nf.Normal(2).sample(jax.random.PRNGKey(0), 0)
    with pytest.raises(ValueError, match=r"n \(the number of samples\) must be an integer >= 1"):
        nf.Normal(2).sample_and_log_prob(jax.random.PRNGKey(0), 2.5)


@pytest.mark.parametrize("bij, outside, inside", [
    (nf.Exp(), [-1.0, 0.0], [0.5, 3.0]),
    (nf.Softplus(), [-2.0, 0.0], [0.1, 4.0]),
    (nf.Sigmoid(), [0.0, 1.0, 1.5, -0.2], [0.3, 0.9]),
    (nf.Tanh(), [1.0, -1.0, 2.0], [0.0, -0.7]),
])
def test_density_is_zero_outside_the_range_not_nan(bij, outside, inside):
    q = nf.Transformed(nf.Normal(1), bij)
    lp_out = q.log_prob(jnp.array(outside)[:, None])
    assert np.all(lp_out == -np.inf), lp_out
    lp_in = q.log_prob(jnp.array(inside)[:, None])
    assert np.all(np.isfinite(lp_in))
    g = jax.grad(lambda v: jnp.sum(q.log_prob(v)))(jnp.array(inside + outside)[:, None])
    assert np.all(np.isfinite(g))
