"""A plain-JAX multilayer perceptron (the conditioner inside coupling layers).

``MLP(x) = W_L act(... act(W_1 x + b_1) ...) + b_L``; LeCun-normal init (LeCun et al. 1998).

``MLP`` is a pytree whose leaves are the weights; activation and sizes are static. The last
layer is zero-initialised, so a coupling layer built on it starts as the identity.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .bijection import pytree, static
from .validate import int_tuple

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS = {"relu": jax.nn.relu, "gelu": jax.nn.gelu, "silu": jax.nn.silu, "tanh": jnp.tanh}


@pytree
class MLP:
    """``x (d_in,) -> W_L act(... act(W_1 x + b_1) ...) + b_L  (d_out,)``.

    ``weights``: tuple of (d_i, d_{i+1}) arrays; ``biases``: tuple of (d_{i+1},) arrays.
    """

    weights: tuple
    biases: tuple
    activation: str = static(default="silu")

    @classmethod
    def init(cls, key, sizes, activation: str = "silu", zero_last: bool = True) -> "MLP":
        """Layers of ``sizes = (d_in, h_1, ..., d_out)``; LeCun-normal hidden weights, zero last layer."""
        sizes = int_tuple(sizes, "MLP sizes")
        if len(sizes) < 2:
            raise ValueError(f"MLP sizes must be at least (d_in, d_out), got {sizes}.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")
        keys = jax.random.split(key, len(sizes) - 1)
        weights, biases = [], []
        for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            w = jnp.zeros((a, b)) if (last and zero_last) else jax.random.normal(k, (a, b)) / jnp.sqrt(a)
            weights.append(w)
            biases.append(jnp.zeros(b))
        return cls(tuple(weights), tuple(biases), activation)

    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            x = act(x @ w + b)
        return x @ self.weights[-1] + self.biases[-1]

    @property
    def n_params(self) -> int:
        return sum(a.size for a in jax.tree_util.tree_leaves(self))
