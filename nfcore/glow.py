"""A Glow-style flow for vectors: steps of ActNorm -> invertible linear map -> coupling.

Reference: D. P. Kingma, P. Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions",
NeurIPS 2018. For flat (2-D / low-D) data the 1x1 convolution is a dense LU-parametrised
:class:`~nfcore.linear.Linear` and there is no multi-scale architecture.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .actnorm import ActNorm
from .chain import Chain, Invert
from .coupling import Coupling, alternating_masks
from .distributions import Normal, Transformed, check_batch
from .layered import standardising_affine
from .linear import Linear
from .spline import RationalQuadraticSpline
from .transformers import AffineTransformer

__all__ = ["glow"]


@jax.jit
def _push(layer, x):
    """The batch ``x`` (N, D) through ``layer`` in the density direction (compiled: eager vmap is slow)."""
    return jax.vmap(layer.inverse)(x)


def glow(key, dim: int, layers: int = 4, hidden=(64, 64), bins: int | None = None, bound: float = 4.0,
         shift=None, scale=None, data=None, activation: str = "silu") -> Transformed:
    """``Transformed(Normal(dim), Chain(...))`` of ``layers`` Glow steps.

    **One step, in the density direction (data -> base, as in the Glow paper):**
    :class:`~nfcore.actnorm.ActNorm` -> :class:`~nfcore.linear.Linear` (LU, with a random fixed
    permutation ``P``; the rest starts at the identity; wrapped in :class:`~nfcore.chain.Invert`
    so that, as in the paper, the product ``W h`` runs in the density direction and sampling
    applies ``W^-1``) -> :class:`~nfcore.coupling.Coupling`
    (affine, or a :class:`~nfcore.spline.RationalQuadraticSpline` on ``[-bound, bound]`` when
    ``bins`` is given; masks alternate between steps). Because a ``Chain`` lists layers in
    *forward* (base -> data) order, each step appears in the chain reversed,
    ``[Coupling, Invert(Linear), ActNorm]``, and the step nearest the data is last.

    ``shift``/``scale`` (D,): an extra outermost :class:`~nfcore.elementwise.Affine` (data side),
    as in :func:`~nfcore.coupling.coupling_flow`. ``data`` (N, D): **data-dependent
    initialisation** — the batch is pushed through the layers in the density direction and each
    ActNorm is set by :meth:`ActNorm.init_from_data` (``direction="inverse"``) so that its
    base-side output on this batch has zero mean and unit variance per dimension. With ``data``
    the first ActNorm standardises the data, so a spline's ``[-bound, bound]`` covers it (no
    ``shift``/``scale`` needed). Without ``data`` every ActNorm is the identity. Couplings are
    zero-initialised and the ``Linear`` layers are permutations, so the flow starts as a
    permutation-and-affine map.

    Built with a plain :class:`~nfcore.chain.Chain`, not a ``Stack``: each step's permutation is
    static metadata that differs from step to step, so the steps do not share one pytree
    structure and cannot be stacked for ``lax.scan``; and the data-dependent initialisation is
    sequential anyway. Compile time grows with ``layers`` — fine for the few steps low-D data needs.
    """
    if int(layers) < 1:
        raise ValueError(f"layers must be >= 1, got {layers}.")
    if data is not None:  # validate before building anything
        x = check_batch(jnp.asarray(data), dim, "glow data")
        if x.ndim != 2:
            raise ValueError(f"glow data must be a batch of shape (N, {dim}), got shape {tuple(x.shape)}.")
    outer = standardising_affine(dim, shift, scale)  # None without shift/scale; validates them

    transformer = AffineTransformer() if bins is None else RationalQuadraticSpline(bins, bound)
    masks = alternating_masks(dim)
    steps = []  # density order: each entry (ActNorm, Invert(Linear), Coupling)
    for i, k in enumerate(jax.random.split(key, int(layers))):
        k_perm, k_coupling = jax.random.split(k)
        steps.append([ActNorm.identity(dim), Invert(Linear.identity(dim, k_perm)),
                      Coupling.init(k_coupling, masks[i % 2], hidden, transformer, activation)])

    if data is not None:
        if outer is not None:
            x = _push(outer, x)
        for step in steps:
            step[0] = ActNorm.init_from_data(x, direction="inverse")
            for layer in step:
                x = _push(layer, x)

    forward_order = [layer for step in reversed(steps) for layer in reversed(step)]
    if outer is not None:
        forward_order.append(outer)
    return Transformed(Normal(dim), Chain(forward_order))
