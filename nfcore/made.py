"""MADE: a masked MLP whose output row ``i`` sees only the inputs that come before ``i``.

``MADE(x)[i] = g_i(x_{<i})`` — for one sample ``x (D,)`` the network returns ``(D, n_params)``
transformer parameters, row ``i`` depending only on the inputs ``j`` with ``rank[j] < rank[i]``
in a chosen order. One forward pass therefore gives all ``D`` conditionals of an autoregressive
model (Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked Autoencoder for Distribution
Estimation", ICML).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .bijection import pytree, static
from .validate import check_context, int_tuple, positive_int
from .nn import ACTIVATIONS

__all__ = ["MADE", "hidden_degrees", "ORDERS"]

ORDERS = ("natural", "reversed", "random")


def _ranks(dim: int, order, key) -> tuple:
    """``rank[i]`` = position of variable ``i`` in the autoregressive order."""
    if isinstance(order, str):
        if order == "natural":
            perm = np.arange(dim)
        elif order == "reversed":
            perm = np.arange(dim)[::-1]
        elif order == "random":
            try:
                perm = np.asarray(jax.random.permutation(key, dim))
            except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
                raise ValueError("order='random' draws the order from the key, so it needs a concrete key: build "
                                 "random-order layers outside jax.vmap/jit (e.g. in a Python loop).") from None
        else:
            raise ValueError(f"unknown order {order!r}; choose one of {ORDERS} or pass a permutation of range({dim}).")
    else:
        perm = np.asarray(order)
        if perm.shape != (dim,) or sorted(perm.tolist()) != list(range(dim)):
            raise ValueError(f"order must be one of {ORDERS} or a permutation of range({dim}) "
                             f"(order[k] = the variable at position k), got {order!r}.")
    rank = np.empty(dim, dtype=int)
    rank[perm] = np.arange(dim)
    return tuple(int(r) for r in rank)


def hidden_degrees(dim: int, hidden, conditional: bool = False) -> tuple:
    """Cyclic degrees ``0, 1, ..., D-2, 0, 1, ...`` for each hidden layer (Germain et al. 2015, 0-based).

    A unit of degree ``h`` may see the inputs of rank ``<= h`` and feed the outputs of rank ``> h``.
    Degrees stay in ``[0, D-2]``, so every unit has an input (rank 0) and an output (rank D-1);
    with every layer at least ``D-1`` wide, each degree appears in each layer and no allowed
    dependency is lost. (For ``D = 1`` there is nothing to depend on: degree 0 units feed nothing.)
    ``conditional``: degrees cycle through ``-1, 0, ..., D-2`` instead; the context inputs have
    degree ``-1``, so units of degree ``-1`` see only the context and feed every output, the first
    variable's included (layers then need width ``>= D``).
    """
    if conditional:
        return tuple(tuple(k % dim - 1 for k in range(int(h))) for h in hidden)
    period = max(dim - 1, 1)
    return tuple(tuple(k % period for k in range(int(h))) for h in hidden)


@functools.lru_cache(maxsize=256)
def _masks(rank: tuple, degrees: tuple, n_params: int, context_dim: int = 0) -> tuple:
    """Boolean (d_in, d_out) masks, one per layer: connect ``a -> b`` iff ``degree(a) <= degree(b)``.

    Input degrees are the ranks, then ``-1`` for each context input; output ``(i, p)`` gets degree
    ``rank[i] - 1`` (strict ``<``).
    """
    out = np.repeat(np.asarray(rank) - 1, n_params)  # column i * n_params + p belongs to row i
    layers = [np.asarray(rank + (-1,) * context_dim)] + [np.asarray(d) for d in degrees] + [out]
    return tuple(a[:, None] <= b[None, :] for a, b in zip(layers[:-1], layers[1:]))


@pytree
class MADE:
    """``x (D,) -> h_1 = act((W_1 * M_1)^T x + b_1) -> ... -> (W_L * M_L)^T h_{L-1} + b_L``, reshaped to ``(D, n_params)``.

    Binary masks ``M_l`` follow from degrees: inputs have degree ``rank[j]``, hidden units cyclic
    degrees in ``[0, D-2]`` (:func:`hidden_degrees`), output row ``i`` degree ``rank[i] - 1``, and
    ``M_l[a, b] = degree(a) <= degree(b)``. Hence ``d out[i] / d x[j] = 0`` unless
    ``rank[j] < rank[i]``: the Jacobian is strictly triangular in the order, and the row of the
    first variable is a constant (the output bias).

    Shapes: ``x`` ``(..., D)`` -> ``(..., D, n_params)``. ``weights[l]``: ``(d_l, d_{l+1})``,
    ``biases[l]``: ``(d_{l+1},)`` — the only leaves (trainable). ``rank`` and ``degrees`` are
    static tuples and the masks are rebuilt from them at trace time (constants, never trained).
    Masked weights receive zero gradient. The last layer starts at zero, so a flow built on a
    fresh MADE is the identity. ``context_dim = C > 0``: ``MADE(x, c)`` with ``c (..., C)`` as
    extra inputs of degree ``-1`` that reach every hidden unit (see :func:`hidden_degrees`); the
    outputs still depend on ``x`` only through earlier variables.

    Reference: Germain, Gregor, Murray & Larochelle (2015), "MADE: Masked Autoencoder for
    Distribution Estimation", ICML.
    """

    weights: tuple
    biases: tuple
    rank: tuple = static()  # rank[i] = position of variable i in the order
    degrees: tuple = static()  # one tuple of hidden-unit degrees per hidden layer
    n_params: int = static(default=1)
    activation: str = static(default="silu")
    context_dim: int = static(default=0)

    @classmethod
    def init(cls, key, dim: int, *, hidden=(64, 64), n_params: int = 1, order="natural",
             activation: str = "silu", zero_last: bool = True, context_dim: int = 0) -> "MADE":
        """A MADE for ``dim`` inputs with ``hidden`` widths and ``n_params`` outputs per variable.

        ``order``: ``"natural"`` (0, 1, ..., D-1), ``"reversed"``, ``"random"`` (a permutation
        drawn from ``key``; needs a concrete key, i.e. not inside ``jax.vmap``), or an explicit
        permutation (``order[k]`` = the variable at position ``k``). Every hidden width must be
        at least ``dim - 1``. Hidden weights: LeCun-normal over each unit's unmasked inputs.
        """
        dim, hidden, n_params = check_made_args(dim, hidden, n_params, activation, context_dim)
        k_order, k_weights = jax.random.split(key)
        rank = _ranks(dim, order, k_order)
        degrees = hidden_degrees(dim, hidden, context_dim > 0)
        masks = _masks(rank, degrees, n_params, context_dim)
        keys = jax.random.split(k_weights, len(masks))
        weights, biases = [], []
        for i, (k, m) in enumerate(zip(keys, masks)):
            if i == len(masks) - 1 and zero_last:
                w = jnp.zeros(m.shape)
            else:
                fan_in = np.maximum(m.sum(0), 1)  # unmasked inputs of each unit
                w = jax.random.normal(k, m.shape) * jnp.asarray(m / np.sqrt(fan_in), jnp.float32)
            weights.append(w)
            biases.append(jnp.zeros(m.shape[1]))
        return cls(tuple(weights), tuple(biases), rank, degrees, n_params, activation, context_dim)

    @property
    def dim(self) -> int:
        return len(self.rank)

    def masks(self) -> tuple:
        """The boolean masks ``M_l`` (numpy, ``(d_l, d_{l+1})``), built from the static degrees."""
        return _masks(self.rank, self.degrees, self.n_params, self.context_dim)

    def connectivity(self) -> np.ndarray:
        """``(D, D)`` bool: ``[i, j]`` is True iff output row ``i`` may depend on input ``j`` (``rank[j] < rank[i]``)."""
        r = np.asarray(self.rank)
        return r[None, :] < r[:, None]

    def __call__(self, x, context=None):
        if getattr(x, "ndim", 0) < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"MADE expects inputs of shape (..., {self.dim}), got shape {getattr(x, 'shape', None)}.")
        out_shape = (*x.shape[:-1], self.dim, self.n_params)
        if self.context_dim or context is not None:
            check_context(context, self.context_dim, "MADE")
            x = jnp.concatenate([x, jnp.broadcast_to(context, (*x.shape[:-1], self.context_dim)).astype(x.dtype)], -1)
        act = ACTIVATIONS[self.activation]
        masks = self.masks()
        for i, (w, b, m) in enumerate(zip(self.weights, self.biases, masks)):
            x = x @ jnp.where(m, w, 0) + b
            if i < len(masks) - 1:
                x = act(x)
        return x.reshape(out_shape)


def check_made_args(dim, hidden, n_params, activation, context_dim=0):
    """Validate MADE arguments; return ``(dim, hidden, n_params)`` as ints / a tuple of ints."""
    dim, n_params = positive_int(dim, "dim"), positive_int(n_params, "n_params")
    hidden = int_tuple(hidden, "hidden")
    width = dim if positive_int(context_dim, "context_dim", minimum=0) else max(dim - 1, 1)
    if any(h < width for h in hidden):
        raise ValueError(f"MADE hidden widths must be >= {width} (dim - 1, or dim with a context) so that every "
                         f"input can reach every later output, got hidden={hidden}; widen the layers.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")
    return dim, hidden, n_params
