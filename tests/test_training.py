"""fit and the metrics: it learns, it is reproducible, and it fails loudly and safely."""
import importlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nfcore as nf


@pytest.fixture(scope="module")
def banana():
    t = nf.targets.Banana()
    x = t.sample(jax.random.PRNGKey(1), 20_000).astype(jnp.float32)
    return t, x


def _small(x, key=0):
    return nf.realnvp(jax.random.PRNGKey(key), 2, layers=4, hidden=(32, 32), shift=x.mean(0), scale=x.std(0))


def test_realnvp_is_identity_at_init(banana):
    t, x = banana
    m = nf.realnvp(jax.random.PRNGKey(0), 2, layers=4, hidden=(16,))
    z = jnp.array([0.3, -1.1])
    y, ld = m.bijection.forward_and_log_det(z)
    np.testing.assert_allclose(y, z, atol=1e-7)
    assert abs(float(ld)) < 1e-7


def test_default_chunks_are_equal_so_training_compiles_once(banana, monkeypatch):
    """800 steps run as 2 x 400 (not 500 + 300, which compiled a second program for the rest)."""
    model, compiles = _small(banana[1]), []
    original = jax.stages.Lowered.compile
    monkeypatch.setattr(jax.stages.Lowered, "compile", lambda self, *a, **k: compiles.append(1) or original(self, *a, **k))
    r = nf.fit(jax.random.PRNGKey(2), model, banana[1], steps=800, batch_size=64, progress=False)
    assert r.steps == 800 and r.chunk_seconds.shape == (2,) and len(compiles) == 1


def test_fit_learns_the_banana_from_a_sampler(banana):
    t, x = banana
    r = nf.fit(jax.random.PRNGKey(2), _small(x), t.sample, steps=1500, chunk=500, progress=False)
    kl, se = nf.kl_divergence(r.model, t, x[:5000])
    assert r.status == "done" and r.steps == 1500 and r.loss.shape == (1500,)
    assert r.chunk_seconds.shape == (3,) and np.isclose(r.chunk_seconds.sum(), r.run_seconds)
    assert kl < 0.05 and se < 0.01, (kl, se)


def test_fit_from_array_with_held_out_and_same_key_same_result(banana):
    t, x = banana
    kw = dict(steps=300, chunk=100, held_out=x[-2000:], progress=False)
    r1 = nf.fit(jax.random.PRNGKey(5), _small(x[:10_000]), x[:10_000], **kw)
    r2 = nf.fit(jax.random.PRNGKey(5), _small(x[:10_000]), x[:10_000], **kw)
    assert r1.eval_steps.tolist() == [100, 200, 300]
    assert r1.held_out[-1] < r1.held_out[0]
    np.testing.assert_array_equal(r1.loss, r2.loss)


def test_early_stopping_returns_the_best_model(banana):
    """A held-out set the model cannot keep improving on: a far-off cluster whose NLL rises as the
    model fits the banana. patience=1 must stop at the first rise and return the best model."""
    t, x = banana
    far = x[:500] * 0.1 + jnp.array([40.0, -40.0])
    r = nf.fit(jax.random.PRNGKey(0), _small(x), x, steps=2000, chunk=50, held_out=far, patience=1,
               learning_rate=1e-2, progress=False)
    assert r.stopped == "early_stop" and r.status == f"early stop at step {r.steps}" and r.steps < 2000
    assert r.held_out[-1] > r.held_out.min()
    assert nf.nll(r.model, far) == pytest.approx(float(r.held_out.min()), rel=1e-5)


def test_patience_without_held_out_and_learning_rate_with_optimizer_raise(banana):
    t, x = banana
    with pytest.raises(ValueError, match="patience"):
        nf.fit(jax.random.PRNGKey(0), _small(x), x, steps=10, patience=2, progress=False)
    with pytest.raises(ValueError, match="learning_rate.*optimizer"):
        nf.fit(jax.random.PRNGKey(0), _small(x), x, steps=10, learning_rate=1e-3, optimizer=optax.adam(1e-3),
               progress=False)


