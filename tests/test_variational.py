"""Reverse-KL training and its diagnostics (nfcore.variational); planar and radial layers' constraints."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf

MEAN, LOG_SD = jnp.array([1.0, -2.0]), jnp.log(jnp.array([0.5, 2.0]))
LOG_Z = float(jnp.sum(LOG_SD)) + math.log(2 * math.pi)  # of exp(-|(x - m) / sd|^2 / 2)


def log_p_tilde(x):
    return -0.5 * jnp.sum(((x - MEAN) * jnp.exp(-LOG_SD)) ** 2)


def exact():
    return nf.Transformed(nf.Normal(2), nf.Affine(MEAN, LOG_SD))


def test_loss_of_the_exact_flow_is_minus_log_z_for_every_sample():
    z = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    loss = nf.reverse_kl_loss(exact(), log_p_tilde, z)
    assert abs(float(loss) + LOG_Z) < 1e-10
    kl, se = nf.reverse_kl(exact(), log_p_tilde, jax.random.PRNGKey(1), 100, log_Z=LOG_Z)
    assert abs(kl) < 1e-10 and se < 1e-10
    _, log_w = nf.importance_weights(exact(), log_p_tilde, jax.random.PRNGKey(1), 100)
    assert abs(nf.ess(log_w) - 1.0) < 1e-12


def test_fit_reverse_kl_recovers_a_gaussian():
    start = nf.Transformed(nf.Normal(2), nf.Affine(jnp.zeros(2), jnp.zeros(2)))
    result = nf.fit_reverse_kl(jax.random.PRNGKey(2), start, log_p_tilde, steps=600, batch_size=128,
                               learning_rate=3e-2, progress=False)
    affine = result.model.bijection
    np.testing.assert_allclose(affine.shift, MEAN, atol=0.05)
    np.testing.assert_allclose(affine.log_scale, LOG_SD, atol=0.05)
    kl, se = nf.reverse_kl(result.model, log_p_tilde, jax.random.PRNGKey(3), 4000, log_Z=LOG_Z)
    assert 0 <= kl + 3 * se and kl < 0.01
    assert result.loss.shape == (600,) and result.loss[-1] < result.loss[0]


def test_ess_and_snis():
    assert abs(nf.ess(np.zeros(10)) - 1.0) < 1e-12
    assert abs(nf.ess(np.array([0.0] + [-1e3] * 9)) - 0.1) < 1e-12
    # q = N(0, 1), p = N(1, 1) in 1-D: E_p[x] = 1
    q = nf.Transformed(nf.Normal(1), nf.Affine(jnp.zeros(1), jnp.zeros(1)))
    x, log_w = nf.importance_weights(q, lambda x: -0.5 * jnp.sum((x - 1.0) ** 2), jax.random.PRNGKey(4), 20_000)
    est, se = nf.snis_expectation(np.asarray(x[:, 0]), log_w)
    assert abs(est - 1.0) < 4 * se and 0.005 < se < 0.05


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="Transformed"):
        nf.fit_reverse_kl(jax.random.PRNGKey(0), nf.Normal(2), log_p_tilde, steps=10)
    with_params = nf.Transformed(nf.Normal(2, jnp.zeros(2), jnp.zeros(2)), nf.Affine(jnp.zeros(2), jnp.zeros(2)))
    with pytest.raises(ValueError, match="base"):
        nf.fit_reverse_kl(jax.random.PRNGKey(0), with_params, log_p_tilde, steps=10)
    with pytest.raises(ValueError, match="batch_size"):
        nf.fit_reverse_kl(jax.random.PRNGKey(0), exact(), log_p_tilde, steps=10, batch_size=0)
    with pytest.raises(ValueError, match="log_density"):
        nf.fit_reverse_kl(jax.random.PRNGKey(0), exact(), None, steps=10)
    with pytest.raises(ValueError, match="shape"):
        nf.ess(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        nf.snis_expectation(np.zeros(3), np.zeros(4))


def test_planar_constraint_identity_init_and_robust_inverse():
    key = jax.random.PRNGKey(5)
    assert np.allclose(nf.Planar.init(key, 3).forward(jnp.arange(3.0)), jnp.arange(3.0), atol=1e-12)
    for i, wu in enumerate((-50.0, -1.0, 0.0, 50.0)):  # raw w.u on both sides of the limit -1
        w = jnp.array([0.3, -1.2, 0.5])
        u = wu * w / jnp.sum(w**2) + jnp.array([0.7, 0.2, -0.1])
        layer = nf.Planar(u, w, jnp.array(0.4))
        assert float(w @ layer.u_hat()) > -1.0
        x = 30 * jax.random.normal(jax.random.fold_in(key, i), (500, 3))
        z, ild = jax.vmap(layer.inverse_and_log_det)(x)
        y, ld = jax.vmap(layer.forward_and_log_det)(z)
        np.testing.assert_allclose(y, x, atol=1e-9)
        np.testing.assert_allclose(ild, -ld, atol=1e-9)
        assert np.all(np.isfinite(ld))


def test_radial_constraint_identity_init_and_inverse_at_the_centre():
    r = nf.Radial.init(jax.random.PRNGKey(6), 2)
    x = jnp.array([0.3, -4.0])
    np.testing.assert_allclose(r.forward(x), x, atol=1e-12)
    strong = nf.Radial(jnp.array([1.0, 2.0]), jnp.array(0.5), jnp.array(-30.0))  # beta_hat -> -alpha
    z, ld = strong.inverse_and_log_det(strong.z0)
    assert np.all(np.isfinite(z)) and np.isfinite(ld)
    np.testing.assert_allclose(z, strong.z0, atol=1e-12)
    xs = jax.random.normal(jax.random.PRNGKey(7), (200, 2)) * 3
    np.testing.assert_allclose(jax.vmap(strong.forward)(jax.vmap(strong.inverse)(xs)), xs, atol=1e-9)
