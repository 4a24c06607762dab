"""Composition: ``Chain`` (list order = data-flow order), ``Invert`` and ``Stack`` (scanned layers).

``Chain([f_1, ..., f_n])`` is ``f_n o ... o f_1`` with summed log-dets; ``Stack`` is the same for
``n`` layers of one structure under ``lax.scan`` (compile time flat in depth). A context ``c``
passed as ``*_and_log_det(x, c)`` goes to every conditional layer inside (``context_dim > 0``).
References: Rezende & Mohamed (2015) for composing flows; distrax/FlowJAX for the API shapes.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from .bijection import Bijection, static

__all__ = ["Chain", "Invert", "Stack", "unrolled"]


class Chain(Bijection):
    """``f = f_n o ... o f_2 o f_1`` for ``Chain([f_1, f_2, ..., f_n])``: ``f_1`` is applied first.

    Forward log-det is the sum of the layers' log-dets along the way; the inverse runs the
    layers' inverses in reverse order. (Unlike distrax/TFP, list order is data-flow order.)

    References: Rezende & Mohamed (2015), "Variational Inference with Normalizing Flows", ICML.
    """

    bijections: tuple

    def __init__(self, bijections):
        bijections = tuple(bijections)
        for i, b in enumerate(bijections):
            if isinstance(b, type) or callable(b) and not isinstance(b, Bijection):
                raise ValueError(f"Chain entry {i} must be a bijection instance (e.g. nf.Exp()), got {b!r}.")
        object.__setattr__(self, "bijections", bijections)

    @property
    def context_dim(self) -> int:
        return max((b.context_dim for b in self.bijections), default=0)

    def forward_and_log_det(self, x, context=None):
        total = jnp.zeros((), x.dtype)
        for b in self.bijections:
            x, ld = _call(b, "forward_and_log_det", x, context)
            total = total + ld
        return x, total

    def inverse_and_log_det(self, y, context=None):
        total = jnp.zeros((), y.dtype)
        for b in reversed(self.bijections):
            y, ld = _call(b, "inverse_and_log_det", y, context)
            total = total + ld
        return y, total

    def forward_trace(self, x):
        """All intermediate values ``[x, f_1(x), f_2(f_1(x)), ...]`` for one sample (for plots)."""
        out = [x]
        for b in self.bijections:
            x = b.forward(x)
            out.append(x)
        return out


class Invert(Bijection):
    """``f^-1`` as a bijection: swaps ``forward_and_log_det`` and ``inverse_and_log_det``.

    References: Papamakarios et al. (2021), JMLR, sec. 2.
    """

    bijection: Bijection

    @property
    def context_dim(self) -> int:
        return self.bijection.context_dim

    def forward_and_log_det(self, x, context=None):
        return _call(self.bijection, "inverse_and_log_det", x, context)

    def inverse_and_log_det(self, y, context=None):
        return _call(self.bijection, "forward_and_log_det", y, context)


class Stack(Bijection):
    """``n`` copies of one layer type applied in order with :func:`jax.lax.scan`.

    ``layers`` is a single bijection pytree whose every leaf has a leading axis of length ``n``
    (build it with ``jax.vmap(init)(keys)``). Tracing one layer instead of ``n`` keeps compile
    time flat in depth. Equivalent to ``Chain([layer_0, ..., layer_{n-1}])``.

    ``unroll`` (static, passed to ``lax.scan``): ``1`` compiles one layer and loops over it;
    ``True`` lets XLA see all ``n`` layers at once. Set it for a whole model with
    :func:`unrolled` — the one place where the compile strategy is chosen.

    References: Rezende & Mohamed (2015), ICML (composition); JAX's lax.scan for the loop.
    """

    layers: Bijection
    unroll: int | bool = static(default=1)

    def __post_init__(self):
        u = self.unroll
        if not (u is True or u == "all" or (isinstance(u, int) and not isinstance(u, bool) and u >= 1)):
            raise ValueError(f"unroll must be True (unroll every layer) or a positive integer, got {u!r}.")
        if u is True:  # stored as "all": True == 1 would make JAX reuse the scanned program (same treedef)
            object.__setattr__(self, "unroll", "all")

    @property
    def n_layers(self) -> int:
        return jax.tree_util.tree_leaves(self.layers)[0].shape[0]

    def layer(self, i: int) -> Bijection:
        """Layer ``i`` as an ordinary bijection."""
        return jax.tree_util.tree_map(lambda a: a[i], self.layers)

    @property
    def context_dim(self) -> int:
        return self.layers.context_dim

    def _scan(self, x, method: str, reverse: bool, context=None):
        def step(carry, layer):
            x, total = carry
            x, ld = _call(layer, method, x, context)
            return (x, total + ld), None

        # the scan carry keeps one dtype: that of the sample promoted with the parameters
        x = x.astype(jnp.result_type(x, *jax.tree_util.tree_leaves(self.layers)))
        (x, total), _ = jax.lax.scan(step, (x, jnp.zeros((), x.dtype)), self.layers, reverse=reverse,
                                      unroll=True if self.unroll == "all" else self.unroll)
        return x, total

    def forward_and_log_det(self, z, context=None):
        return self._scan(z, "forward_and_log_det", reverse=False, context=context)

    def inverse_and_log_det(self, x, context=None):
        return self._scan(x, "inverse_and_log_det", reverse=True, context=context)


def _call(b, method: str, x, context):
    """``b.method(x, context)`` for a conditional layer (``context_dim > 0``), else ``b.method(x)``:
    a composition hands the context to the layers that take one and skips the others."""
    return getattr(b, method)(x, context) if b.context_dim else getattr(b, method)(x)


def unrolled(model, unroll: int | bool = True):
    """``model`` with every :class:`Stack` compiled as ``lax.scan(..., unroll=unroll)``.

    The compile strategy, chosen in one place. Default scanned stacks (``unroll=1``) compile one
    layer whatever the depth; unrolled ones let XLA fuse across layers — longer compilation
    (growing with depth), and on a CPU faster steps for some models and not others (measured in
    ``bench/RESULTS.md``; chapter 13). Chains (e.g. random-order ``maf``, ``glow``) are already
    unrolled; the parameters are unchanged, only static metadata.
    """
    return jax.tree_util.tree_map(
        lambda n: dataclasses.replace(n, unroll=unroll) if isinstance(n, Stack) else n,
        model, is_leaf=lambda n: isinstance(n, Stack))
