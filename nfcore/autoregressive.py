"""Masked autoregressive layers: MAF and IAF, one implementation.

An autoregressive layer transforms each variable with parameters that depend only on the
variables before it in a chosen order, ``y_i = tau(u_i; MADE(w)_i)`` with ``MADE(w)_i`` a function
of ``w_{<i}``: the Jacobian is triangular and ``log|det J| = sum_i log|tau'(u_i)|``. Whichever
direction has ``w`` as its *input* runs in one pass; the other needs ``D`` passes (see the table in
:class:`MaskedAutoregressive`). MAF: Papamakarios, Pavlakou & Murray (2017); IAF: Kingma,
Salimans, Jozefowicz, Chen, Sutskever & Welling (2016).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .bijection import Bijection, static
from .made import MADE, check_made_args
from .transformers import AffineTransformer, check_transformer

__all__ = ["MaskedAutoregressive", "DIRECTIONS"]

DIRECTIONS = ("inverse", "forward")  # which pass is parallel: MAF, IAF


class MaskedAutoregressive(Bijection):
    """An autoregressive layer ``x_i = tau(z_i; MADE(.)_i)`` — MAF or IAF by one static flag.

    | ``parallel``            | forward ``z -> x`` (sampling)    | inverse ``x -> z`` (density)     |
    |-------------------------|----------------------------------|----------------------------------|
    | ``"inverse"`` (**MAF**) | ``D`` sequential MADE passes     | 1 pass: ``z = tau^-1(x; MADE(x))`` |
    | ``"forward"`` (**IAF**) | 1 pass: ``x = tau(z; MADE(z))``  | ``D`` sequential MADE passes     |

    MAF (the MADE reads the data) suits density estimation: maximum-likelihood training evaluates
    only the inverse. IAF (the MADE reads the base sample) suits sampling and
    ``sample_and_log_prob`` of its own samples (variational inference), both in one pass.
    The sequential direction solves ``y = tau^{+-1}(v; MADE(y))`` by ``D`` passes
    ``y <- tau^{+-1}(v; MADE(y))`` from ``y = 0`` in a ``lax.fori_loop``: after pass ``k`` the
    first ``k`` variables in the order are exact, so the result is exact, not an approximation.
    Log-det: ``sum_i log|tau'|`` of the pass applied (forward: ``log|dx/dz|``, inverse: ``log|dz/dx|``).

    ``Invert(MAF(made, tau))`` equals ``IAF(made, tau^-1)`` (the transformer with its directions
    swapped): the two are twins. ``made``: a :class:`~nfcore.made.MADE` with
    ``made.n_params == transformer.n_params`` (its weights are the layer's only leaves);
    ``transformer``: static, any object with ``n_params``, ``forward(x, params)`` and
    ``inverse(y, params)`` acting elementwise on ``(k,)`` with ``params (k, n_params)``
    (``AffineTransformer``, ``Additive``, splines). Fresh from :meth:`init` the layer is the identity.
    Conditional (a MADE with ``context_dim > 0``): ``*_and_log_det(x, c)``, the MADE reads ``c``
    with every pass (Papamakarios et al. 2017, conditional MAF).

    References: Papamakarios, Pavlakou & Murray (2017), MAF; Kingma et al. (2016), IAF.
    """

    made: MADE
    transformer: object = static(default=AffineTransformer())
    parallel: str = static(default="inverse")

    def __post_init__(self):
        if self.parallel not in DIRECTIONS:
            raise ValueError(f"parallel must be 'inverse' (MAF: one-pass density) or 'forward' (IAF: one-pass "
                             f"sampling), got {self.parallel!r}.")

    @classmethod
    def init(cls, key, dim: int, *, hidden=(64, 64), transformer=AffineTransformer(), order="natural",
             parallel: str = "inverse", activation: str = "silu", context_dim: int = 0) -> "MaskedAutoregressive":
        """Identity at init (the MADE's last layer is zero). ``order``, ``context_dim``: see :meth:`MADE.init`."""
        check_transformer(transformer)
        if parallel not in DIRECTIONS:
            raise ValueError(f"parallel must be 'inverse' (MAF) or 'forward' (IAF), got {parallel!r}.")
        made = MADE.init(key, dim, hidden=hidden, n_params=transformer.n_params, order=order, activation=activation,
                         context_dim=context_dim)
        return cls(made, transformer, parallel)

    @property
    def dim(self) -> int:
        return self.made.dim

    @property
    def context_dim(self) -> int:
        return self.made.context_dim

    def _params(self, u, context=None):
        p = self.made(u, context)
        if p.shape[-1] != self.transformer.n_params:
            raise ValueError(f"the MADE gives {p.shape[-1]} parameters per variable but the transformer "
                             f"needs {self.transformer.n_params}; build it with MADE.init(..., n_params="
                             f"{self.transformer.n_params}).")
        return p

    def one_pass(self, u, fn, context=None):
        """``fn(u; MADE(u))``: the conditioner reads the input being transformed."""
        y, ld = fn(u, self._params(u, context))
        return y, jnp.sum(ld)

    def sequential_pass(self, v, y, context=None):
        """One pass ``y <- tau^{+-1}(v; MADE(y))`` of the sequential direction, with its log-det."""
        fn = self.transformer.forward if self.parallel == "inverse" else self.transformer.inverse
        out, ld = fn(v, self._params(y, context))
        return out, jnp.sum(ld)

    @jax.jit  # self is a pytree: eager calls, and their jvp / vmap, reuse one compiled loop
    def d_passes(self, v, context=None):
        """Solve ``y = tau^{+-1}(v; MADE(y))`` by ``D`` fixed-point passes (exact after ``D``, not approximate)."""
        y, ld = self.sequential_pass(v, jnp.zeros_like(v), context)  # outside the loop: fixes the carry's dtype
        if self.dim > 1:
            # rows of MADE(y) of rank <= k depend on ranks < k only, so the log-det of the last pass
            # (computed from MADE(y_{D-1}) = MADE(y_D)) is the exact one
            _, _, _, y, ld = jax.lax.fori_loop(1, self.dim, _next_pass, (self, v, context, y, ld))
        return y, ld

    def forward_and_log_det(self, z, context=None):
        if self.parallel == "forward":
            return self.one_pass(z, self.transformer.forward, context)
        return self.d_passes(z, context)

    def inverse_and_log_det(self, x, context=None):
        if self.parallel == "inverse":
            return self.one_pass(x, self.transformer.inverse, context)
        return self.d_passes(x, context)


def _next_pass(_, carry):
    # module level, not a closure: JAX's trace cache then reuses the loop body across calls
    layer, v, context, y, _ = carry
    return (layer, v, context, *layer.sequential_pass(v, y, context))
