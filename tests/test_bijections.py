"""Every bijection in nfcore, against the autodiff Jacobian and its own inverse."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf
from conftest import free_compiled_programs
from nfcore.testing import check_bijection
from registry import D, ENTRIES, all_bijection_classes, to32

IDS = [e.name for e in ENTRIES]
KEY = jax.random.PRNGKey(0)


_TESTS_RUN = [0]


@pytest.fixture(autouse=True)
def _free_compiled_programs_every_25_tests():
    """Every registry test compiles its own programs: without dropping them the module alone holds
    ~2.6 GB of executables by its end (peak RSS, /usr/bin/time -v). After every test it holds 0.8 GB
    but runs 3x slower (the small shared programs are recompiled each time): every 25 tests."""
    yield
    _TESTS_RUN[0] += 1
    if _TESTS_RUN[0] % 25 == 0:
        free_compiled_programs()


@pytest.fixture(params=ENTRIES, ids=IDS)
def entry(request):
    return request.param


def test_every_bijection_is_registered():
    registered = {type(e.make(KEY)) for e in ENTRIES}
    missing = sorted(c.__name__ for c in all_bijection_classes() - registered)
    assert not missing, f"add these bijections to tests/registry.py ENTRIES: {missing}"


def test_treedefs_of_different_bijections_differ():
    """A jit cache keys on the treedef: two classes with the same fields (Tanh and Logit have none)
    must not compare equal, or a hash collision runs one class's compiled program for the other
    (it happened in CI under jax's register_dataclass)."""
    layers = [e.make(KEY) for e in ENTRIES]
    for a in layers:
        for b in layers:
            if type(a) is not type(b):
                assert jax.tree.structure(a) != jax.tree.structure(b), (type(a).__name__, type(b).__name__)
    leaves, treedef = jax.tree.flatten(nf.Tanh())
    assert type(jax.tree.unflatten(treedef, leaves)) is nf.Tanh


def test_parameters_are_not_identity(entry):
    b = entry.make(KEY)
    x = entry.sample_x(jax.random.PRNGKey(1), 4, bound=3.0)
    y = jax.vmap(b.forward)(x)
    if entry.name not in ("Exp", "Softplus", "Sigmoid", "Logit", "Tanh"):
        assert not np.allclose(y, x), "registry parameters must be random, not the identity"


def test_log_det_matches_autodiff_jacobian_float64(entry):
    """Forward and inverse log-dets against jax.jacfwd, their sum, and the round trip: 1e-10 in float64."""
    b = entry.make(KEY)
    xs = entry.sample_x(jax.random.PRNGKey(2), 16, bound=3.0)
    assert xs.dtype == jnp.float64
    worst = check_bijection(b, xs, tol=entry.tol64)
    assert set(worst) == {"forward_log_det", "inverse_log_det", "log_det_sum", "round_trip"}


@jax.jit
def _round_trip(b, x):
    y, ld = jax.vmap(b.forward_and_log_det)(x)
    x_back, ild = jax.vmap(b.inverse_and_log_det)(y)
    return y, ld, x_back, ild


def test_round_trip_float32_1e5_points(entry):
    b = to32(entry.make(KEY))
    x = entry.sample_x(jax.random.PRNGKey(3), 100_000).astype(jnp.float32)
    y, ld, x_back, ild = _round_trip(b, x)
    assert y.dtype == jnp.float32
    err = np.max(np.abs(np.asarray(x_back) - np.asarray(x)) / (1.0 + np.abs(np.asarray(x))))
    assert err <= entry.rtol32, f"round-trip error {err:.2e} > {entry.rtol32:.0e}"
    np.testing.assert_allclose(ild, -ld, rtol=1e-4, atol=1e-3)


def test_finite_values_and_gradients_at_extremes(entry):
    b = to32(entry.make(KEY))
    for direction, extremes in (("forward", entry.x_extremes), ("inverse", entry.y_extremes)):
        points = jnp.asarray([[v] * entry.dim for v in extremes], jnp.float32)

        def f(bb, x, direction=direction):
            o, l = (bb.forward_and_log_det if direction == "forward" else bb.inverse_and_log_det)(x)
            return jnp.sum(jnp.tanh(o)) + l

        out, ld = jax.jit(jax.vmap(getattr(b, f"{direction}_and_log_det")))(points)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(ld)), f"{direction}{extremes} not finite: {out}, {ld}"
        wrt_params = bool(jax.tree_util.tree_leaves(b))
        g = jax.jit(jax.vmap(jax.grad(f, argnums=0 if wrt_params else 1), in_axes=(None, 0)))(b, points)
        assert all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(g)), f"{direction}{extremes} gradient not finite"


