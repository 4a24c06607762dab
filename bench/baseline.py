"""The straightforward pure-JAX RealNVP trainer that nfcore's ``fit`` is measured against.

Written the way a tutorial would: parameters in a list of dicts, a Python loop over coupling
layers (unrolled at trace time), one ``jax.jit`` train step (fresh samples drawn inside the
step) called from a Python ``for`` loop. Same architecture, data and optimiser as the nfcore run.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def init(key, n_layers=8, hidden=64, dim=2):
    params = []
    for k in jax.random.split(key, n_layers):
        k1, k2 = jax.random.split(k)
        params.append({
            "w1": jax.random.normal(k1, (1, hidden)), "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden, hidden)) / math.sqrt(hidden), "b2": jnp.zeros(hidden),
            "w3": jnp.zeros((hidden, 2)), "b3": jnp.zeros(2),
        })
    return params


def conditioner(p, x):
    h = jax.nn.silu(x @ p["w1"] + p["b1"])
    h = jax.nn.silu(h @ p["w2"] + p["b2"])
    out = h @ p["w3"] + p["b3"]
    return 3.0 * jnp.tanh(out[..., 0] / 3.0), out[..., 1]


def log_prob(params, x, shift, scale):
    """Density by the inverse pass; layer i transforms coordinate (i + 1) % 2 given coordinate i % 2."""
    z = (x - shift) / scale
    ld = -jnp.sum(jnp.log(scale)) * jnp.ones(x.shape[0])
    for i in reversed(range(len(params))):
        a, b = i % 2, (i + 1) % 2
        s, t = conditioner(params[i], z[:, a:a + 1])
        zb = (z[:, b] - t) * jnp.exp(-s)
        z = z.at[:, b].set(zb)
        ld = ld - s
    return -0.5 * jnp.sum(z**2, axis=1) - math.log(2 * math.pi) + ld


def make_train_step(optimizer, sample, shift, scale, batch_size=512):
    @jax.jit
    def train_step(params, opt_state, key):
        x = sample(key, batch_size)
        loss, grads = jax.value_and_grad(lambda p: -jnp.mean(log_prob(p, x, shift, scale)))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def train(key, sample, steps, shift, scale, optimizer=None, n_layers=8, hidden=64, batch_size=512):
    optimizer = optimizer or optax.adam(1e-3)
    params = init(key, n_layers, hidden)
    opt_state = optimizer.init(params)
    step = make_train_step(optimizer, sample, shift, scale, batch_size)
    for i in range(steps):
        params, opt_state, loss = step(params, opt_state, jax.random.fold_in(key, i))
    return params, loss
