"""Bad input raises ValueError naming the argument — never a TypeError from deep inside JAX,
never a silent truncation or broadcast. One place checks (nfcore/validate.py); this file walks
every public factory and the training entry points through it."""
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nfcore as nf

KEY = jax.random.PRNGKey(0)
FACTORIES = {
    "realnvp": nf.realnvp, "nice": nf.nice, "nsf": nf.nsf, "maf": nf.maf, "iaf": nf.iaf, "glow": nf.glow,
    "coupling_flow": lambda k, d, **kw: nf.coupling_flow(k, d, transformer=nf.transformers.Additive(), **kw),
}
BAD_COMMON = [
    (dict(layers=2.5), "layers"), (dict(layers=True), "layers"), (dict(layers="3"), "layers"), (dict(layers=0), "layers"),
    (dict(hidden=8), "hidden"), (dict(hidden=(8.5,)), "hidden"), (dict(hidden=(0,)), "hidden"),
    (dict(shift=jnp.array([0.0, jnp.nan])), "shift"), (dict(scale=jnp.array([1.0, jnp.inf])), "scale"),
    (dict(shift=jnp.zeros(3)), "shift"), (dict(scale=jnp.array([1.0, -1.0])), "scale"),
    (dict(activation="sigmoid"), "activation"),
]


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("bad, match", BAD_COMMON, ids=lambda v: str(v)[:30])
def test_every_factory_rejects_bad_common_arguments(name, bad, match):
    with pytest.raises(ValueError, match=match):
        FACTORIES[name](KEY, 2, **bad)


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("dim", [2.5, True, "2", 0])
def test_every_factory_rejects_a_bad_dim(name, dim):
    with pytest.raises(ValueError, match="dim"):
        FACTORIES[name](KEY, dim)


@pytest.mark.parametrize("call, match", [
    (lambda: nf.nsf(KEY, 2, bins=0), "bins"),
    (lambda: nf.nsf(KEY, 2, bins=2.5), "bins"),
    (lambda: nf.nsf(KEY, 2, tail_bound=float("inf")), "tail_bound"),
    (lambda: nf.nsf(KEY, 2, tail_bound=-1.0), "tail_bound"),
    (lambda: nf.realnvp(KEY, 2, log_scale_clamp=0.0), "log_scale_clamp"),
    (lambda: nf.coupling_flow(KEY, 2, transformer=None), "transformer"),
    (lambda: nf.maf(KEY, 2, transformer=None), "transformer"),
    (lambda: nf.glow(KEY, 2, transformer=None), "transformer"),
    (lambda: nf.maf(KEY, 3, order="shuffled"), "order"),
    (lambda: nf.glow(KEY, 2, data=jnp.ones(2)), "data"),
    (lambda: nf.glow(KEY, 2, data=jnp.full((5, 2), jnp.nan)), "data"),
    (lambda: nf.mlp_flow(KEY, 2, rank=2.5), "rank"),
    (lambda: nf.mlp_flow(KEY, 2, layers=2.5), "layers"),
    (lambda: nf.mlp_flow(KEY, 2.5), "dim"),
    (lambda: nf.mlp_flow(KEY, 2, smooth=0.0), "smooth"),
    (lambda: nf.layered_flow(KEY, 2, layers=2, make_layer=lambda k, i: nf.Exp(), period=1.5), "period"),
    (lambda: nf.Normal(2.5), "dim"),
    (lambda: nf.Normal(2, loc=jnp.zeros(3)), "loc"),
    (lambda: nf.Normal(2, log_scale=jnp.zeros((2, 2))), "log_scale"),
    (lambda: nf.Uniform((0.0,), (float("inf"),)), "high"),
    (lambda: nf.Uniform((1.0,), (0.0,)), "high > low"),
    (lambda: nf.Normal(2).sample(KEY, 2.5), "n"),
    (lambda: nf.Normal(2).sample(KEY, 0), "n"),
    (lambda: nf.Normal(2).log_prob(jnp.zeros((4, 3))), r"\(N, 2\)"),
    (lambda: nf.Normal(2).log_prob(jnp.array([0.0, jnp.nan])), "NaN"),
    (lambda: nf.LowRankAffine.init(KEY, 2, 2.5), "rank"),
    (lambda: nf.Linear.identity(2.5), "dim"),
    (lambda: nf.MADE.init(KEY, 3, hidden=(1,)), "hidden"),
    (lambda: nf.Coupling.init(KEY, (True, True)), "mask"),
    (lambda: nf.Chain([nf.Exp]), "Chain entry 0"),
    (lambda: nf.transformers.AffineTransformer(float("nan")), "log_scale_clamp"),
    (lambda: nf.targets.Banana(sd2=0.0), "sd2"),
])
def test_bad_arguments_raise_value_error_naming_them(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_layer_shape_errors_name_the_concrete_class():
    with pytest.raises(ValueError, match=r"^Logit acts on one sample"):
        nf.Logit().forward(jnp.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"^ActNorm acts on one sample of shape \(3,\), got shape \(4,\)"):
        nf.ActNorm.identity(3).forward(jnp.ones(4))


@pytest.fixture(scope="module")
def small():
    x = nf.targets.Banana().sample(jax.random.PRNGKey(1), 2000)
    return nf.realnvp(KEY, 2, layers=2, hidden=(8,)), x


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=2.5), "steps"), (dict(steps=10, batch_size=64.5), "batch_size"),
    (dict(steps=10, sub_batches=1.5), "sub_batches"), (dict(steps=10, chunk=2.5), "chunk"),
    (dict(steps=10, ema=1.5), "ema"), (dict(steps=10, learning_rate=float("inf")), "learning_rate"),
])
def test_fit_rejects_bad_options(small, kwargs, match):
    m, x = small
    with pytest.raises(ValueError, match=match):
        nf.fit(KEY, m, x, progress=False, **kwargs)


