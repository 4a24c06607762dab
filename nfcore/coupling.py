"""Coupling layers (NICE, RealNVP) and the ``realnvp`` / ``nice`` factories.

A binary ``mask`` splits one sample ``x (D,)`` into a conditioning part ``x_a`` (mask True),
copied unchanged, and a transformed part ``x_b``: ``y_b = tau(x_b; NN(x_a))``. The Jacobian is
block-triangular, so ``log|det J| = sum log|dy_b/dx_b|`` — and the inverse needs only the
transformer's inverse, never the network's (Dinh et al. 2015, 2017).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .bijection import Bijection, bijection, check_sample, static
from .distributions import Transformed
from .layered import layered_flow
from .nn import MLP
from .transformers import Additive, AffineTransformer

__all__ = ["Coupling", "alternating_masks", "realnvp", "nice", "coupling_flow"]


def alternating_masks(dim: int):
    """The two complementary masks ``(True, False, True, ...)`` and ``(False, True, False, ...)``."""
    if dim < 2:
        raise ValueError(f"coupling layers need dim >= 2 (one part conditions the other), got dim={dim}.")
    even = tuple(bool(i % 2 == 0) for i in range(dim))
    return even, tuple(not m for m in even)


@bijection
class Coupling(Bijection):
    """``y_a = x_a``, ``y_b = tau(x_b; conditioner(x_a))``.

    Forward log-det ``sum log|tau'(x_b)|``; inverse ``x_b = tau^-1(y_b; conditioner(y_a))`` with
    minus that log-det. ``mask``: static tuple of bools (True = conditioning, unchanged);
    ``transformer``: static (``Additive()`` = NICE, ``AffineTransformer()`` = RealNVP, ...).
    """

    conditioner: MLP
    mask: tuple = static()
    transformer: object = static(default=AffineTransformer())

    @classmethod
    def init(cls, key, mask, hidden=(64, 64), transformer=AffineTransformer(), activation="silu") -> "Coupling":
        """Identity at init (the conditioner's last layer is zero)."""
        mask = tuple(bool(m) for m in mask)
        n_a, n_b = sum(mask), len(mask) - sum(mask)
        if n_a == 0 or n_b == 0:
            raise ValueError(f"mask must have both True (conditioning) and False (transformed) entries, got {mask}.")
        net = MLP.init(key, (n_a, *hidden, n_b * transformer.n_params), activation=activation)
        return cls(net, mask, transformer)

    def _split(self):
        m = np.asarray(self.mask)
        return np.flatnonzero(m), np.flatnonzero(~m)

    def _apply(self, x, inverse: bool):
        check_sample(x, len(self.mask), "Coupling")
        ia, ib = self._split()
        params = self.conditioner(x[ia]).reshape(len(ib), self.transformer.n_params)
        fn = self.transformer.inverse if inverse else self.transformer.forward
        yb, ld = fn(x[ib], params)
        x = x.astype(jnp.result_type(x, yb))  # float32 data with float64 parameters -> float64 out
        return x.at[ib].set(yb), jnp.sum(ld)

    def forward_and_log_det(self, x):
        return self._apply(x, inverse=False)

    def inverse_and_log_det(self, y):
        return self._apply(y, inverse=True)


def coupling_flow(key, dim: int, layers: int, hidden=(64, 64), transformer=AffineTransformer(),
                  activation="silu", shift=None, scale=None, unroll: int | bool = 1) -> Transformed:
    """A ``Transformed(Normal(dim), ...)`` of ``layers`` couplings with alternating masks.

    Pairs of couplings (mask, flipped mask) share one shape, so their parameters are built with
    a vmapped init and applied with ``lax.scan`` (:class:`Stack`): compile time does not grow
    with depth. An odd ``layers`` adds one trailing coupling. ``shift``/``scale`` (D,) add a
    final trainable :class:`Affine` initialised to the data's mean/std, so the couplings see
    standardised data. ``unroll=True`` unrolls the scan (see :class:`Stack`): longer compilation,
    faster training steps on a CPU.
    """
    if not all(int(h) >= 1 for h in hidden):
        raise ValueError(f"hidden sizes must be >= 1, got {hidden}.")
    masks = alternating_masks(dim)

    def make_layer(k, i):
        return Coupling.init(k, masks[i], hidden, transformer, activation)

    return layered_flow(key, dim, layers, make_layer, period=2, shift=shift, scale=scale, unroll=unroll)


def realnvp(key, dim: int, layers: int = 8, hidden=(64, 64), bound: float = 3.0, **kw) -> Transformed:
    """RealNVP: affine couplings with alternating masks and a soft-clamped log-scale (``|s| < bound``)."""
    return coupling_flow(key, dim, layers, hidden, AffineTransformer(bound), **kw)


def nice(key, dim: int, layers: int = 8, hidden=(64, 64), **kw) -> Transformed:
    """NICE: additive couplings (volume preserving) — add ``shift``/``scale`` for the final scaling layer."""
    return coupling_flow(key, dim, layers, hidden, Additive(), **kw)