def test_log_prob_is_never_nan(entry):
    """A flow built on the layer: -inf (zero density), never NaN, at infinite and huge inputs."""
    d = entry.dim  # rows padded to the entry's own dimension (D = 3 for all but image layers)
    q = nf.Transformed(nf.Normal(d), to32(entry.make(KEY)))
    x = jnp.asarray([[jnp.inf] + [0.0] * (d - 1), [0.0, -jnp.inf] + [1.0] * (d - 2), [jnp.inf] * d,
                     [1e30, -1e30] + [0.5] * (d - 2), [1e6] * d], jnp.float32)
    lp = np.asarray(q.log_prob(x))
    assert not np.any(np.isnan(lp)), lp
    assert np.all(lp[:3] == -np.inf)


def test_jit_vmap_grad(entry):
    b = entry.make(KEY)
    xs = entry.sample_x(jax.random.PRNGKey(4), 16, bound=3.0)
    y_eager = [b.forward_and_log_det(x) for x in xs[:4]]  # eager: op by op, no compilation
    jitted = jax.jit(lambda bb, x: bb.forward_and_log_det(x))
    y_jit = [jitted(b, x) for x in xs[:4]]
    y_vmap, ld_vmap = jax.vmap(b.forward_and_log_det)(xs[:4])
    for (ye, le), (yj, lj), yv, lv in zip(y_eager, y_jit, y_vmap, ld_vmap):
        np.testing.assert_allclose(yj, ye, rtol=1e-12)
        np.testing.assert_allclose(yv, ye, rtol=1e-12)
        np.testing.assert_allclose(lj, le, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(lv, le, rtol=1e-12, atol=1e-12)

    def loss(bb):
        z, ld = jax.vmap(bb.inverse_and_log_det)(xs)
        return jnp.mean(-0.5 * jnp.sum(z**2, -1) + ld)

    grads = jax.jit(jax.grad(loss))(b)
    leaves = jax.tree_util.tree_leaves(grads)
    assert len(leaves) == len(jax.tree_util.tree_leaves(b))
    assert all(np.all(np.isfinite(g)) for g in leaves)
    dead = [i for i, g in enumerate(leaves) if not np.any(g != 0)]
    assert not dead, f"parameter leaves {dead} of {len(leaves)} receive no gradient"


def test_array_leaves_are_exactly_the_parameters():
    # masks, permutations and sizes are static: optax must never see them
    lin = nf.Linear.identity(4, jax.random.PRNGKey(0))
    assert len(jax.tree_util.tree_leaves(lin)) == 4
    assert isinstance(lin.perm, tuple)
    assert jax.tree_util.tree_leaves(nf.Normal(3)) == []


@pytest.mark.parametrize("make", [
    lambda: nf.Affine.identity(3), lambda: nf.LeakyReLU.identity(3), lambda: nf.Linear.identity(3),
    lambda: nf.LowRankAffine.init(jax.random.PRNGKey(0), 3, 2), lambda: nf.Shift.identity(3), lambda: nf.Scale.identity(3),
])
def test_identity_at_initialisation(make):
    b = make()
    x = jnp.array([0.3, -1.2, 4.0])
    y, ld = b.forward_and_log_det(x)
    np.testing.assert_allclose(y, x, atol=1e-12)
    assert abs(float(ld)) < 1e-12


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_wrong_event_shape_raises(entry):
    b = entry.make(KEY)
    for bad in (jnp.ones((2, D)), jnp.ones(())):
        with pytest.raises(ValueError, match=r"shape"):
            b.forward_and_log_det(bad)


def test_wrong_dimension_message_names_expected_and_actual():
    with pytest.raises(ValueError, match=r"\(3,\).*\(5,\)"):
        nf.Affine.identity(3).forward(jnp.ones(5))


def test_chain_order_is_data_flow_order():
    shift, scale = nf.Shift(jnp.array([1.0])), nf.Scale(jnp.array([2.0]))
    x = jnp.array([3.0])
    assert float(nf.Chain([shift, scale]).forward(x)[0]) == 8.0  # (3 + 1) * 2
    assert float(nf.Chain([scale, shift]).forward(x)[0]) == 7.0  # 3 * 2 + 1


def test_stack_equals_chain_of_its_layers():
    s = ENTRIES[IDS.index("Stack")].make(KEY)
    c = nf.Chain([s.layer(i) for i in range(s.n_layers)])
    x = jnp.array([0.5, -2.0, 1.0])
    for a, b in zip(s.forward_and_log_det(x), c.forward_and_log_det(x)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_low_rank_affine_matches_dense_matrix():
    b = ENTRIES[IDS.index("LowRankAffine")].make(KEY)
    x = jnp.array([0.5, -2.0, 1.0])
    np.testing.assert_allclose(b.forward(x), b.matrix() @ x + b.shift, rtol=1e-12)
    np.testing.assert_allclose(b.forward_and_log_det(x)[1], jnp.linalg.slogdet(b.matrix())[1], rtol=1e-12)


def test_prelu_rejects_non_positive_slope():
    with pytest.raises(ValueError, match="slope"):
        nf.LeakyReLU.with_slope(0.0, 2)


def test_smooth_leaky_relu_is_continuous_in_slope_and_reduces_to_prelu_outside_the_ramp():
    b = nf.SmoothLeakyReLU(jnp.log(jnp.array([0.3])), delta=0.5)
    p = nf.LeakyReLU(jnp.log(jnp.array([0.3])))
    slope = jax.vmap(lambda u: jax.grad(lambda v: b.forward(v)[0])(jnp.array([u])))
    eps = 1e-6
    left, right = slope(jnp.array([-0.5 - eps, -0.5 + eps])), slope(jnp.array([0.5 - eps, 0.5 + eps]))
    np.testing.assert_allclose(left[:, 0], [0.3, 0.3], atol=1e-5)   # no jump at -delta
    np.testing.assert_allclose(right[:, 0], [1.0, 1.0], atol=1e-5)  # no jump at +delta
    for u in (-3.0, -0.6, 0.6, 4.0):
        np.testing.assert_allclose(b.forward(jnp.array([u])), p.forward(jnp.array([u])), rtol=1e-12)
    with pytest.raises(ValueError, match="delta"):
        nf.SmoothLeakyReLU(jnp.zeros(2), delta=0.0)


def test_mlp_flow_smooth_uses_smooth_kinks_and_starts_as_the_identity():
    m = nf.mlp_flow(jax.random.PRNGKey(0), 2, layers=3, smooth=0.5)
    kinds = [type(b).__name__ for b in m.bijection.bijections]
    assert kinds.count("SmoothLeakyReLU") == 3 and "LeakyReLU" not in kinds
    z = jnp.array([0.2, -1.7])
    y, ld = m.bijection.forward_and_log_det(z)
    np.testing.assert_allclose(y, z, atol=1e-6)
    assert abs(float(ld)) < 1e-6
    with pytest.raises(ValueError, match="smooth"):
        nf.mlp_flow(jax.random.PRNGKey(0), 2, layers=2, smooth=-1.0)