@pytest.mark.parametrize("bad", [jnp.inf, -jnp.inf, jnp.nan])
def test_fit_rejects_non_finite_data_and_held_out(small, bad):
    """Today a held-out inf would make early stopping return the untrained model: it must raise."""
    m, x = small
    with pytest.raises(ValueError, match="fit data"):
        nf.fit(KEY, m, x.at[3, 0].set(bad), steps=5, progress=False)
    with pytest.raises(ValueError, match="held_out"):
        nf.fit(KEY, m, x, steps=5, held_out=x[:100].at[7, 1].set(bad), patience=1, progress=False)


def test_data_parallel_fit_matches_one_device():
    """Two forced host devices (a subprocess, so the other tests keep one): the batch is sharded,
    the parameters replicated, and the run equals the single-device run up to round-off."""
    code = textwrap.dedent("""
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
        import jax, numpy as np, nfcore as nf
        assert len(jax.devices()) == 2
        t = nf.targets.Banana()
        x = t.sample(jax.random.PRNGKey(1), 4000)
        m = nf.realnvp(jax.random.PRNGKey(0), 2, layers=4, hidden=(16,), shift=x.mean(0), scale=x.std(0))
        kw = dict(steps=200, batch_size=256, chunk=100, held_out=x[:1000], progress=False)
        one = nf.fit(jax.random.PRNGKey(2), m, x, **kw)
        two = nf.fit(jax.random.PRNGKey(2), m, x, devices=jax.devices(), **kw)
        leaf = jax.tree_util.tree_leaves(two.model)[0]
        assert len(leaf.sharding.device_set) == 2, leaf.sharding
        np.testing.assert_allclose(two.loss, one.loss, rtol=1e-4, atol=1e-4)
        for a, b in zip(jax.tree_util.tree_leaves(two.model), jax.tree_util.tree_leaves(one.model)):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
        assert two.loss[-1] < two.loss[0] - 0.5
        print("ok", float(np.max(np.abs(two.loss - one.loss))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr[-3000:]
    with pytest.raises(ValueError, match="divisible"):
        m = nf.realnvp(KEY, 2, layers=2, hidden=(8,))
        nf.fit(KEY, m, nf.targets.Banana().sample, steps=5, batch_size=5, devices=[jax.devices()[0]] * 2,
               progress=False)