def test_non_finite_loss_stops_names_step_and_returns_last_good(banana):
    t, x = banana
    with pytest.warns(RuntimeWarning, match=r"non-finite loss or parameters at step \d+"):
        r = nf.fit(jax.random.PRNGKey(0), _small(x), x, steps=400, chunk=100, optimizer=optax.sgd(1e8), progress=False)
    assert r.stopped == "non_finite" and r.status == f"non-finite loss at step {r.stop_step}"
    assert r.steps in (r.stop_step, r.stop_step - 1) and len(r.loss) == r.steps and np.all(np.isfinite(r.loss))
    leaves = jax.tree_util.tree_leaves(r.model)
    assert all(np.all(np.isfinite(a)) for a in leaves)
    assert np.isfinite(nf.nll(r.model, x[:1000]))
    # the returned parameters are those after step stop_step - 1: rerunning that many steps gives them
    if r.steps > 0:
        again = nf.fit(jax.random.PRNGKey(0), _small(x), x, steps=r.steps, chunk=100, optimizer=optax.sgd(1e8),
                       progress=False)
        for a, b in zip(leaves, jax.tree_util.tree_leaves(again.model)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps must be an integer"),
    (dict(steps=2.5), "steps"),
    (dict(steps=True), "steps"),
    (dict(steps=10, batch_size=64.5), "batch_size"),
    (dict(steps=10, patience=1.5, held_out=None), "patience"),
    (dict(steps=10, learning_rate=-1.0), "learning_rate"),
    (dict(steps=10, learning_rate=float("nan")), "learning_rate"),
    (dict(steps=10, batch_size=0), "batch_size"),
    (dict(steps=10, batch_size=10**6), "larger than the data"),
    (dict(steps=10, chunk=0), "chunk"),
    (dict(steps=10, learning_rate="1e-3"), "learning_rate"),
    (dict(steps=10, sub_batches=0), "sub_batches"),
    (dict(steps=10, batch_size=8, sub_batches=9), "sub_batches"),
    (dict(steps=10, ema=1.0), "ema"),
    (dict(steps=10, ema=-0.5), "ema"),
])
def test_fit_rejects_bad_hyper_parameters(banana, kwargs, match):
    t, x = banana
    with pytest.raises(ValueError, match=match):
        nf.fit(jax.random.PRNGKey(0), _small(x), x[:1000], progress=False, **kwargs)


def test_fit_rejects_bad_data(banana):
    t, x = banana
    m = _small(x)
    with pytest.raises(ValueError, match=r"\(N, 2\).*\(100, 3\)"):
        nf.fit(jax.random.PRNGKey(0), m, jnp.zeros((100, 3)), steps=5, progress=False)
    bad = x[:1000].at[17, 1].set(jnp.nan)
    with pytest.raises(ValueError, match="NaN"):
        nf.fit(jax.random.PRNGKey(0), m, bad, steps=5, progress=False)
    with pytest.raises(ValueError, match="model"):
        nf.fit(jax.random.PRNGKey(0), m.bijection, x, steps=5, progress=False)


def test_kl_divergence_of_the_target_itself_is_zero(banana):
    t, x = banana
    kl, se = nf.kl_divergence(t, t, x[:1000])
    assert kl == 0.0 and se == 0.0


def test_nice_is_volume_preserving_and_learns_a_shift(banana):
    """Additive couplings keep log-det 0 at every point, before and after training; with the final
    scaling layer NICE still fits a shifted Gaussian (KL to it drops below 0.01 nats)."""
    target = nf.Normal(2, loc=jnp.array([3.0, -2.0]), log_scale=jnp.zeros(2))
    x = target.sample(jax.random.PRNGKey(3), 4000)
    m = nf.nice(jax.random.PRNGKey(0), 2, layers=2, hidden=(16,))
    r = nf.fit(jax.random.PRNGKey(1), m, target.sample, steps=400, batch_size=256, learning_rate=1e-2, progress=False)
    coupling_part = r.model.bijection.bijections[0]
    lds = jax.vmap(lambda v: coupling_part.forward_and_log_det(v)[1])(x[:50])
    assert np.all(np.asarray(lds) == 0.0)
    kl, se = nf.kl_divergence(r.model, target, x)
    assert kl < 0.01, (kl, se)


@pytest.mark.parametrize("bad, match", [(dict(layers=0), "layers"), (dict(hidden=(0,)), "hidden"), (dict(dim=1), "dim")])
def test_factory_rejects_bad_arguments(bad, match):
    kw = dict(dim=2, layers=2, hidden=(8,)) | bad
    with pytest.raises(ValueError, match=match):
        nf.realnvp(jax.random.PRNGKey(0), **kw)


def _wiggle(m):
    return jax.tree_util.tree_map(lambda a: a + 0.1 * jnp.sin(jnp.arange(a.size).reshape(a.shape)), m)


def test_scanned_stack_matches_a_chain_of_its_layers(banana):
    t, x = banana
    m = _wiggle(nf.realnvp(jax.random.PRNGKey(0), 2, layers=4, hidden=(8,)))
    stack = m.bijection.bijections[0]
    chain = nf.Chain([b for i in range(stack.n_layers) for b in stack.layer(i).bijections])
    np.testing.assert_allclose(jax.vmap(stack.inverse_and_log_det)(x[:10])[1],
                               jax.vmap(chain.inverse_and_log_det)(x[:10])[1], rtol=1e-5)


