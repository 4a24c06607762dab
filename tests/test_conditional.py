"""Conditional flows (nfcore.conditional) and calibration tools (nfcore.calibration)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf
from nfcore import calibration as cal
from nfcore.testing import randomise

KEY = jax.random.key(0)


def _model(kind="coupling", dim=2, context_dim=3):
    m = nf.conditional_flow(KEY, dim, context_dim, layers=1, hidden=(8, 8), kind=kind)  # no scan: cheap eager calls
    return randomise(m, jax.random.key(1), 0.3)


def test_unconditional_layers_unchanged_by_context_dim_zero():
    a = nf.Coupling.init(KEY, (True, False), hidden=(8,))
    b = nf.Coupling.init(KEY, (True, False), hidden=(8,), context_dim=0)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and a.context_dim == 0
    m0 = nf.MADE.init(KEY, 3, hidden=(8,), n_params=2)
    assert m0.context_dim == 0 and m0.weights[0].shape == (3, 8)
    assert nf.Chain([a, nf.Exp()]).context_dim == 0


@pytest.mark.parametrize("kind", ["coupling", "maf"])
def test_context_changes_the_density_and_shapes(kind):
    m = _model(kind)
    x = jax.random.normal(KEY, (5, 2))
    c = jax.random.normal(jax.random.key(2), (5, 3))
    lp_pairs = m.log_prob(x, c)
    lp_one = m.log_prob(x, c[0])
    assert lp_pairs.shape == (5,) and lp_one.shape == (5,)
    np.testing.assert_allclose(lp_one[0], lp_pairs[0], rtol=1e-6)
    assert float(jnp.max(jnp.abs(lp_pairs - lp_one))) > 1e-3, "the context must matter"
    assert m.sample(KEY, 4, c[0]).shape == (4, 2)
    x_s, lq = m.sample_and_log_prob(KEY, 4, c)
    assert x_s.shape == (5, 4, 2) and lq.shape == (5, 4)
    np.testing.assert_allclose(lq[1], m.log_prob(x_s[1], c[1]), rtol=1e-4, atol=1e-4)
    assert float(m.log_prob(jnp.array([jnp.inf, 0.0]), c[0])) == -np.inf


def test_conditional_density_integrates_to_one():
    m = _model("coupling")
    g = jnp.linspace(-9, 9, 301)
    pts = jnp.stack(jnp.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    for c in (jnp.zeros(3), jnp.array([1.0, -2.0, 0.5])):
        mass = float(jnp.sum(jnp.exp(m.log_prob(pts, c))) * (g[1] - g[0]) ** 2)
        assert abs(mass - 1) < 2e-3, mass


def test_made_first_variable_sees_the_context_and_never_x():
    made = randomise(nf.MADE.init(KEY, 3, hidden=(6, 6), n_params=2, context_dim=2), jax.random.key(3))
    x = jax.random.normal(KEY, (3,))
    c = jnp.array([0.5, -1.0])
    jx = jax.jacfwd(lambda v: made(v, c))(x)  # (3, 2, 3): d out[i, p] / d x[j]
    dep = np.any(np.abs(np.asarray(jx)) > 0, axis=1)
    assert not np.any(dep & ~made.connectivity()), "x-dependencies must stay autoregressive"
    jc = jax.jacfwd(lambda v: made(x, v))(c)
    assert np.all(np.any(np.abs(np.asarray(jc)) > 0, axis=(1, 2))), "every row, the first included, sees c"


def test_context_errors_name_the_fix():
    layer = nf.Coupling.init(KEY, (True, False), hidden=(4,), context_dim=2)
    with pytest.raises(ValueError, match=r"context of shape \(2,\)"):
        layer.forward_and_log_det(jnp.zeros(2))
    with pytest.raises(ValueError, match="unconditional"):
        nf.Coupling.init(KEY, (True, False), hidden=(4,)).forward_and_log_det(jnp.zeros(2), jnp.zeros(2))
    m = _model()
    with pytest.raises(ValueError, match="needs a context"):
        m.log_prob(jnp.zeros(2), None)
    with pytest.raises(ValueError, match="rows"):
        m.log_prob(jnp.zeros((4, 2)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="width|widths"):
        nf.MADE.init(KEY, 3, hidden=(2,), context_dim=1)
    with pytest.raises(ValueError, match="pairs"):
        nf.fit_conditional(KEY, m, jnp.zeros((4, 2)), jnp.zeros((5, 3)), steps=1, batch_size=2)


def test_fit_conditional_learns_a_linear_gaussian():
    # x | c ~ N(A c, 0.5^2 I): exact conditional, KL(p || q) in nats for fixed contexts
    A = jnp.array([[1.0, -0.5], [0.3, 0.8]])

    def simulate(key, n):
        kc, kx = jax.random.split(key)
        c = jax.random.normal(kc, (n, 2))
        return c @ A.T + 0.5 * jax.random.normal(kx, (n, 2)), c

    model = nf.conditional_flow(KEY, 2, 2, layers=2, hidden=(16,))
    res = nf.fit_conditional(jax.random.key(1), model, simulate, steps=600, batch_size=256, learning_rate=1e-2,
                             held_out=simulate(jax.random.key(9), 512), progress=False)
    assert res.stopped == "done" and res.held_out.shape == (2,)
    c = jnp.array([1.0, -1.0])
    x = A @ c + 0.5 * jax.random.normal(jax.random.key(3), (4000, 2))
    log_p = jnp.sum(jax.scipy.stats.norm.logpdf(x, A @ c, 0.5), -1)
    kl = float(jnp.mean(log_p - res.model.log_prob(x, c)))
    assert -0.01 < kl < 0.05, kl
    # arrays of pairs give the same kind of result
    xs, cs = simulate(jax.random.key(4), 2048)
    res2 = nf.fit_conditional(KEY, model, xs, cs, steps=20, batch_size=64, progress=False)
    assert res2.loss.shape == (20,)


def test_calibration_of_an_exact_posterior_and_an_overconfident_one():
    # theta ~ N(0, 1), y | theta ~ N(theta, 1): posterior N(y / 2, 1 / 2)
    n, L = 2000, 99
    k1, k2, k3 = jax.random.split(KEY, 3)
    theta = jax.random.normal(k1, (n, 1))
    y = theta + jax.random.normal(k2, (n, 1))
    for sd, calibrated in ((np.sqrt(0.5), True), (0.5 * np.sqrt(0.5), False)):
        draws = y[:, None, :] / 2 + sd * jax.random.normal(k3, (n, L, 1))
        ranks = cal.sbc_ranks(draws, theta)
        assert ranks.shape == (n, 1) and ranks.min() >= 0 and ranks.max() <= L
        counts, stat, p = cal.rank_uniformity(ranks, L, bins=10)
        assert counts.sum() == n
        log_q = lambda t: -0.5 * ((t[..., 0] - y[:, 0:1] / 2) / sd) ** 2 if t.ndim == 3 else \
            -0.5 * ((t[:, 0] - y[:, 0] / 2) / sd) ** 2
        levels = cal.hpd_levels(log_q(draws), log_q(theta))
        alphas, cov = cal.expected_coverage(levels)
        gap = np.max(np.abs(cov - alphas))
        band = cal.coverage_band(n)
        if calibrated:
            assert p[0] > 1e-3 and gap < band
        else:
            assert p[0] < 1e-6 and gap > band and cov[50] < 0.5  # overconfident: below the diagonal
    with pytest.raises(ValueError, match="divide"):
        cal.rank_uniformity(ranks, 100, bins=10)


def test_posterior_draws_matches_sample_and_log_prob():
    m = _model()
    cs = jax.random.normal(KEY, (5, 3))
    x, lq = cal.posterior_draws(KEY, m, cs, 7, chunk=2)
    assert x.shape == (5, 7, 2) and lq.shape == (5, 7)
    np.testing.assert_allclose(lq[3], m.log_prob(x[3], cs[3]), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not hasattr(nf, "save"), reason="nf.save / nf.load (nfcore/io.py) not merged yet")
def test_save_load_round_trip_of_a_conditional_model_is_bit_identical(tmp_path):
    m = _model("maf")
    path = tmp_path / "posterior"
    nf.save(path, m)
    back = nf.load(path)
    assert type(back) is type(m) and back.context_dim == m.context_dim
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(m)
    for a, b in zip(jax.tree_util.tree_leaves(m), jax.tree_util.tree_leaves(back)):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b))
    x, c = jnp.ones((3, 2)), jnp.ones(3)
    assert np.array_equal(np.asarray(m.log_prob(x, c)), np.asarray(back.log_prob(x, c)))
