"""RationalQuadraticSpline (monotone, exact inverse, identity tails, stable gradients) and nsf."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf
from nfcore.spline import RationalQuadraticSpline

SP = RationalQuadraticSpline(bins=5, tail_bound=3.0)
B = SP.tail_bound
K = SP.bins

# jitted, elementwise over a batch: x (m,), params (m, 3K - 1) -- row i parametrises point i
fwd = jax.jit(SP.forward)
inv = jax.jit(SP.inverse)
knots = jax.jit(SP.knots)


@jax.jit
def slope(x, p):
    """dy/dx of the forward spline at each point, by autodiff (the map is elementwise)."""
    return jax.grad(lambda v: jnp.sum(SP.forward(v, p)[0]))(x)


@jax.jit
def inv_slope(y, p):
    return jax.grad(lambda v: jnp.sum(SP.inverse(v, p)[0]))(y)


def _params(key, n, scale=1.5, dtype=jnp.float64):
    return (scale * jax.random.normal(key, (n, SP.n_params))).astype(dtype)


def _on_knots(p):
    """Every knot of every row of ``p`` (n, 3K-1): x knots, y knots and their params, flattened."""
    xk, yk, dk = knots(p)
    rep = jnp.repeat(p, K + 1, axis=0)
    return xk.reshape(-1), yk.reshape(-1), dk.reshape(-1), rep


def test_n_params_and_validation():
    assert SP.n_params == 3 * 5 - 1
    assert SP == RationalQuadraticSpline(5, 3.0) and SP.tail_bound == 3.0
    assert hash(SP) == hash(RationalQuadraticSpline(5, 3.0))  # static, hashable metadata
    assert SP != RationalQuadraticSpline(5, 4.0)
    assert nf.transformers.RationalQuadraticSpline is RationalQuadraticSpline is nf.RationalQuadraticSpline
    with pytest.raises(ValueError, match="bins must be an integer"):
        RationalQuadraticSpline(0)
    with pytest.raises(ValueError, match="bins must be an integer"):
        RationalQuadraticSpline(2.5)
    with pytest.raises(ValueError, match="tail_bound must be a finite number > 0"):
        RationalQuadraticSpline(4, -1.0)
    with pytest.raises(ValueError, match="tail_bound"):
        RationalQuadraticSpline(4, float("inf"))
    with pytest.raises(ValueError, match="14"):
        SP.forward(jnp.zeros(2), jnp.zeros((2, 13)))


def test_identity_at_zero_params():
    x = jnp.concatenate([jnp.linspace(-6, 6, 1001), jnp.array([-B, B])])
    for dtype, tol in ((jnp.float64, 1e-14), (jnp.float32, 1e-6)):
        p = jnp.zeros((x.shape[0], SP.n_params), dtype)
        for fn in (fwd, inv):
            y, ld = fn(x.astype(dtype), p)
            np.testing.assert_allclose(y, x, atol=tol)
            np.testing.assert_allclose(ld, 0.0, atol=tol)
    xk, yk, dk = SP.knots(jnp.zeros(SP.n_params))
    np.testing.assert_allclose(xk, jnp.linspace(-B, B, K + 1), atol=1e-14)
    np.testing.assert_array_equal(xk, yk)
    np.testing.assert_array_equal(dk, 1.0)  # exactly 1 (softplus with a shift)


def test_strictly_increasing_across_knots_and_tails():
    ps = _params(jax.random.PRNGKey(0), 4, scale=2.0)
    xks = np.asarray(knots(ps)[0])
    for p, xk in zip(ps, xks):
        grid = jnp.asarray(np.unique(np.concatenate([np.linspace(-B - 1, B + 1, 20_001), xk, xk - 1e-9, xk + 1e-9])))
        y, ld = fwd(grid, jnp.broadcast_to(p, (grid.shape[0], SP.n_params)))
        assert np.all(np.diff(np.asarray(y)) > 0)
        assert np.all(np.isfinite(ld))


def test_knots_are_interpolated_with_softplus_derivatives():
    ps = _params(jax.random.PRNGKey(1), 6)
    xk, yk, dk = knots(ps)
    np.testing.assert_array_equal(xk[:, 0], -B)
    np.testing.assert_array_equal(xk[:, -1], B)
    np.testing.assert_array_equal(yk[:, 0], -B)
    np.testing.assert_array_equal(yk[:, -1], B)
    c = math.log(math.expm1(1.0 - SP.min_derivative))
    inner = SP.min_derivative + np.logaddexp(0.0, np.asarray(ps[:, 2 * K:]) + c)
    np.testing.assert_allclose(dk[:, 1:-1], inner, rtol=1e-12)
    np.testing.assert_array_equal(dk[:, np.array([0, -1])], 1.0)  # boundary derivatives fixed to 1

    x, y_knots, d, rep = _on_knots(ps)
    y, _ = fwd(x, rep)
    np.testing.assert_allclose(y, y_knots, rtol=1e-12, atol=1e-12)
    # on knot j the point is at xi = 0 of bin j (xi = 1 of the last bin at +B): slope d_j exactly
    np.testing.assert_allclose(slope(x, rep), d, rtol=1e-10)
    np.testing.assert_allclose(inv_slope(y_knots, rep), 1.0 / d, rtol=1e-10)
    # C^1: just left of every knot (and just right of -B) the slope also tends to d_j
    np.testing.assert_allclose(slope(x - 1e-10, rep), d, rtol=1e-4)
    np.testing.assert_allclose(slope(x + 1e-10, rep), d, rtol=1e-4)


def test_log_det_matches_autodiff_float64():
    key = jax.random.PRNGKey(2)
    n = 2000
    ps = _params(key, n)
    x = jax.random.uniform(jax.random.fold_in(key, 1), (n,), minval=-B - 1, maxval=B + 1, dtype=jnp.float64)
    y, ld = fwd(x, ps)
    np.testing.assert_allclose(ld, jnp.log(slope(x, ps)), rtol=0, atol=1e-10)
    xb, ild = inv(y, ps)
    np.testing.assert_allclose(ild, jnp.log(inv_slope(y, ps)), rtol=0, atol=1e-10)
    np.testing.assert_allclose(ild, -ld, atol=1e-10)
    np.testing.assert_allclose(xb, x, atol=1e-9)


def test_round_trip_float32_including_knots_bounds_and_far_tails():
    # Raw parameters ~ N(0, 0.5^2) give slopes down to ~e^-4. A float32 round trip can only be
    # as good as eps * B / min f' (y is rounded to float32): at N(0, 1) parameters f' reaches
    # ~1e-4 and the achievable error ~1e-3 -- a property of the map, not of the inverse.
    key = jax.random.PRNGKey(3)
    n = 20_000
    ps = _params(key, n, scale=0.5, dtype=jnp.float32)
    xk, yk, _, knot_p = _on_knots(ps)
    special = jnp.array([-B, B, -50.0, 50.0, -1e4, 1e4, -B - 1e-6, B + 1e-6], jnp.float32)
    x = jnp.concatenate([
        jax.random.uniform(jax.random.fold_in(key, 1), (n,), jnp.float32, -B, B),
        xk,  # exactly on every knot, including +-B
        jnp.tile(special, n // special.shape[0]),
    ])
    p = jnp.concatenate([ps, knot_p, ps])
    assert p.shape[0] == x.shape[0] and x.dtype == jnp.float32
    y, ld = fwd(x, p)
    xb, ild = inv(y, p)
    assert y.dtype == jnp.float32
    err = np.abs(np.asarray(xb) - np.asarray(x)) / (1.0 + np.abs(np.asarray(x)))
    assert err.max() <= 1e-5, err.max()
    np.testing.assert_allclose(ild, -ld, atol=1e-4)
    # tails are exactly the identity; +-B map to +-B
    far = np.abs(np.asarray(x)) > B
    np.testing.assert_array_equal(np.asarray(y)[far], np.asarray(x)[far])
    np.testing.assert_array_equal(np.asarray(ld)[far], 0.0)
    on_b = np.abs(np.asarray(x)) == B
    np.testing.assert_allclose(np.asarray(y)[on_b], np.asarray(x)[on_b], atol=1e-6)
    # the y knots invert to the x knots
    np.testing.assert_allclose(inv(yk, knot_p)[0], xk, atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gradients_finite_at_knots_bounds_and_outside(dtype):
    ps = _params(jax.random.PRNGKey(4), 3, dtype=dtype)
    xk, yk, _, rep = _on_knots(ps)
    far = jnp.array([-50.0, 50.0, -1e4, 1e4, -B - 1e-3, B + 1e-3], dtype)
    far_p = jnp.repeat(ps[:1], far.shape[0], axis=0)

    def loss(v, p, fn):
        out, ld = fn(v, p)
        return jnp.sum(jnp.tanh(out)) + jnp.sum(ld)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
    for fn, edges in ((SP.forward, xk), (SP.inverse, yk)):
        gx, gp = grad(jnp.concatenate([edges, far]), jnp.concatenate([rep, far_p]), fn)
        assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gp)), fn.__name__
        # outside [-B, B] the map is the identity: d/dx = sech^2, and nothing reaches the params
        # (each point has its own parameter row, so the last rows belong to the far points)
        n_far = far.shape[0]
        np.testing.assert_allclose(gx[-n_far:], 1.0 - np.tanh(np.asarray(far)) ** 2, atol=1e-6)
        np.testing.assert_array_equal(gp[-n_far:], 0.0)


def test_nsf_is_identity_at_init_and_learns_the_checkerboard():
    t = nf.targets.Checkerboard()
    x = t.sample(jax.random.PRNGKey(0), 6000)
    train, held = x[:4000], x[4000:]
    m = nf.nsf(jax.random.PRNGKey(1), 2, layers=4, hidden=(32, 32), bins=8, tail_bound=4.0, shift=train.mean(0), scale=train.std(0))
    assert m.bijection.bijections[0].layers.bijections[0].transformer == RationalQuadraticSpline(8, 4.0)
    z = jnp.array([0.3, -1.1])
    inner = nf.Chain(m.bijection.bijections[:-1])  # the couplings, without the final affine
    y, ld = inner.forward_and_log_det(z)
    np.testing.assert_allclose(y, z, atol=1e-12)
    assert abs(float(ld)) < 1e-12
    r = nf.fit(jax.random.PRNGKey(2), m, train, steps=300, chunk=100, batch_size=256,
               held_out=held, learning_rate=3e-3, progress=False)
    assert r.status == "done"
    nll0 = float(nf.nll(m, held))
    assert r.held_out[-1] < r.held_out[0] < nll0, (nll0, r.held_out)
    assert r.held_out[-1] < nll0 - 0.1
