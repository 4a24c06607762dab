"""Conditional flows: ``log q(x | c) = log p_Z(f^-1(x; c)) + log|det J_{f^-1}(x; c)|``.

One bijection ``f(.; c)`` for every context ``c``: its conditional layers (``Coupling``,
``MaskedAutoregressive`` built with ``context_dim = C``) feed ``c (C,)`` to their conditioners, and
``Chain`` / ``Stack`` / ``Invert`` hand it on. For a fixed ``c`` it is an ordinary bijection of
``x`` (:class:`Conditioned`). Trained on pairs ``(x, c)`` by maximum likelihood
(:func:`fit_conditional`, i.e. :func:`~nfcore.training.train` with the conditional NLL), a
conditional flow with ``c`` an observation and ``x`` the simulator's parameters is an amortised
posterior (neural posterior estimation). References: Winkler, Worrall, Hoogeboom & Welling (2019),
"Learning likelihoods with conditional normalizing flows"; Papamakarios & Murray (2016), "Fast
epsilon-free inference of simulation models with Bayesian conditional density estimation".
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .bijection import Bijection, pytree
from .coupling import Coupling, alternating_masks
from .autoregressive import MaskedAutoregressive
from .distributions import Distribution, Normal
from .flows import layered_flow
from .training import minibatches, train
from .transformers import AffineTransformer, check_transformer
from .validate import check_batch, finite_array, positive_int

__all__ = ["Conditioned", "ConditionalTransformed", "conditional_flow", "fit_conditional", "conditional_nll"]


class Conditioned(Bijection):
    """``x -> f(x; c)`` for one fixed context: a conditional bijection as an ordinary one.

    ``bijection``: any bijection with ``context_dim = C > 0``; ``context``: ``(C,)`` (an array leaf,
    so gradients reach it; not meant to be trained). Its Jacobian is the one in ``x`` for fixed ``c``.
    """

    bijection: Bijection
    context: jnp.ndarray

    def forward_and_log_det(self, z):
        return self.bijection.forward_and_log_det(z, self.context)

    def inverse_and_log_det(self, x):
        return self.bijection.inverse_and_log_det(x, self.context)


@pytree
class ConditionalTransformed:
    """The conditional distribution of ``x = f(z; c)``, ``z ~ base``:
    ``log q(x | c) = log p_base(f^-1(x; c)) + log|det J_{f^-1}(x; c)|``.

    ``log_prob(x, c)``: ``x (D,)`` or ``(N, D)`` with ``c (C,)`` (one context for every row) or
    ``(N, C)`` (pairs) -> ``()`` or ``(N,)``. ``sample(key, n, c)``: ``c (C,)`` -> ``(n, D)``;
    ``c (M, C)`` -> ``(M, n, D)``, ``n`` draws for each context.
    """

    base: Distribution
    bijection: Bijection

    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def context_dim(self) -> int:
        return self.bijection.context_dim

    def log_prob_one(self, x, context):
        """``log q(x | c)`` for one sample ``x (D,)`` and one context ``c (C,)`` (no validation)."""
        z, ld = self.bijection.inverse_and_log_det(x, context)
        return self.base.log_prob_one(z) + ld

    def _context(self, context, n=None):
        if context is None:
            raise ValueError(f"a conditional distribution needs a context: pass c of shape ({self.context_dim},) "
                             f"or (N, {self.context_dim}).")
        c = check_batch(context, self.context_dim, f"{type(self).__name__} context")
        if not isinstance(c, jax.core.Tracer):
            finite_array(c, "context")
        if n is not None and c.ndim == 2 and c.shape[0] != n:
            raise ValueError(f"x has {n} rows but the context has {c.shape[0]}: pass one context (C,) for all "
                             "rows, or one per row (N, C).")
        return c

    def log_prob(self, x, context):
        """``log q(x | c)``; ``-inf`` for a sample with an infinite component."""
        x = check_batch(x, self.dim, f"{type(self).__name__}.log_prob")
        c = self._context(context, x.shape[0] if x.ndim == 2 else None)

        def one(x, c):
            ok = jnp.all(jnp.isfinite(x))
            return jnp.where(ok, self.log_prob_one(jnp.where(ok, x, 0.0), c), -jnp.inf)

        if x.ndim == 1 and c.ndim == 1:
            return one(x, c)
        return jax.vmap(one, (0 if x.ndim == 2 else None, 0 if c.ndim == 2 else None))(x, c)

    def sample_and_log_prob(self, key, n: int, context):
        """``n`` draws per context and their log-densities: ``((n, D), (n,))`` or ``((M, n, D), (M, n))``."""
        n, c = positive_int(n, "n (the number of samples)"), self._context(context)

        def draw(key, c):
            z = self.base.sample(key, n)
            x, ld = jax.vmap(lambda z: self.bijection.forward_and_log_det(z, c))(z)
            return x, jax.vmap(self.base.log_prob_one)(z) - ld

        if c.ndim == 1:
            return draw(key, c)
        return jax.vmap(draw)(jax.random.split(key, c.shape[0]), c)

    def sample(self, key, n: int, context):
        """``n`` draws per context: ``(n, D)`` for ``c (C,)``, ``(M, n, D)`` for ``c (M, C)``."""
        return self.sample_and_log_prob(key, n, context)[0]


def conditional_flow(key, dim: int, context_dim: int, *, layers: int = 6, hidden=(64, 64),
                     transformer=AffineTransformer(), kind: str = "coupling", activation: str = "silu",
                     shift=None, scale=None) -> ConditionalTransformed:
    """``ConditionalTransformed(Normal(dim), ...)`` of ``layers`` conditional layers (identity at init).

    ``kind="coupling"``: couplings with alternating masks (``dim >= 2``); ``"maf"``: MAF layers in
    natural and reversed order. Pairs are stacked with ``lax.scan`` as in ``nf.coupling_flow``.
    ``shift``/``scale`` (D,): a final trainable ``Affine`` set to the data's mean/std.
    """
    context_dim = positive_int(context_dim, "context_dim")
    check_transformer(transformer)
    if kind == "coupling":
        masks = alternating_masks(dim)

        def make_layer(k, i):
            return Coupling.init(k, masks[i], hidden=hidden, transformer=transformer, activation=activation,
                                 context_dim=context_dim)
    elif kind == "maf":
        def make_layer(k, i):
            return MaskedAutoregressive.init(k, dim, hidden=hidden, transformer=transformer, activation=activation,
                                             order=("natural", "reversed")[i], context_dim=context_dim)
    else:
        raise ValueError(f"kind must be 'coupling' or 'maf', got {kind!r}.")
    flow = layered_flow(key, dim, layers=layers, make_layer=make_layer, period=2, shift=shift, scale=scale)
    return ConditionalTransformed(Normal(dim), flow.bijection)


def conditional_nll(model: ConditionalTransformed, x, context):
    """Mean ``-log q(x_i | c_i)`` over pairs ``x (N, D)``, ``c (N, C)`` (nats)."""
    return -jnp.mean(jax.vmap(model.log_prob_one)(x, context))


def _pairs(model, x, c, name):
    x = check_batch(x, model.dim, f"{name} x")
    c = check_batch(c, model.context_dim, f"{name} context")
    if x.ndim != 2 or c.ndim != 2 or x.shape[0] != c.shape[0]:
        raise ValueError(f"{name} must be pairs: x of shape (N, {model.dim}) and c of shape (N, "
                         f"{model.context_dim}) with the same N, got {tuple(x.shape)} and {tuple(c.shape)}.")
    return jnp.asarray(finite_array(x, f"{name} x")), jnp.asarray(finite_array(c, f"{name} context"))


def fit_conditional(key, model: ConditionalTransformed, x, c=None, *, steps: int, batch_size: int = 512,
                    held_out=None, **train_options):
    """Maximum likelihood on pairs: :func:`~nfcore.training.train` with :func:`conditional_nll`.

    ``x (N, D)`` and ``c (N, C)``: pairs, minibatches drawn with replacement; or ``x`` a simulator
    ``x(key, n) -> (x (n, D), c (n, C))`` and ``c=None``: fresh pairs every step, drawn inside the
    compiled loop. ``held_out``: a pair of arrays ``(x, c)`` whose NLL is evaluated after every chunk.
    ``train_options``: ``learning_rate``, ``optimizer``, ``patience``, ``chunk``, ``ema``, ``progress``
    (see :func:`~nfcore.training.train`). Returns its ``FitResult``.
    """
    if not isinstance(model, ConditionalTransformed):
        raise ValueError(f"model must be a ConditionalTransformed (e.g. nf.conditional_flow(...)), "
                         f"got {type(model).__name__}.")
    batch_size = positive_int(batch_size, "batch_size")
    if callable(x):
        if c is not None:
            raise ValueError("with a simulator x(key, n) -> (x, c), leave c=None.")
        batches = lambda k: x(k, batch_size)
    else:
        batches = minibatches(_pairs(model, x, c, "fit_conditional"), batch_size)
    evaluate = None
    if held_out is not None:
        if not (isinstance(held_out, (tuple, list)) and len(held_out) == 2):
            raise ValueError("held_out must be a pair (x (M, D), c (M, C)).")
        hx, hc = _pairs(model, *held_out, "held_out")
        evaluate = jax.jit(lambda m: conditional_nll(m, hx, hc))
    return train(key, model, lambda m, b: conditional_nll(m, *b), batches, steps=steps,
                 evaluate=evaluate, desc="fit_conditional", **train_options)
