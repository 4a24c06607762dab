"""nf.save / nf.load: bit-identical round trips, structure checks, no pickle, bad files raise."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf
from nfcore.io import load, save
from nfcore.testing import randomise

KEY = jax.random.PRNGKey(0)
X = 2.0 * jax.random.normal(jax.random.PRNGKey(1), (32, 2))
SMALL = dict(layers=2, hidden=(8,))
log_prob = jax.jit(lambda model, x: model.log_prob(x))  # one compilation per structure


def perturbed(model, key=KEY):
    """Every leaf moved away from its (often identity) initial value."""
    return randomise(model, key, 0.3)


def elementwise_chain():
    return nf.Transformed(nf.Normal(2), nf.Chain([
        nf.Affine.identity(2), nf.LeakyReLU.identity(2), nf.SmoothLeakyReLU.identity(2),
        nf.Invert(nf.Shift.identity(2)), nf.LowRankAffine.init(KEY, 2, 1)]))


MODELS = {
    "realnvp": lambda: nf.realnvp(KEY, 2, **SMALL),
    "nice": lambda: nf.nice(KEY, 2, **SMALL),
    "realnvp_unrolled": lambda: nf.unrolled(nf.realnvp(KEY, 2, **SMALL)),
    "nsf": lambda: nf.nsf(KEY, 2, bins=4, tail_bound=3.0, **SMALL),
    "maf_additive": lambda: nf.maf(KEY, 2, transformer=nf.transformers.Additive(), **SMALL),
    "maf": lambda: nf.maf(KEY, 2, **SMALL),
    "maf_random": lambda: nf.maf(KEY, 3, order="random", **SMALL),
    "iaf_random": lambda: nf.iaf(KEY, 3, order="random", **SMALL),
    "glow": lambda: nf.glow(KEY, 2, data=X, **SMALL),
    "glow_spline": lambda: nf.glow(KEY, 2, transformer=nf.RationalQuadraticSpline(4, 3.0), **SMALL),
    "mlp_flow": lambda: nf.mlp_flow(KEY, 2, layers=2),
    "mlp_flow_smooth": lambda: nf.mlp_flow(KEY, 2, layers=2, smooth=0.5),
    "chain": elementwise_chain,
    "normal": lambda: nf.Normal(2, jnp.ones(2), jnp.zeros(2)),
    "uniform": lambda: nf.Uniform((-4.0, -4.0), (4.0, 4.0)),
    "banana": lambda: nf.targets.Banana(),
    "two_moons": lambda: nf.targets.TwoMoons(),
    "eight_gaussians": lambda: nf.targets.EightGaussians(),
    "checkerboard": lambda: nf.targets.Checkerboard(),
}


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_is_bit_identical(name, tmp_path):
    model = perturbed(MODELS[name]())
    x = X if model.dim == 2 else jax.random.normal(KEY, (16, model.dim))
    path = tmp_path / "model.npz"
    save(path, model)
    back = load(path, like=model)
    assert type(back) is type(model)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(model)
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(back)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(log_prob(model, x), log_prob(back, x))


def test_float32_model_keeps_its_dtype(tmp_path):
    model = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), perturbed(nf.realnvp(KEY, 2, **SMALL)))
    save(tmp_path / "m.npz", model)
    back = load(tmp_path / "m.npz")
    assert {a.dtype for a in jax.tree_util.tree_leaves(back)} == {jnp.dtype(jnp.float32)}
    x = X.astype(jnp.float32)
    np.testing.assert_array_equal(log_prob(model, x), log_prob(back, x))


def test_bijection_alone_round_trips(tmp_path):
    layer = perturbed(nf.Linear.identity(3, KEY))
    save(tmp_path / "b.npz", layer)
    back = load(tmp_path / "b.npz")
    assert back.perm == layer.perm
    z = jnp.arange(3.0)
    for a, b in zip(layer.inverse_and_log_det(z), back.inverse_and_log_det(z)):
        np.testing.assert_array_equal(a, b)


def test_glow_from_another_key_is_a_mismatch(tmp_path):
    """Same shapes, different static permutations: load(like=...) must notice."""
    model = perturbed(nf.glow(KEY, 2, data=X, **SMALL))
    # a key whose permutations differ (static, so they are in the treedef): which key that is
    # depends on jax's PRNG (jax_threefry_partitionable became the default in jax 0.5)
    other = next(g for k in range(1, 20) if jax.tree_util.tree_structure(
        g := nf.glow(jax.random.PRNGKey(k), 2, data=X, **SMALL)) != jax.tree_util.tree_structure(model))
    assert [a.shape for a in jax.tree_util.tree_leaves(model)] == [
        a.shape for a in jax.tree_util.tree_leaves(other)]
    save(tmp_path / "g.npz", model)
    with pytest.raises(ValueError, match="perm"):
        load(tmp_path / "g.npz", like=other)
    # the loaded model carries its own permutations: same density without any `like`
    np.testing.assert_array_equal(log_prob(load(tmp_path / "g.npz"), X), log_prob(model, X))


def test_like_with_other_shapes_or_classes_raises(tmp_path):
    save(tmp_path / "m.npz", nf.realnvp(KEY, 2, **SMALL))
    with pytest.raises(ValueError, match="shape"):
        load(tmp_path / "m.npz", like=nf.realnvp(KEY, 2, layers=2, hidden=(16,)))
    with pytest.raises(ValueError, match="does not match"):
        load(tmp_path / "m.npz", like=nf.nice(KEY, 2, **SMALL))


def test_file_holds_no_pickle(tmp_path):
    model = perturbed(nf.maf(KEY, 3, order="random", **SMALL))
    save(tmp_path / "m.npz", model)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        contents = {k: z[k] for k in z.files}  # raises if any entry needed pickle
    desc = json.loads(str(contents.pop("__structure__")))
    assert desc["tree"]["node"] == "Transformed"
    assert all(a.dtype != object for a in contents.values())
    assert len(contents) == len(jax.tree_util.tree_leaves(model))


def _rewrite(path, edit):
    with np.load(path, allow_pickle=False) as z:
        contents = {k: z[k] for k in z.files}
    edit(contents)
    np.savez(path, **contents)


def test_bad_files_raise_value_error(tmp_path):
    path = tmp_path / "m.npz"
    save(path, perturbed(nf.realnvp(KEY, 2, **SMALL)))
    data = path.read_bytes()

    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable"):
        load(tmp_path / "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable"):
        load(tmp_path / "junk.npz")

    def rename(c):
        c["__structure__"] = np.array(str(c["__structure__"]).replace('"Coupling"', '"os.system"'))
    _rewrite(path, rename)
    with pytest.raises(ValueError, match="unknown class 'os.system'"):
        load(path)

    path.write_bytes(data)
    _rewrite(path, lambda c: c.pop("a1"))
    with pytest.raises(ValueError, match="missing"):
        load(path)

    path.write_bytes(data)
    _rewrite(path, lambda c: c.update(a1=np.zeros((5, 5))))
    with pytest.raises(ValueError, match="should be"):
        load(path)

    path.write_bytes(data)
    _rewrite(path, lambda c: c.update(__structure__=np.array(json.dumps(
        {"format": "nfcore-model", "version": 1, "tree": {"node": "Chain", "data": 3}}))))
    with pytest.raises(ValueError, match="malformed"):
        load(path)

    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a readable"):
        load(tmp_path / "plain.npz")


def test_path_is_used_as_given_and_missing_files_say_so(tmp_path):
    assert nf.save is save and nf.load is load
    model = nf.targets.Banana()
    nf.save(tmp_path / "banana", model)  # no ".npz" appended
    assert nf.load(tmp_path / "banana") == model
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.npz")


def test_saving_a_non_nfcore_object_raises(tmp_path):
    with pytest.raises(ValueError):
        save(tmp_path / "m.npz", nf.Chain([lambda x: x]))
    assert not os.path.exists(tmp_path / "m.npz")
