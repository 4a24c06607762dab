"""ActNorm's data-dependent initialisation (which side is standardised) and the glow() factory."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf
from nfcore.actnorm import ActNorm
from nfcore.coupling import Coupling
from nfcore.linear import Linear
from nfcore.spline import RationalQuadraticSpline
from nfcore.testing import check_bijection, randomise


@pytest.fixture(scope="module")
def batch():
    # correlated, shifted, badly scaled data
    z = jax.random.normal(jax.random.PRNGKey(0), (5000, 3))
    return z @ jnp.array([[3.0, 0.0, 0.0], [1.0, 0.2, 0.0], [0.0, 0.5, 10.0]]) + jnp.array([5.0, -2.0, 0.3])


def test_identity_and_is_an_affine(batch):
    a = ActNorm.identity(3)
    y, ld = a.forward_and_log_det(batch[0])
    np.testing.assert_array_equal(y, batch[0])
    assert float(ld) == 0.0
    assert isinstance(a, nf.Affine) and len(jax.tree_util.tree_leaves(a)) == 2
    with pytest.raises(ValueError, match="ActNorm.*\\(3,\\).*\\(4,\\)"):
        a.forward(jnp.ones(4))


def test_data_init_standardises_the_base_side_in_the_density_direction(batch):
    # density evaluation runs the inverse (data -> base): the batch is the layer's data-side
    # input, and what the inverse outputs has zero mean and unit variance
    a = ActNorm.init_from_data(batch)  # direction="inverse" is the default
    z, ld = jax.vmap(a.inverse_and_log_det)(batch)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(z.var(0), 1.0, rtol=1e-10)
    np.testing.assert_allclose(a.shift, batch.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ld, -jnp.sum(jnp.log(batch.std(0))), rtol=1e-12)
    # and the forward (sampling) map sends a standard normal back to the data's moments
    x = jax.vmap(a.forward)(jax.random.normal(jax.random.PRNGKey(1), (20_000, 3)))
    np.testing.assert_allclose(x.mean(0), batch.mean(0), atol=0.2)
    np.testing.assert_allclose(x.std(0), batch.std(0), rtol=0.03)


def test_data_init_forward_direction(batch):
    a = ActNorm.init_from_data(batch, direction="forward")
    y = jax.vmap(a.forward)(batch)
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(y.var(0), 1.0, rtol=1e-10)


def test_data_init_validation_and_constant_dimension(batch):
    with pytest.raises(ValueError, match="direction"):
        ActNorm.init_from_data(batch, direction="density")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        ActNorm.init_from_data(batch[0])
    with pytest.raises(ValueError, match="at least 2"):
        ActNorm.init_from_data(batch[:1])
    const = batch.at[:, 1].set(7.0)
    a = ActNorm.init_from_data(const)
    assert np.all(np.isfinite(a.log_scale)) and float(a.log_scale[1]) == 0.0
    z = jax.vmap(a.inverse)(const)
    np.testing.assert_allclose(z[:, 1], 0.0, atol=1e-12)


def test_glow_structure_and_data_init():
    t = nf.targets.EightGaussians()
    x = t.sample(jax.random.PRNGKey(0), 3000)
    m = nf.glow(jax.random.PRNGKey(1), 2, layers=3, hidden=(32, 32), data=x)
    layers = m.bijection.bijections
    # forward order: each step reversed, the step nearest the data last
    assert [type(b) for b in layers] == [Coupling, nf.Invert, ActNorm] * 3
    # the LU product runs in the density direction (as in the Glow paper): Invert(Linear)
    assert all(isinstance(b.bijection, Linear) for b in layers if isinstance(b, nf.Invert))
    # pushed through in the density direction, every ActNorm's base-side output is standardised
    push = jax.jit(lambda b, h: jax.vmap(b.inverse)(h))
    h = x
    for b in reversed(layers):
        h = push(b, h)
        if isinstance(b, ActNorm):
            np.testing.assert_allclose(h.mean(0), 0.0, atol=1e-6)
            np.testing.assert_allclose(h.var(0), 1.0, rtol=1e-6)
    # a spline glow with data init builds and is invertible (log-dets agree both ways)
    ms = nf.glow(jax.random.PRNGKey(2), 2, layers=2, hidden=(32, 32), data=x,
                 transformer=RationalQuadraticSpline(4, 4.0))
    assert layers[0].transformer != ms.bijection.bijections[0].transformer == RationalQuadraticSpline(4, 4.0)
    pert = randomise(ms.bijection, jax.random.PRNGKey(3), 0.1)
    z = jax.random.normal(jax.random.PRNGKey(4), (200, 2))
    y, ld = jax.jit(jax.vmap(pert.forward_and_log_det))(z)
    zb, ild = jax.jit(jax.vmap(pert.inverse_and_log_det))(y)
    np.testing.assert_allclose(zb, z, atol=1e-9)
    np.testing.assert_allclose(ild, -ld, atol=1e-9)
    check_bijection(pert, z[:16], tol=1e-9)  # and both log-dets equal autodiff's log|det J|
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        nf.glow(jax.random.PRNGKey(1), 2, layers=1, data=x[0])


def test_glow_trains_briefly():
    t = nf.targets.EightGaussians()
    x = t.sample(jax.random.PRNGKey(0), 5000)
    train, held = x[:4000], x[4000:]
    m = nf.glow(jax.random.PRNGKey(1), 2, layers=2, hidden=(32, 32), data=train[:1000])
    nll0 = float(nf.nll(m, held))
    r = nf.fit(jax.random.PRNGKey(2), m, train, steps=600, chunk=300, batch_size=256,
               held_out=held, learning_rate=1e-2, progress=False)
    assert r.status == "done"
    assert r.held_out[-1] < r.held_out[0] < nll0, (nll0, r.held_out)
    assert r.held_out[-1] < nll0 - 0.3
