"""Chapter 10's pieces: bits per dimension (known answers), dequantisation bounds, the logit,
the variational dequantiser's density, squeeze / masks / factor-out and the multi-scale flow."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

import nfcore as nf

L, D = 17, 6


@nf.pytree
class Histogram(nf.Distribution):
    """Independent per-pixel categorical as a piecewise-constant density on [0, 1)^D."""

    log_p: jnp.ndarray  # (D, L)

    @property
    def dim(self):
        return self.log_p.shape[0]

    def log_prob_one(self, y):
        k = jnp.clip(jnp.floor(y * L).astype(int), 0, L - 1)
        return jnp.sum(self.log_p[jnp.arange(self.dim), k] + math.log(L))

    def _sample(self, key, n):  # pragma: no cover - not needed
        raise NotImplementedError


def _levels(key, n, d=D):
    return jax.random.randint(key, (n, d), 0, L)


def test_bits_per_dim_of_a_uniform_model_is_log2_17():
    # continuous uniform density on [0, 1)^64 (log p = 0) and the discrete uniform (log P = -64 log 17)
    b, se = nf.bits_per_dim(np.zeros(50), 64, 17)
    assert abs(b - math.log2(17)) < 1e-12 and se < 1e-12
    assert abs(nf.bits_per_dim(np.full(50, -64 * math.log(17)), 64)[0] - 4.087462841250339) < 1e-12


def test_bits_per_dim_of_a_categorical_model_is_its_empirical_entropy():
    x = np.asarray(_levels(jax.random.key(0), 400))
    counts = np.stack([np.bincount(c, minlength=L) for c in x.T])
    p = counts / len(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy_bits = -np.nansum(np.where(p > 0, p * np.log2(p), 0.0)) / D
    log_P = np.log(p[np.arange(D), x]).sum(1)
    assert abs(nf.bits_per_dim(log_P, D)[0] - entropy_bits) < 1e-12
    # the same model as a density constant on every cell: the dequantisation bound is exact
    model = Histogram(jnp.asarray(np.log(np.maximum(p, 1e-300))))
    bound = nf.dequantization_bound(model, jax.random.key(1), jnp.asarray(x), L)
    assert abs(nf.bits_per_dim(bound, D, L)[0] - entropy_bits) < 1e-9


def test_bits_per_dim_rejects_bad_input():
    with pytest.raises(ValueError, match="log_p"):
        nf.bits_per_dim(np.array([np.nan]), 4)
    with pytest.raises(ValueError, match="levels"):
        nf.bits_per_dim(np.zeros(3), 4, 0)


def test_bounds_below_the_exact_discrete_likelihood_of_a_gaussian():
    # a diagonal Gaussian on y has an exact cell probability: a product of normal CDF differences
    loc, log_scale = jnp.linspace(0.2, 0.7, D), jnp.full(D, math.log(0.15))
    model = nf.Normal(D, loc, log_scale)
    x = _levels(jax.random.key(2), 200)
    s = jnp.exp(log_scale)
    exact = jnp.sum(jnp.log(norm.cdf(((x + 1) / L - loc) / s) - norm.cdf((x / L - loc) / s)), 1)
    elbo = nf.dequantization_bound(model, jax.random.key(3), x, L) - D * math.log(L)
    iw = nf.importance_weighted_bound(model, jax.random.key(4), x, L, k=64) - D * math.log(L)
    assert float(jnp.mean(elbo)) < float(jnp.mean(iw)) < float(jnp.mean(exact)) + 1e-3
    assert float(jnp.mean(exact - iw)) < 0.2 * float(jnp.mean(exact - elbo))  # IW is much tighter


def test_logit_transform_density_integrates_to_one_and_rejects_bad_alpha():
    flow = nf.Transformed(nf.Normal(1), nf.LogitTransform(0.05))
    lo, hi = -0.05 / 0.9, 0.95 / 0.9
    y = jnp.linspace(lo, hi, 200_001)[1:-1, None].astype(jnp.float64)
    mass = float(jnp.sum(jnp.exp(jax.jit(flow.log_prob)(y))) * (y[1, 0] - y[0, 0]))
    assert abs(mass - 1.0) < 1e-4
    assert float(flow.log_prob(jnp.array([1.2]))) == -np.inf
    with pytest.raises(ValueError, match="alpha"):
        nf.LogitTransform(0.5)


def test_variational_dequantizer_log_q_is_the_density_of_u():
    q = nf.testing.randomise(nf.VariationalDequantizer.init(jax.random.key(5), D, L, hidden=(8,), layers=2),
                             jax.random.key(6), 0.3)
    x = _levels(jax.random.key(7), 1)[0].astype(jnp.float64)
    eps = jax.random.normal(jax.random.key(8), (D,), jnp.float64)
    u, log_q = jax.jit(q.sample_and_log_prob)(x, eps)
    assert bool(jnp.all((u > 0) & (u < 1)))
    jac = jax.jit(jax.jacfwd(lambda e: q.sample_and_log_prob(x, e)[0]))(eps)
    ref = jnp.sum(norm.logpdf(eps)) - jnp.linalg.slogdet(jac)[1]
    assert abs(float(log_q - ref)) < 1e-9
    y, lq = jax.jit(nf.dequantize, static_argnums=2)(jax.random.key(9), x[None], L, q)
    assert bool(jnp.all(jnp.floor(y * L) == x)) and lq.shape == (1,)


def test_squeeze_moves_each_2x2_patch_into_channels():
    img = jnp.arange(4 * 6 * 2.0)  # (H, W, C) = (4, 6, 2), flat
    out = np.asarray(nf.Squeeze(4, 6, 2).forward(img)).reshape(2, 3, 8)
    x = np.asarray(img).reshape(4, 6, 2)
    for h, w, c, i, j in [(0, 0, 0, 0, 0), (1, 2, 1, 1, 0), (1, 0, 0, 0, 1), (0, 1, 1, 1, 1)]:
        assert out[h, w, 4 * c + 2 * i + j] == x[2 * h + i, 2 * w + j, c]
    with pytest.raises(ValueError, match="even"):
        nf.Squeeze(3, 4, 1)


def test_masks():
    cb = np.asarray(nf.checkerboard_mask((4, 4, 2))).reshape(4, 4, 2)
    assert cb.sum() == 16 and cb[0, 0, 0] and not cb[0, 1, 1] and cb[1, 1, 1]
    ch = np.asarray(nf.channel_mask((2, 2, 4))).reshape(2, 2, 4)
    assert ch[..., :2].all() and not ch[..., 2:].any()
    with pytest.raises(ValueError, match="channels"):
        nf.channel_mask((4, 4, 1))


def test_multiscale_flow_is_a_flow_and_factors_out_half():
    flow = nf.multiscale_flow(jax.random.key(0), (4, 4, 1), levels=2, couplings=1, hidden=(8,), alpha=None)
    flow = nf.testing.randomise(flow, jax.random.key(1), 0.2)
    x = jax.random.normal(jax.random.key(2), (3, 16), jnp.float64)
    nf.testing.check_bijection(flow.bijection, x, tol=1e-9)
    # the second scale acts on 8 of the 16 variables: the other 8 leave the first scale untouched
    enc = flow.bijection.bijections[0].bijection
    fo = enc.bijections[-1]
    assert isinstance(fo, nf.FactorOut) and len(fo.keep) == 8
    h = jax.jit(nf.Chain(enc.bijections[:-1]).forward)(x[0])
    out = jax.jit(fo.forward)(h)
    rest = np.setdiff1d(np.arange(16), fo.keep)
    np.testing.assert_array_equal(out[rest], h[rest])
    with pytest.raises(ValueError, match="squeezed"):
        nf.multiscale_flow(jax.random.key(0), (4, 4, 1), levels=3)


def test_multiscale_flow_with_logit_maps_into_the_unit_box():
    flow = nf.multiscale_flow(jax.random.key(0), (4, 4, 1), levels=1, couplings=1, hidden=(8,))
    y = jax.jit(lambda k: flow.sample(k, 50))(jax.random.key(1))
    assert y.shape == (50, 16) and bool(jnp.all(jnp.isfinite(jax.jit(flow.log_prob)(y))))
    assert float(jnp.min(y)) > -0.06 and float(jnp.max(y)) < 1.06
