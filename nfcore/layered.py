"""Building deep flows from one layer recipe: scanned stacks of repeating layers + standardisation.

``layered_flow`` is the factory pattern behind ``maf``/``iaf`` (and the same construction as
``coupling_flow``): layers repeat with a ``period`` (e.g. mask / flipped mask, natural / reversed
order), one period of layers forms a :class:`Chain` whose parameters are built with a vmapped
init and applied with ``lax.scan`` (:class:`Stack`), so compile time does not grow with depth.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from .bijection import positive_int
from .chain import Chain, Stack
from .distributions import Normal, Transformed
from .elementwise import Affine

__all__ = ["layered_flow", "standardising_affine"]


def standardising_affine(dim: int, shift=None, scale=None):
    """A trainable :class:`Affine` ``x = scale * u + shift`` initialised to the data's mean/std, or
    ``None`` when both are ``None``. Put last in the forward direction, it lets the layers before it
    see standardised data."""
    if shift is None and scale is None:
        return None
    shift = jnp.zeros(dim) if shift is None else jnp.asarray(shift, dtype=jnp.float32)
    scale = jnp.ones(dim) if scale is None else jnp.asarray(scale, dtype=jnp.float32)
    if shift.shape != (dim,) or scale.shape != (dim,) or not bool(jnp.all(scale > 0)):
        raise ValueError(f"shift and scale must have shape ({dim},) with scale > 0, got {shift.shape}, {scale.shape}.")
    return Affine(shift, jnp.log(scale))


def layered_flow(key, dim: int, layers: int, make_layer: Callable, period: int | None = 2,
                 shift=None, scale=None, unroll: int | bool = 1) -> Transformed:
    """``Transformed(Normal(dim), Chain([layer_0, ..., layer_{L-1}, Affine?]))`` from one recipe.

    ``make_layer(key, i)`` returns a bijection; layers with the same ``i`` must have the same
    pytree structure and static metadata. With ``period = p`` layer ``l`` is
    ``make_layer(key_l, l % p)``: the ``L // p`` full periods become one :class:`Stack` of
    ``Chain([make_layer(k_0, 0), ..., make_layer(k_{p-1}, p-1)])`` built with ``jax.vmap``, and
    the ``L % p`` remaining layers follow as ordinary layers. With ``period=None`` every layer may
    differ (e.g. random orders): ``make_layer(key_l, l)`` in a Python loop, applied as a plain
    :class:`Chain` (compile time then grows with depth). ``shift``/``scale``: see
    :func:`standardising_affine`. ``unroll``: see :class:`Stack` (``True`` trades compile time for
    faster steps on a CPU). Keys for ``period=2`` are split exactly as in ``coupling_flow``.
    """
    layers = positive_int(layers, "layers")
    if period is not None and int(period) < 1:
        raise ValueError(f"period must be a positive integer or None, got {period!r}.")
    final = standardising_affine(dim, shift, scale)  # validate before building anything
    Stack.check_unroll(unroll)
    parts = []
    if period is None:
        parts += [make_layer(k, i) for i, k in enumerate(jax.random.split(key, layers))]
    else:
        period = int(period)
        k_groups, k_rest = jax.random.split(key)

        def group(k):
            ks = jax.random.split(k, period)
            return Chain([make_layer(ks[i], i) for i in range(period)])

        if layers // period:
            parts.append(Stack(jax.vmap(group)(jax.random.split(k_groups, layers // period)), unroll))
        rest = layers % period
        if rest:
            ks = [k_rest] if rest == 1 else list(jax.random.split(k_rest, rest))
            parts += [make_layer(k, i) for i, k in enumerate(ks)]
    if final is not None:
        parts.append(final)
    return Transformed(Normal(dim), Chain(parts))
