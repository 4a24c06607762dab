"""Continuous flows: closed forms, normalisation, round trips, the solver's order, flow matching."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import expm
from jax.scipy.stats import multivariate_normal

import nfcore as nf

A = jnp.array([[0.3, -1.0], [0.8, -0.2]])
B = jnp.array([0.5, -0.3])


def _mlp_flow(steps=16, dim=2, scale=0.5):
    field = nf.VelocityField.init(jax.random.PRNGKey(0), dim, hidden=(16, 16), activation="tanh")
    return nf.ContinuousFlow(nf.testing.randomise(field, jax.random.PRNGKey(1), scale), steps=steps)


def test_rk4_has_order_four():
    errs = [abs(float(nf.ode.rk4(lambda y, t: -y * jnp.cos(t), jnp.ones(1), 0.0, 1.0, n)[0]) - np.exp(-np.sin(1.0)))
            for n in (4, 8, 16)]
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - 4) < 0.3), rates


def test_linear_field_log_density_matches_closed_form():
    # v = A x + b: x(1) = e^A z + A^-1 (e^A - I) b, so q = N(A^-1 (e^A - I) b, e^A e^A^T)
    q = nf.Transformed(nf.Normal(2), nf.ContinuousFlow(nf.LinearField(A, B), steps=32))
    M = expm(A)
    mean, cov = jnp.linalg.solve(A, (M - jnp.eye(2)) @ B), M @ M.T
    x = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (50, 2))
    np.testing.assert_allclose(q.log_prob(x), multivariate_normal.logpdf(x, mean, cov), atol=1e-8)
    _, ld = q.bijection.forward_and_log_det(x[0])
    assert abs(float(ld) - float(jnp.trace(A))) < 1e-12  # the divergence of a linear field is constant


def test_log_prob_integrates_to_one_on_a_grid():
    q = nf.Transformed(nf.Normal(2), _mlp_flow(steps=8))
    g = jnp.linspace(-7.0, 7.0, 141)
    grid = jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)
    mass = float(jnp.sum(jnp.exp(jax.jit(q.log_prob)(grid))) * (g[1] - g[0]) ** 2)
    assert abs(mass - 1.0) < 2e-3, mass


def test_backward_integration_round_trip_and_log_dets_cancel():
    # forward and backward RK4 solves are inverse only up to the O(h^4) solver error (~1e-7 here)
    flow = _mlp_flow(steps=64, dim=3)
    z = jax.random.normal(jax.random.PRNGKey(2), (64, 3))
    x, ld = jax.vmap(flow.forward_and_log_det)(z)
    z_back, ild = jax.vmap(flow.inverse_and_log_det)(x)
    assert float(jnp.max(jnp.abs(x - z))) > 0.1  # not the identity
    np.testing.assert_allclose(z_back, z, atol=1e-6)
    np.testing.assert_allclose(ild, -ld, atol=1e-6)


def test_solver_error_of_the_log_det_falls_as_h4():
    z = jnp.array([0.4, -1.1, 0.7])
    exact = _mlp_flow(steps=256, dim=3).forward_and_log_det(z)[1]
    errs = [abs(float(_mlp_flow(steps=n, dim=3).forward_and_log_det(z)[1] - exact)) for n in (8, 16)]
    assert 10 < errs[0] / errs[1] < 25, errs  # 2^4 = 16


def test_sample_and_log_prob_are_consistent():
    q = nf.Transformed(nf.Normal(2), _mlp_flow(steps=32))
    x, lq = q.sample_and_log_prob(jax.random.PRNGKey(3), 256)  # forward pass only
    # the inverse pass is a second solve: the two agree to the solver error, O(h^4)
    np.testing.assert_allclose(q.log_prob(x), lq, atol=1e-5)
    np.testing.assert_allclose(q.sample(jax.random.PRNGKey(3), 256), x, atol=1e-12)


def test_hutchinson_trace_is_unbiased_with_the_right_variance():
    flow = nf.ContinuousFlow(nf.LinearField(A, B), steps=4)
    z = jnp.array([0.2, 0.3])
    lds = jax.vmap(lambda k: flow.forward_and_log_det(z, key=k)[1])(jax.random.split(jax.random.PRNGKey(4), 4000))
    # e^T A e with Rademacher e: mean tr A, variance (A_12 + A_21)^2 (one probe for the whole path)
    assert abs(float(lds.mean()) - float(jnp.trace(A))) < 4 * 0.2 / np.sqrt(4000)
    np.testing.assert_allclose(float(lds.var()), float((A[0, 1] + A[1, 0]) ** 2), rtol=0.1)


def test_flow_matching_learns_a_shifted_gaussian():
    target = nf.Normal(2, loc=jnp.array([2.0, -1.0]), log_scale=jnp.log(jnp.array([0.5, 1.5])))
    model = nf.Transformed(nf.Normal(2), nf.ContinuousFlow(nf.VelocityField.init(jax.random.PRNGKey(5), 2,
                                                                                   hidden=(32, 32)), steps=8))
    r = nf.fit_flow_matching(jax.random.PRNGKey(6), model, target.sample, steps=1500, batch_size=256,
                             learning_rate=3e-3, progress=False)
    x = target.sample(jax.random.PRNGKey(7), 4000)
    kl = float(jnp.mean(target.log_prob(x) - r.model.log_prob(x)))
    kl0 = float(jnp.mean(target.log_prob(x) - model.log_prob(x)))  # the untrained flow is the identity
    assert r.loss.shape == (1500,) and r.stopped == "done"
    assert kl0 > 2.0 and abs(kl) < 0.06, (kl0, kl)


def test_bad_arguments_raise():
    field = nf.VelocityField.init(jax.random.PRNGKey(0), 2)
    with pytest.raises(ValueError, match="steps"):
        nf.ContinuousFlow(field, steps=0)
    with pytest.raises(ValueError, match="field"):
        nf.ContinuousFlow(3.0)
    with pytest.raises(ValueError, match="hidden"):
        nf.VelocityField.init(jax.random.PRNGKey(0), 2, hidden=64)
    with pytest.raises(ValueError, match="shape"):
        nf.ContinuousFlow(field).forward(jnp.ones(3))
    with pytest.raises(ValueError, match="standard normal"):
        nf.fit_flow_matching(jax.random.PRNGKey(0), nf.Transformed(nf.Normal(2, loc=jnp.ones(2)),
                                                                   nf.ContinuousFlow(field)), jnp.ones((8, 2)), steps=1)
    with pytest.raises(ValueError, match="ContinuousFlow"):
        nf.fit_flow_matching(jax.random.PRNGKey(0), nf.Normal(2), jnp.ones((8, 2)), steps=1)


def test_save_and_load_round_trip(tmp_path):
    q = nf.Transformed(nf.Normal(2), _mlp_flow(steps=4))
    nf.save(tmp_path / "cnf.npz", q)
    back = nf.load(tmp_path / "cnf.npz")
    assert isinstance(back.bijection, nf.ContinuousFlow) and back.bijection.steps == 4
    x = jnp.array([[0.3, -0.2], [1.5, 2.0]])
    np.testing.assert_array_equal(back.log_prob(x), q.log_prob(x))
