"""Every model builder in one place: ``Transformed(Normal(dim), ...)`` flows from the layers.

All factories take ``(key, dim)`` and keyword-only options with the defaults below, validate
every argument up front (``ValueError`` naming it), and return a flow that is the identity (or,
with ``shift``/``scale``, an affine standardisation) at initialisation. Layers never import this
module. Repeating layers are built with a vmapped init and applied with ``lax.scan``
(:class:`~nfcore.chain.Stack`), so compile time does not grow with depth; :func:`~nfcore.chain.unrolled`
changes that choice for a whole model.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from .actnorm import ActNorm
from .autoregressive import MaskedAutoregressive
from .chain import Chain, Invert, Stack
from .coupling import Coupling, alternating_masks
from .distributions import Normal, Transformed
from .elementwise import Affine, LeakyReLU, SmoothLeakyReLU
from .linear import Linear
from .lowrank import LowRankAffine
from .made import check_made_args
from .nn import ACTIVATIONS
from .transformers import Additive, AffineTransformer, RationalQuadraticSpline, check_transformer
from .validate import check_batch, finite_array, int_tuple, positive_float, positive_int

__all__ = ["layered_flow", "coupling_flow", "realnvp", "nice", "nsf", "maf", "iaf", "glow", "mlp_flow",
           "standardising_affine", "multiscale_flow", "HIDDEN", "ACTIVATION"]

HIDDEN = (64, 64)  # conditioner widths of every factory
ACTIVATION = "silu"  # conditioner activation of every factory
FLOW_ORDERS = ("alternate", "random")


def standardising_affine(dim: int, shift=None, scale=None):
    """A trainable :class:`Affine` ``x = scale * u + shift`` initialised to the data's mean/std, or
    ``None`` when both are ``None``. Put last in the forward direction, it lets the layers before it
    see standardised data. ``shift``, ``scale``: ``(dim,)``, finite, ``scale > 0``."""
    if shift is None and scale is None:
        return None
    shift = jnp.zeros(dim) if shift is None else jnp.asarray(finite_array(shift, "shift", (dim,)), jnp.float32)
    scale = jnp.ones(dim) if scale is None else jnp.asarray(finite_array(scale, "scale", (dim,)), jnp.float32)
    if not bool(jnp.all(scale > 0)):
        raise ValueError("scale must be > 0 in every dimension (pass the data's standard deviation).")
    return Affine(shift, jnp.log(scale))


def _check_common(dim, layers, hidden, activation, min_dim=1):
    dim, layers, hidden = positive_int(dim, "dim", min_dim), positive_int(layers, "layers"), int_tuple(hidden, "hidden")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    return dim, layers, hidden


def layered_flow(key, dim: int, *, layers: int, make_layer: Callable, period: int | None = 2,
                 shift=None, scale=None) -> Transformed:
    """``Transformed(Normal(dim), Chain([layer_0, ..., layer_{L-1}, Affine?]))`` from one recipe.

    ``make_layer(key, i)`` returns a bijection; layers with the same ``i`` must share pytree
    structure and static metadata. With ``period = p`` layer ``l`` is ``make_layer(key_l, l % p)``:
    the ``L // p`` full periods become one :class:`Stack` of ``Chain([make_layer(k_0, 0), ...,
    make_layer(k_{p-1}, p-1)])`` built with ``jax.vmap``, the ``L % p`` remaining layers follow as
    ordinary layers. ``period=None``: every layer may differ (e.g. random orders), a plain
    :class:`Chain` built in a Python loop. ``shift``/``scale``: see :func:`standardising_affine`.
    """
    dim, layers = positive_int(dim, "dim"), positive_int(layers, "layers")
    if period is not None:
        period = positive_int(period, "period")
    final = standardising_affine(dim, shift, scale)  # validate before building anything
    parts = []
    if period is None:
        parts += [make_layer(k, i) for i, k in enumerate(jax.random.split(key, layers))]
    else:
        k_groups, k_rest = jax.random.split(key)

        def group(k):
            ks = jax.random.split(k, period)
            return Chain([make_layer(ks[i], i) for i in range(period)])

        if layers // period:
            parts.append(Stack(jax.vmap(group)(jax.random.split(k_groups, layers // period))))
        rest = layers % period
        if rest:
            ks = [k_rest] if rest == 1 else list(jax.random.split(k_rest, rest))
            parts += [make_layer(k, i) for i, k in enumerate(ks)]
    if final is not None:
        parts.append(final)
    return Transformed(Normal(dim), Chain(parts))


def coupling_flow(key, dim: int, *, transformer, layers: int = 8, hidden=HIDDEN, activation: str = ACTIVATION,
                  shift=None, scale=None) -> Transformed:
    """``layers`` :class:`Coupling` layers with alternating masks and the given ``transformer``.

    Pairs (mask, flipped mask) are stacked with ``lax.scan``; an odd ``layers`` adds one trailing
    coupling. ``shift``/``scale`` (D,): a final trainable :class:`Affine` initialised to the data's
    mean/std, so the couplings see standardised data.
    """
    dim, layers, hidden = _check_common(dim, layers, hidden, activation, min_dim=2)
    check_transformer(transformer)
    masks = alternating_masks(dim)

    def make_layer(k, i):
        return Coupling.init(k, masks[i], hidden=hidden, transformer=transformer, activation=activation)

    return layered_flow(key, dim, layers=layers, make_layer=make_layer, period=2, shift=shift, scale=scale)


def realnvp(key, dim: int, *, layers: int = 8, hidden=HIDDEN, log_scale_clamp: float = 3.0,
            activation: str = ACTIVATION, shift=None, scale=None) -> Transformed:
    """RealNVP (Dinh et al. 2017): affine couplings, log-scale soft-clamped to ``|s| < log_scale_clamp``."""
    return coupling_flow(key, dim, transformer=AffineTransformer(log_scale_clamp), layers=layers, hidden=hidden,
                         activation=activation, shift=shift, scale=scale)


def nice(key, dim: int, *, layers: int = 8, hidden=HIDDEN, activation: str = ACTIVATION,
         shift=None, scale=None) -> Transformed:
    """NICE (Dinh et al. 2015): additive, volume-preserving couplings; ``scale`` adds the final scaling layer."""
    return coupling_flow(key, dim, transformer=Additive(), layers=layers, hidden=hidden, activation=activation,
                         shift=shift, scale=scale)


def nsf(key, dim: int, *, layers: int = 8, hidden=HIDDEN, bins: int = 8, tail_bound: float = 4.0,
        activation: str = ACTIVATION, shift=None, scale=None) -> Transformed:
    """Neural spline flow, coupling variant (Durkan et al. 2019): rational-quadratic spline couplings.

    The splines act on ``[-tail_bound, tail_bound]`` and are the identity outside: pass
    ``shift``/``scale`` (the data's mean/std) so the standardised data lies inside.
    """
    return coupling_flow(key, dim, transformer=RationalQuadraticSpline(bins, tail_bound), layers=layers,
                         hidden=hidden, activation=activation, shift=shift, scale=scale)


def _autoregressive(key, dim, layers, hidden, transformer, order, activation, shift, scale, parallel):
    dim, layers, hidden = _check_common(dim, layers, hidden, activation)
    check_transformer(transformer)
    check_made_args(dim, hidden, transformer.n_params, activation)  # up front, not inside the vmapped init
    if order not in FLOW_ORDERS:
        raise ValueError(f"order must be 'alternate' (natural and reversed orders in turn, scanned) or 'random' "
                         f"(a random order per layer, drawn from the key), got {order!r}.")
    orders, period = (("natural", "reversed"), 2) if order == "alternate" else (None, None)

    def make_layer(k, i):
        return MaskedAutoregressive.init(k, dim, hidden=hidden, transformer=transformer, parallel=parallel,
                                         order="random" if orders is None else orders[i], activation=activation)

    return layered_flow(key, dim, layers=layers, make_layer=make_layer, period=period, shift=shift, scale=scale)


def maf(key, dim: int, *, layers: int = 5, hidden=HIDDEN, transformer=AffineTransformer(), order: str = "alternate",
        activation: str = ACTIVATION, shift=None, scale=None) -> Transformed:
    """Masked autoregressive flow (Papamakarios et al. 2017): density in one MADE pass per layer,
    sampling in ``dim`` passes. ``order``: ``"alternate"`` (natural / reversed, scanned) or
    ``"random"`` (a random order per layer, a plain Chain). ``hidden`` widths ``>= dim - 1``."""
    return _autoregressive(key, dim, layers, hidden, transformer, order, activation, shift, scale, "inverse")


def iaf(key, dim: int, *, layers: int = 5, hidden=HIDDEN, transformer=AffineTransformer(), order: str = "alternate",
        activation: str = ACTIVATION, shift=None, scale=None) -> Transformed:
    """Inverse autoregressive flow (Kingma et al. 2016): :func:`maf` with the cheap direction swapped —
    sampling and ``sample_and_log_prob`` in one pass per layer, ``log_prob`` of data in ``dim`` passes."""
    return _autoregressive(key, dim, layers, hidden, transformer, order, activation, shift, scale, "forward")


@jax.jit
def _push(layer, x):
    """The batch ``x`` (N, D) through ``layer`` in the density direction (compiled: eager vmap is slow)."""
    return jax.vmap(layer.inverse)(x)


def glow(key, dim: int, *, layers: int = 4, hidden=HIDDEN, transformer=AffineTransformer(), data=None,
         activation: str = ACTIVATION, shift=None, scale=None) -> Transformed:
    """Glow steps for vectors (Kingma & Dhariwal 2018): ActNorm -> invertible linear map -> coupling.

    One step in the density direction (data -> base, as in the paper): :class:`ActNorm`, then
    :class:`Linear` (LU with a random fixed permutation, wrapped in :class:`Invert` so the product
    ``W h`` runs in the density direction), then a :class:`Coupling` with ``transformer`` (affine,
    or e.g. ``RationalQuadraticSpline(bins, tail_bound)``); masks alternate. A ``Chain`` lists
    layers in forward order, so each step appears reversed and the step nearest the data is last.
    ``data`` (N, D): data-dependent initialisation — each ActNorm standardises the batch as it
    reaches it in the density direction. A plain Chain (the permutations differ per step).
    """
    dim, layers, hidden = _check_common(dim, layers, hidden, activation, min_dim=2)
    check_transformer(transformer)
    if data is not None:
        x = check_batch(jnp.asarray(finite_array(data, "data")), dim, "glow data")
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"glow data must be a batch of shape (N, {dim}) with N >= 2, got shape {tuple(x.shape)}.")
    outer = standardising_affine(dim, shift, scale)
    masks = alternating_masks(dim)
    steps = []  # density order: each entry (ActNorm, Invert(Linear), Coupling)
    for i, k in enumerate(jax.random.split(key, layers)):
        k_perm, k_coupling = jax.random.split(k)
        steps.append([ActNorm.identity(dim), Invert(Linear.identity(dim, k_perm)),
                      Coupling.init(k_coupling, masks[i % 2], hidden=hidden, transformer=transformer,
                                    activation=activation)])
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


def mlp_flow(key, dim: int = 2, *, layers: int = 6, rank: int = 2, smooth: float | None = None,
             shift=None, scale=None) -> Transformed:
    """Jang's (2018) "MLP flow": ``[A_1, PReLU_1, ..., A_L, PReLU_L, A_{L+1}]`` of :class:`LowRankAffine`
    and :class:`LeakyReLU` layers, a plain Chain (``forward_trace`` gives every intermediate point).

    ``shift``/``scale`` (D,) initialise the last affine layer to the data's mean/std. ``smooth``: a
    ramp half-width ``delta > 0`` to use :class:`SmoothLeakyReLU` (continuous slope) instead of PReLU.
    """
    dim, layers, rank = positive_int(dim, "dim"), positive_int(layers, "layers"), positive_int(rank, "rank")
    if smooth is not None:
        smooth = positive_float(smooth, "smooth (the ramp half-width delta)")
    keys = jax.random.split(key, layers + 1)
    parts = []
    for k in keys[:-1]:
        kink = LeakyReLU.identity(dim) if smooth is None else SmoothLeakyReLU.identity(dim, smooth)
        parts += [LowRankAffine.init(k, dim, rank), kink]
    last = LowRankAffine.init(keys[-1], dim, rank)
    standardise = standardising_affine(dim, shift, scale)
    if standardise is not None:
        last = dataclasses.replace(last, log_diag=standardise.log_scale, shift=standardise.shift)
    parts.append(last)
    return Transformed(Normal(dim), Chain(parts))


def multiscale_flow(key, shape=(8, 8, 1), *, levels: int = 2, couplings: int = 2, hidden=HIDDEN,
                    transformer=AffineTransformer(), activation: str = ACTIVATION, alpha: float | None = 0.05,
                    shift=None, scale=None) -> Transformed:
    """A RealNVP multi-scale flow for ``(H, W, C)`` images on ``[0, 1)^(H W C)`` (Dinh et al. 2017):
    ``Transformed(Normal(H W C), Chain([Invert(encoder), Affine?, LogitTransform?]))``.

    ``encoder``: :func:`~nfcore.multiscale.multiscale_encoder` (squeeze, checkerboard / channel
    couplings with MLP conditioners, factor-out of half the variables at each of ``levels`` scales).
    ``shift``/``scale`` (D,): a trainable affine on the logit scale initialised to the data's mean /
    std. ``alpha``: the :class:`~nfcore.dequantization.LogitTransform` (``None``: a flow on R^D).
    """
    from .dequantization import LogitTransform
    from .multiscale import multiscale_encoder

    if not (isinstance(shape, tuple) and len(shape) == 3):
        raise ValueError(f"shape must be an image shape (H, W, C) such as (8, 8, 1), got {shape!r}.")
    h, w, c = (positive_int(s, "shape") for s in shape)
    levels, couplings = positive_int(levels, "levels"), positive_int(couplings, "couplings")
    _check_common(h * w * c, 1, hidden, activation)
    if h % 2**levels or w % 2**levels:
        raise ValueError(f"an image of shape {shape} cannot be squeezed {levels} times (H and W must be divisible "
                         f"by 2**levels = {2**levels}); use fewer levels.")
    check_transformer(transformer)
    logit = LogitTransform(alpha) if alpha is not None else None
    encoder = multiscale_encoder(key, (h, w, c), levels=levels, couplings=couplings, hidden=tuple(hidden),
                                 transformer=transformer, activation=activation)
    final = standardising_affine(h * w * c, shift, scale)
    parts = [Invert(encoder)] + [p for p in (final, logit) if p is not None]
    return Transformed(Normal(h * w * c), Chain(parts))
