"""Composition: ``Chain`` (list order = data-flow order), ``Invert`` and ``Stack`` (scanned layers)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .bijection import Bijection, bijection, static

__all__ = ["Chain", "Invert", "Stack"]


@bijection
class Chain(Bijection):
    """``f = f_n o ... o f_2 o f_1`` for ``Chain([f_1, f_2, ..., f_n])``: ``f_1`` is applied first.

    Forward log-det is the sum of the layers' log-dets along the way; the inverse runs the
    layers' inverses in reverse order. (Unlike distrax/TFP, list order is data-flow order.)
    """

    bijections: tuple

    def __init__(self, bijections):
        object.__setattr__(self, "bijections", tuple(bijections))

    def forward_and_log_det(self, x):
        total = jnp.zeros((), x.dtype)
        for b in self.bijections:
            x, ld = b.forward_and_log_det(x)
            total = total + ld
        return x, total

    def inverse_and_log_det(self, y):
        total = jnp.zeros((), y.dtype)
        for b in reversed(self.bijections):
            y, ld = b.inverse_and_log_det(y)
            total = total + ld
        return y, total

    def forward_trace(self, x):
        """All intermediate values ``[x, f_1(x), f_2(f_1(x)), ...]`` for one sample (for plots)."""
        out = [x]
        for b in self.bijections:
            x = b.forward(x)
            out.append(x)
        return out


@bijection
class Invert(Bijection):
    """``f^-1`` as a bijection: swaps ``forward_and_log_det`` and ``inverse_and_log_det``."""

    bijection: Bijection

    def forward_and_log_det(self, x):
        return self.bijection.inverse_and_log_det(x)

    def inverse_and_log_det(self, y):
        return self.bijection.forward_and_log_det(y)


@bijection
class Stack(Bijection):
    """``n`` copies of one layer type applied in order with :func:`jax.lax.scan`.

    ``layers`` is a single bijection pytree whose every leaf has a leading axis of length ``n``
    (build it with ``jax.vmap(init)(keys)``). Tracing one layer instead of ``n`` keeps compile
    time flat in depth. Equivalent to ``Chain([layer_0, ..., layer_{n-1}])``.

    ``unroll`` (static) is passed to ``lax.scan``: ``1`` compiles one layer and loops over it;
    ``True`` lets XLA see all ``n`` layers at once (longer compilation, growing with ``n``, but
    faster training steps on a CPU: no loop, no stacked buffers of intermediates for the
    gradient; see bench/RESULTS.md); ``k`` unrolls ``k`` layers per loop iteration.
    """

    layers: Bijection
    unroll: int | bool = static(default=1)

    def __post_init__(self):
        self.check_unroll(self.unroll)

    @staticmethod
    def check_unroll(unroll):
        """Raise ``ValueError`` unless ``unroll`` is ``True`` or a positive integer."""
        if not (unroll is True or (isinstance(unroll, int) and not isinstance(unroll, bool) and unroll >= 1)):
            raise ValueError(f"unroll must be True (unroll every layer) or a positive integer, got {unroll!r}.")

    @property
    def n_layers(self) -> int:
        return jax.tree_util.tree_leaves(self.layers)[0].shape[0]

    def layer(self, i: int) -> Bijection:
        """Layer ``i`` as an ordinary bijection."""
        return jax.tree_util.tree_map(lambda a: a[i], self.layers)

    def _dtype(self, x):
        # the scan carry must keep one dtype: that of the sample promoted with the parameters
        return jnp.result_type(x, *jax.tree_util.tree_leaves(self.layers))

    def forward_and_log_det(self, x):
        def step(carry, layer):
            x, total = carry
            x, ld = layer.forward_and_log_det(x)
            return (x, total + ld), None

        x = x.astype(self._dtype(x))
        (x, total), _ = jax.lax.scan(step, (x, jnp.zeros((), x.dtype)), self.layers,
                                      unroll=self.unroll)
        return x, total

    def inverse_and_log_det(self, y):
        def step(carry, layer):
            y, total = carry
            y, ld = layer.inverse_and_log_det(y)
            return (y, total + ld), None

        y = y.astype(self._dtype(y))
        (y, total), _ = jax.lax.scan(step, (y, jnp.zeros((), y.dtype)), self.layers, reverse=True,
                                      unroll=self.unroll)
        return y, total
