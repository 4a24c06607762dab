"""MADE masks, MAF/IAF directions and twins, the maf/iaf factories, and argument checks.

(The generic bijection checks — log-det vs jax.jacobian, float32 round trips, extremes,
jit/vmap/grad — run on the MAF/IAF entries of tests/registry.py.)
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf
from nfcore.autoregressive import MaskedAutoregressive
from nfcore.made import MADE, hidden_degrees
from nfcore.testing import autodiff_log_det, randomise
from nfcore.transformers import Additive, AffineTransformer

KEY = jax.random.PRNGKey(0)
ORDERS = ["natural", "reversed", "random", (3, 0, 4, 2, 1)]


@dataclasses.dataclass(frozen=True)
class Inverted:
    """A transformer with its directions swapped: ``Inverted(tau).forward = tau.inverse``."""

    base: object

    @property
    def n_params(self):
        return self.base.n_params

    def forward(self, x, params):
        return self.base.inverse(x, params)

    def inverse(self, y, params):
        return self.base.forward(y, params)


def _layer(key, dim=5, transformer=AffineTransformer(), order="natural", parallel="inverse"):
    b = MaskedAutoregressive.init(key, dim, hidden=(8, 8), transformer=transformer, order=order, parallel=parallel)
    return randomise(b, jax.random.fold_in(key, 1))


# --- MADE --------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ORDERS, ids=str)
def test_made_jacobian_is_strictly_triangular_in_its_order(order):
    dim, n_params = 5, 3
    made = randomise(MADE.init(KEY, dim, hidden=(6, 9), n_params=n_params, order=order, zero_last=False), jax.random.PRNGKey(1))
    rank = np.asarray(made.rank)
    assert sorted(rank.tolist()) == list(range(dim))
    if order == "natural":
        assert made.rank == (0, 1, 2, 3, 4)
    if order == "reversed":
        assert made.rank == (4, 3, 2, 1, 0)
    if isinstance(order, tuple):
        assert [int(i) for i in np.argsort(rank)] == list(order)  # order[k] = variable at position k
    for x in jax.random.normal(jax.random.PRNGKey(2), (3, dim)):
        J = np.asarray(jax.jacobian(made)(x))  # (D, n_params, D): d out[i, p] / d x[j]
        assert J.shape == (dim, n_params, dim)
        allowed = rank[None, :] < rank[:, None]
        np.testing.assert_array_equal(made.connectivity(), allowed)
        # exact zeros wherever rank[j] >= rank[i] (incl. the diagonal) ...
        assert np.all(J[~np.broadcast_to(allowed[:, None, :], J.shape)] == 0.0)
        # ... and every allowed dependency is present (no hidden path was lost)
        assert np.all(J[np.broadcast_to(allowed[:, None, :], J.shape)] != 0.0)
        # in the order's coordinates the Jacobian is strictly lower triangular
        perm = np.argsort(rank)
        Jo = np.abs(J[perm][:, :, perm]).sum(1)
        assert np.all(np.triu(Jo) == 0) and np.all(Jo[np.tril_indices(dim, -1)] != 0)


def test_made_random_order_comes_from_the_key():
    a = MADE.init(jax.random.PRNGKey(3), 6, hidden=(8,), order="random").rank
    b = MADE.init(jax.random.PRNGKey(3), 6, hidden=(8,), order="random").rank
    others = {MADE.init(jax.random.PRNGKey(k), 6, hidden=(8,), order="random").rank for k in range(4, 10)}
    assert a == b and len(others | {a}) > 1


def test_made_masks_are_static_and_every_hidden_unit_connects():
    dim, hidden = 4, (3, 5)
    made = MADE.init(KEY, dim, hidden=hidden, n_params=2)
    leaves = jax.tree_util.tree_leaves(made)
    assert len(leaves) == 2 * (len(hidden) + 1)  # weights and biases only: masks never reach optax
    assert [w.shape for w in made.weights] == [(4, 3), (3, 5), (5, 8)]
    assert made.degrees == hidden_degrees(dim, hidden) == ((0, 1, 2), (0, 1, 2, 0, 1))
    masks = made.masks()
    assert all(isinstance(m, np.ndarray) and m.dtype == bool for m in masks)
    for m_in, m_out in zip(masks[:-1], masks[1:]):
        assert np.all(m_in.sum(0) >= 1), "a hidden unit has no input"
        assert np.all(m_out.sum(1) >= 1), "a hidden unit feeds nothing"


def test_made_is_zero_at_init_and_batches():
    made = MADE.init(KEY, 3, hidden=(8,), n_params=2)
    x = jax.random.normal(KEY, (7, 3))
    out = made(x)
    assert out.shape == (7, 3, 2) and np.all(np.asarray(out) == 0.0)
    made = randomise(made, KEY)
    np.testing.assert_allclose(made(x), jax.vmap(made)(x), rtol=1e-12)


# --- MAF / IAF ---------------------------------------------------------------------------------

@pytest.mark.parametrize("transformer, order", [(AffineTransformer(), o) for o in ORDERS] + [(Additive(), "random")],
                         ids=[f"affine-{o}" for o in ORDERS] + ["additive-random"])
def test_maf_sequential_forward_and_parallel_inverse_are_exact_inverses(transformer, order):
    b = _layer(KEY, 5, transformer, order, "inverse")
    z = jax.random.normal(jax.random.PRNGKey(4), (5,))
    x, ld = b.forward_and_log_det(z)
    z_back, ild = b.inverse_and_log_det(x)
    np.testing.assert_allclose(z_back, z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.forward(b.inverse(z)), z, rtol=1e-12, atol=1e-12)
    assert abs(float(ld + ild)) < 1e-12
    # the textbook sampler, one variable at a time in the order, gives the same x and log-det
    rank = np.asarray(b.made.rank)
    x_ref, ld_ref = jnp.zeros(5), 0.0
    for i in np.argsort(rank):
        y_i, ld_i = transformer.forward(z[i:i + 1], b.made(x_ref)[i:i + 1])
        x_ref, ld_ref = x_ref.at[i].set(y_i[0]), ld_ref + ld_i[0]
    np.testing.assert_allclose(x, x_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ld, ld_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("transformer", [AffineTransformer(), Additive()], ids=["affine", "additive"])
def test_maf_and_iaf_with_shared_params_are_twins(transformer):
    maf_layer = _layer(KEY, 4, transformer, "random", "inverse")
    # IAF with the same MADE and the transformer's directions swapped is the MAF's inverse
    iaf_layer = MaskedAutoregressive(maf_layer.made, Inverted(transformer), "forward")
    inv = nf.Invert(maf_layer)
    x = 2.0 * jax.random.normal(jax.random.PRNGKey(5), (4,))
    for a, b in [(iaf_layer.forward_and_log_det(x), maf_layer.inverse_and_log_det(x)),
                 (iaf_layer.inverse_and_log_det(x), maf_layer.forward_and_log_det(x)),
                 (inv.forward_and_log_det(x), iaf_layer.forward_and_log_det(x))]:
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-12)


def test_iaf_parallel_forward_is_one_pass_and_its_inverse_is_sequential():
    b = _layer(KEY, 4, AffineTransformer(), "reversed", "forward")
    z = jax.random.normal(jax.random.PRNGKey(6), (4,))
    s, t = AffineTransformer().scale_and_shift(b.made(z))
    x, ld = b.forward_and_log_det(z)
    np.testing.assert_allclose(x, z * jnp.exp(s) + t, rtol=1e-12)  # x = tau(z; MADE(z))
    np.testing.assert_allclose(ld, jnp.sum(s), rtol=1e-12)
    z_back, ild = b.inverse_and_log_det(x)
    np.testing.assert_allclose(z_back, z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ild, -ld, rtol=1e-12, atol=1e-12)


def test_any_transformer_object_works_e_g_the_spline():
    tr = nf.RationalQuadraticSpline(bins=5, tail_bound=3.0)  # imported, not importorskip: must not skip
    @jax.jit
    def check(b, z):
        x, ld = b.forward_and_log_det(z)
        return x, ld, b.inverse(x), autodiff_log_det(b.forward, z)

    for parallel in ("inverse", "forward"):
        b = _layer(KEY, 3, tr, "reversed", parallel)
        z = jnp.array([0.4, -2.0, 1.1])
        x, ld, z_back, ld_ref = check(b, z)
        assert not np.allclose(x, z)
        np.testing.assert_allclose(z_back, z, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(ld, ld_ref, rtol=1e-10, atol=1e-10)


def test_one_dimensional_maf_is_an_elementwise_transform():
    # D = 1: nothing to condition on, MADE(x) is its output bias; the flow is still valid
    b = _layer(KEY, 1, AffineTransformer(), "natural", "inverse")
    z = jnp.array([0.7])
    x, ld = b.forward_and_log_det(z)
    s, t = AffineTransformer().scale_and_shift(b.made.biases[-1].reshape(1, 2))
    np.testing.assert_allclose(x, z * jnp.exp(s) + t, rtol=1e-12)
    np.testing.assert_allclose(b.inverse(x), z, rtol=1e-12)
    m = nf.maf(KEY, 1, layers=2, hidden=(4,))
    lp = m.log_prob(jnp.ones((3, 1)))  # identity at init: the standard normal's log-density
    assert lp.shape == (3,)
    np.testing.assert_allclose(lp, -0.5 * np.log(2 * np.pi) - 0.5, rtol=1e-12)


# --- factories ---------------------------------------------------------------------------------

@pytest.mark.parametrize("factory", [nf.maf, nf.iaf])
@pytest.mark.parametrize("order", ["alternate", "random"])
def test_factories_are_identity_at_init(factory, order):
    m = factory(KEY, 3, layers=5, hidden=(8, 8), order=order)
    z = jnp.array([0.3, -1.1, 2.0])
    for fn in (m.bijection.forward_and_log_det, m.bijection.inverse_and_log_det):
        y, ld = fn(z)
        np.testing.assert_allclose(y, z, atol=1e-12)
        assert abs(float(ld)) < 1e-12
    parts = m.bijection.bijections
    if order == "alternate":  # two scanned (natural, reversed) pairs, then one natural layer
        assert isinstance(parts[0], nf.Stack) and parts[0].n_layers == 2 and len(parts) == 2
        pair = parts[0].layer(0).bijections
        assert [p.made.rank for p in pair] == [(0, 1, 2), (2, 1, 0)] and parts[1].made.rank == (0, 1, 2)
    else:  # a plain chain of layers, each with its own order
        assert len(parts) == 5 and all(isinstance(p, MaskedAutoregressive) for p in parts)
        assert len({p.made.rank for p in parts}) > 1
    found = [p for p in jax.tree_util.tree_leaves(m.bijection, is_leaf=lambda n: isinstance(n, MaskedAutoregressive))
             if isinstance(p, MaskedAutoregressive)]
    # alternate: the stacked pair (2 layer objects with leading axis 2) + the trailing layer; random: 5 layers
    assert len(found) == (3 if order == "alternate" else 5)
    assert all(p.parallel == ("inverse" if factory is nf.maf else "forward") for p in found)


def test_factory_standardisation_layer_comes_last():
    m = nf.maf(KEY, 2, layers=2, hidden=(8,), shift=jnp.array([1.0, -2.0]), scale=jnp.array([2.0, 0.5]))
    np.testing.assert_allclose(m.bijection.forward(jnp.array([1.0, 1.0])), [3.0, -1.5], rtol=1e-6)
    assert isinstance(m.bijection.bijections[-1], nf.Affine)


def test_layered_flow_rebuilds_coupling_flow_exactly():
    # the shared factory helper is a drop-in for coupling_flow's construction (same keys, same params)
    m1, m2 = nf.alternating_masks(3)
    tr = AffineTransformer()
    ref = nf.coupling_flow(KEY, 3, transformer=tr, layers=5, hidden=(8,), shift=jnp.ones(3), scale=2 * jnp.ones(3))
    new = nf.layered_flow(KEY, 3, layers=5, make_layer=lambda k, i: nf.Coupling.init(k, (m1, m2)[i], hidden=(8,),
                                                                                     transformer=tr),
                          period=2, shift=jnp.ones(3), scale=2 * jnp.ones(3))
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(ref)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def moons():
    t = nf.targets.TwoMoons()
    x = t.sample(jax.random.PRNGKey(1), 6000).astype(jnp.float32)
    return t, x[:4000], x[4000:]


@pytest.mark.parametrize("factory", [nf.maf, nf.iaf])
def test_factories_train_on_two_moons(factory, moons):
    t, train, held_out = moons
    model = factory(jax.random.PRNGKey(2), 2, layers=4, hidden=(32,), shift=train.mean(0), scale=train.std(0))
    before = float(nf.nll(model, held_out))
    r = nf.fit(jax.random.PRNGKey(3), model, train, steps=300, batch_size=256, chunk=100, held_out=held_out,
               learning_rate=3e-3, progress=False)
    assert r.status == "done" and np.all(np.isfinite(r.loss))
    assert r.held_out[-1] < r.held_out[0] < before, (before, r.held_out)
    assert r.held_out[-1] < before - 0.3, (before, r.held_out)
    x = r.model.sample(jax.random.PRNGKey(4), 100)
    assert x.shape == (100, 2) and np.all(np.isfinite(x))


# --- argument checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=0), "dim must be an integer >= 1"),
    (dict(dim=2.5), "dim must be an integer >= 1"),
    (dict(dim=6, hidden=(8, 4)), r"hidden widths must be >= 5 "),
    (dict(hidden=(0,)), "hidden must be a tuple of positive integers"),
    (dict(hidden=("a",)), "hidden must be a tuple of positive integers"),
    (dict(hidden=8), "hidden must be a tuple of positive integers"),
    (dict(n_params=0), "n_params must be an integer >= 1"),
    (dict(order="diagonal"), "unknown order"),
    (dict(order=(0, 0, 1)), "permutation of range"),
    (dict(order=(0, 1)), "permutation of range"),
    (dict(activation="sigmoid"), "unknown activation"),
])
def test_made_bad_arguments(kwargs, match):
    args = dict(dim=3, hidden=(8,), n_params=2, order="natural", activation="silu") | kwargs
    with pytest.raises(ValueError, match=match):
        MADE.init(KEY, **args)


def test_made_random_order_inside_vmap_raises():
    with pytest.raises(ValueError, match="concrete key"):
        jax.vmap(lambda k: MADE.init(k, 3, hidden=(8,), order="random"))(jax.random.split(KEY, 2))


def test_made_wrong_input_shape_raises():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\).*\(4,\)"):
        MADE.init(KEY, 3, hidden=(8,))(jnp.ones(4))


@pytest.mark.parametrize("factory", [nf.maf, nf.iaf])
@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=0), "layers must be an integer >= 1"),
    (dict(dim=0), "dim must be an integer >= 1"),
    (dict(dim=5, hidden=(3,)), "hidden widths must be >="),
    (dict(hidden=8), "hidden must be a tuple of positive integers"),
    (dict(order="natural"), "order must be 'alternate'"),
    (dict(transformer="affine"), "transformer must be an nfcore transformer"),
    (dict(activation="sigmoid"), "activation must be one of"),
    (dict(shift=jnp.zeros(3)), r"shift must have shape \(2,\)"),
    (dict(scale=-jnp.ones(2)), "scale must be > 0"),
    (dict(scale=jnp.array([1.0, jnp.nan])), "scale must contain only finite values"),
])
def test_factory_bad_arguments(factory, kwargs, match):
    args = dict(dim=2, layers=2, hidden=(8,)) | kwargs
    dim = args.pop("dim")
    with pytest.raises(ValueError, match=match):
        factory(KEY, dim, **args)


def test_layer_bad_arguments():
    with pytest.raises(ValueError, match="parallel must be"):
        MaskedAutoregressive.init(KEY, 3, hidden=(8,), parallel="both")
    made = MADE.init(KEY, 3, hidden=(8,), n_params=1)
    with pytest.raises(ValueError, match="parallel must be"):
        MaskedAutoregressive(made, Additive(), "sideways")
    with pytest.raises(ValueError, match="n_params=2"):  # a MADE built for the wrong transformer
        MaskedAutoregressive(made, AffineTransformer()).inverse(jnp.ones(3))
