"""Coupling layers (NICE, RealNVP, spline couplings): ``y_a = x_a``, ``y_b = tau(x_b; NN(x_a))``.

A binary ``mask`` splits one sample ``x (D,)`` into a conditioning part ``x_a`` (mask True),
copied unchanged, and a transformed part ``x_b``. The Jacobian is block-triangular, so
``log|det J| = sum log|dy_b/dx_b|`` — and the inverse needs only the transformer's inverse,
never the network's. References: Dinh, Krueger & Bengio (2015), NICE; Dinh, Sohl-Dickstein &
Bengio (2017), RealNVP.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .bijection import Bijection, static
from .nn import MLP
from .transformers import AffineTransformer, check_transformer
from .validate import check_context, int_tuple, positive_int

__all__ = ["Coupling", "alternating_masks"]


def alternating_masks(dim: int):
    """The two complementary masks ``(True, False, True, ...)`` and ``(False, True, False, ...)``."""
    dim = positive_int(dim, "dim")
    if dim < 2:
        raise ValueError(f"coupling layers need dim >= 2 (one part conditions the other), got dim={dim}.")
    even = tuple(bool(i % 2 == 0) for i in range(dim))
    return even, tuple(not m for m in even)


class Coupling(Bijection):
    """``y_a = x_a``, ``y_b = tau(x_b; conditioner(x_a))`` — or ``conditioner(x_a, c)`` with a context.

    Forward log-det ``sum log|tau'(x_b)|``; inverse ``x_b = tau^-1(y_b; conditioner(y_a))`` with
    minus that log-det. ``conditioner``: an :class:`~nfcore.nn.MLP` ``(n_a,) -> (n_b * n_params,)``;
    ``mask``: static tuple of bools (True = conditioning, unchanged); ``transformer``: static
    (``Additive()`` = NICE, ``AffineTransformer()`` = RealNVP, ``RationalQuadraticSpline()`` = NSF).
    ``context_dim`` (static): ``C > 0`` makes the layer conditional, ``*_and_log_det(x, c)`` with
    ``c (C,)`` appended to the conditioner's input; the Jacobian in ``x`` for fixed ``c`` keeps its
    form (Winkler et al. 2019, conditional normalizing flows). ``0``: unconditional, as before.

    References: Dinh, Krueger & Bengio (2015), NICE; Dinh, Sohl-Dickstein & Bengio (2017), RealNVP.
    """

    conditioner: MLP
    mask: tuple = static()
    transformer: object = static(default=AffineTransformer())
    context_dim: int = static(default=0)

    @classmethod
    def init(cls, key, mask, *, hidden=(64, 64), transformer=AffineTransformer(),
             activation: str = "silu", context_dim: int = 0) -> "Coupling":
        """Identity at init (the conditioner's last layer is zero)."""
        context_dim = positive_int(context_dim, "context_dim", minimum=0)
        check_transformer(transformer)
        mask = tuple(bool(m) for m in mask)
        n_a = sum(mask)
        if n_a == 0 or n_a == len(mask):
            raise ValueError(f"mask must have both True (conditioning) and False (transformed) entries, got {mask}.")
        sizes = (n_a + context_dim, *int_tuple(hidden, "hidden"), (len(mask) - n_a) * transformer.n_params)
        return cls(MLP.init(key, sizes, activation=activation), mask, transformer, context_dim)

    @property
    def dim(self) -> int:
        return len(self.mask)

    def parts(self):
        """Indices ``(a, b)``: the conditioning (unchanged) and the transformed coordinates."""
        m = np.asarray(self.mask)
        return np.flatnonzero(m), np.flatnonzero(~m)

    def transformer_params(self, x, context=None):
        """The transformer's parameters ``(n_b, n_params)`` computed from ``x_a`` (and the context)."""
        check_context(context, self.context_dim, "Coupling")
        ia, ib = self.parts()
        inputs = x[ia] if context is None else jnp.concatenate([x[ia], context.astype(x.dtype)])
        return self.conditioner(inputs).reshape(len(ib), self.transformer.n_params)

    def _apply(self, x, inverse: bool, context):
        _, ib = self.parts()
        fn = self.transformer.inverse if inverse else self.transformer.forward
        yb, ld = fn(x[ib], self.transformer_params(x, context))
        x = x.astype(jnp.result_type(x, yb))  # float32 data with float64 parameters -> float64 out
        return x.at[ib].set(yb), jnp.sum(ld)

    def forward_and_log_det(self, z, context=None):
        return self._apply(z, False, context)

    def inverse_and_log_det(self, x, context=None):
        return self._apply(x, True, context)
