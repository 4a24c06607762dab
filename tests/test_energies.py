"""U1-U4 (nfcore.energies): log Z by quadrature, converged and checked against closed forms; samples."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nfcore.energies import ENERGIES, U1, U2, U3, U4

NAMES = list(ENERGIES)


@pytest.mark.parametrize("name", NAMES)
def test_log_z_converged_under_grid_refinement_and_a_bigger_box(name):
    e = ENERGIES[name]()
    coarse = e.quadrature(bins=(1024, 512))[0]
    fine = e.quadrature(bins=(4096, 2048))[0]
    assert abs(coarse - e.log_Z) < 1e-9 and abs(fine - e.log_Z) < 1e-9
    (lo1, hi1), (lo2, hi2) = e.box()
    wider = e.quadrature(bins=(3072, 1536), box=((1.5 * lo1, 1.5 * hi1), (1.5 * lo2, 1.5 * hi2)))[0]
    assert abs(wider - e.log_Z) < 1e-8


@pytest.mark.parametrize("cls, c", [(U2, 0.4), (U3, 0.7), (U4, 0.75)])
def test_enveloped_log_z_matches_closed_form(cls, c):
    # int exp(-U) dz2 = c sqrt(2 pi) for every z1, and the envelope integrates to envelope sqrt(2 pi)
    for envelope in (2.0, 1.0):
        e = cls(envelope=envelope)
        assert abs(e.log_Z - math.log(2 * math.pi * envelope * c)) < 1e-8  # box: 6 envelope widths


def test_log_prob_is_normalised_and_unnormalised_is_minus_energy():
    e = U3()
    x = jnp.array([[0.3, -0.2], [1.0, -2.0]])
    np.testing.assert_allclose(e.log_prob(x), -e.energy(x) - e.log_Z, rtol=1e-12)
    np.testing.assert_allclose(e.unnormalised_log_prob(x[0]), -e.energy(x[0]), rtol=1e-12)
    assert e.log_prob(x).shape == (2,) and e.unnormalised_log_prob(x).shape == (2,)
    assert np.isfinite(float(U1().log_prob(jnp.zeros(2))))
    g = jax.grad(lambda z: U1().unnormalised_log_prob(z))(jnp.zeros(2))
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("name", NAMES)
def test_samples_match_quadrature_moments(name):
    e = ENERGIES[name]()
    x = np.asarray(e.sample(jax.random.PRNGKey(0), 40_000), np.float64)
    _, e1, e2, log_p = e.quadrature()
    m1, m2 = 0.5 * (e1[1:] + e1[:-1]), 0.5 * (e2[1:] + e2[:-1])
    w = np.exp(log_p) * (e1[1] - e1[0]) * (e2[1] - e2[0])
    u = e.energy_xy(m1[:, None], m2[None, :], np)
    for f_grid, f_samples in [(m1[:, None] + 0 * m2, x[:, 0]), (0 * m1[:, None] + m2, x[:, 1]),
                              (u, np.asarray(e.energy(x)))]:
        truth = float(np.sum(w * f_grid))
        se = f_samples.std() / math.sqrt(len(f_samples))
        assert abs(f_samples.mean() - truth) < 4.5 * se + 2e-3, (f_samples.mean(), truth, se)


def test_sample_is_jittable_and_deterministic():
    e = U4()
    a = jax.jit(lambda k: e.sample(k, 64))(jax.random.PRNGKey(3))
    b = e.sample(jax.random.PRNGKey(3), 64)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert a.shape == (64, 2)


def test_bad_envelope_raises():
    with pytest.raises(ValueError, match="envelope"):
        U2(envelope=-1.0)