@pytest.mark.parametrize("unroll", [1, 2, True])
def test_unrolled_model_is_the_same_flow(banana, unroll):
    t, x = banana
    m = _wiggle(nf.realnvp(jax.random.PRNGKey(0), 2, layers=8, hidden=(8,)))
    u = nf.unrolled(m, unroll)
    assert u.bijection.bijections[0].unroll == ("all" if unroll is True else unroll)
    assert m.bijection.bijections[0].unroll == 1
    # True must not share a treedef with 1, or a jitted function would reuse the scanned program
    assert jax.tree_util.tree_structure(u) != jax.tree_util.tree_structure(m) or unroll == 1
    for a, b in zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(m)):
        assert a is b
    np.testing.assert_allclose(jax.jit(u.log_prob)(x[:50]), jax.jit(m.log_prob)(x[:50]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, False, "every"])
def test_unrolled_rejects_bad_unroll(bad):
    with pytest.raises(ValueError, match="unroll"):
        nf.unrolled(nf.realnvp(jax.random.PRNGKey(0), 2, layers=4, hidden=(8,)), bad)


def test_sub_batches_give_the_same_training_run(banana):
    """Summing the loss over slices of the batch is the same loss, so the same gradient steps
    (up to float32 rounding): losses and held-out NLL agree closely, also with uneven slices."""
    t, x = banana
    m = nf.unrolled(nf.realnvp(jax.random.PRNGKey(0), 2, layers=4, hidden=(16,), shift=x.mean(0), scale=x.std(0)))
    runs = [nf.fit(jax.random.PRNGKey(1), m, t.sample, steps=60, batch_size=100, optimizer=optax.adam(1e-3),
                   held_out=x[:2000], chunk=30, sub_batches=k, progress=False) for k in (1, 2, 3)]
    for r in runs[1:]:
        np.testing.assert_allclose(r.loss, runs[0].loss, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(r.held_out, runs[0].held_out, rtol=1e-4)
    assert runs[0].loss[-1] < runs[0].loss[0] - 0.1  # it did train


def test_chunked_evaluation_matches_one_batch(banana, monkeypatch):
    """kl_divergence and the held-out NLL evaluate large sets in chunks (bounded memory), with a
    padded last chunk: the result must equal evaluating all rows at once."""
    from nfcore.training import _log_prob_chunked

    t, x = banana
    m = jax.tree_util.tree_map(lambda a: a + 0.05, _small(x))
    n = 2 * 1000 + 37  # not a multiple of the chunk
    full = jax.vmap(m.log_prob_one)(x[:n])
    monkeypatch.setattr(importlib.import_module("nfcore.distributions"), "EVAL_CHUNK", 1000)
    chunked = _log_prob_chunked.__wrapped__(m, x[:n])
    assert chunked.shape == (n,)
    np.testing.assert_allclose(chunked, full, rtol=1e-6, atol=1e-6)


def test_plot_is_loaded_on_first_use():
    import subprocess
    import sys

    code = "import sys, nfcore as nf; a = 'matplotlib' in sys.modules; nf.plot.use_style(); print(a, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_ema_returns_the_running_average_of_the_parameters(banana):
    """With ``ema=d`` after two steps the debiased average is (d(1-d) m1 + (1-d) m2) / (1 - d^2)
    = (d m1 + m2) / (1 + d), where m1, m2 are the plain iterates (chunk=1 makes the per-step keys
    the same for 1 and 2 steps); the initial model m0 gets no weight."""
    t, x = banana
    m0 = _small(x)
    kw = dict(steps=2, chunk=1, batch_size=64, optimizer=optax.adam(1e-2), progress=False)
    m1 = nf.fit(jax.random.PRNGKey(5), m0, x, **(kw | dict(steps=1))).model
    m2 = nf.fit(jax.random.PRNGKey(5), m0, x, **kw).model
    d = 0.7
    avg = nf.fit(jax.random.PRNGKey(5), m0, x, ema=d, held_out=x[:500], **kw)
    want = jax.tree_util.tree_map(lambda b, c: (d * b + c) / (1 + d), m1, m2)
    for got, exp, last in zip(jax.tree_util.tree_leaves(avg.model), jax.tree_util.tree_leaves(want),
                              jax.tree_util.tree_leaves(m2)):
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(avg.model), jax.tree_util.tree_leaves(m2)))
    np.testing.assert_allclose(avg.held_out[-1], float(nf.nll(avg.model, x[:500])), rtol=1e-5)


def test_compiler_options_reach_xla(banana):
    t, x = banana
    with pytest.raises(Exception, match="no_such_xla_option"):
        nf.fit(jax.random.PRNGKey(0), _small(x), x, steps=2, chunk=2, compiler_options={"no_such_xla_option": 1},
               progress=False)
