"""Variational inference: ``KL(q || p) = E_q[log q(x) - log p~(x)] + log Z``, minimised and judged.

We fit a flow ``q`` to an unnormalised ``p~`` with ``x = f(z)``, ``z ~ N(0, I)``: the samples
and ``log q(x) = log p_Z(z) - log|det J_f(z)|`` both come from the forward pass, so the gradient flows
through the samples (reparameterisation) and the flow never needs its inverse or ``Z``.
Diagnostics: the reverse KL with its Monte-Carlo error, the importance weights ``w = p~(x) / q(x)``,
their effective sample size ``ESS / N = (sum w)^2 / (N sum w^2)`` and self-normalised importance
sampling, which corrects an expectation under ``q`` towards one under ``p``.

References: D. J. Rezende, S. Mohamed (2015), Variational Inference with Normalizing Flows, ICML;
G. Papamakarios et al. (2021), Normalizing Flows for Probabilistic Modeling and Inference, JMLR, Sec. 2.3;
A. Kong (1992), A note on importance sampling using standardized weights (ESS).
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .distributions import Transformed
from .training import train
from .validate import positive_int

__all__ = ["fit_reverse_kl", "reverse_kl_loss", "reverse_kl", "importance_weights", "ess", "snis_expectation"]


def _check_model(model, who):
    if not isinstance(model, Transformed):
        raise ValueError(f"{who} needs a flow nf.Transformed(base, bijection), got {type(model).__name__}.")
    if jax.tree_util.tree_leaves(model.base):
        raise ValueError(f"{who} needs a base without trainable parameters (e.g. nf.Normal(dim)): samples z are "
                         "drawn from it outside the gradient.")
    if not callable(getattr(model, "bijection", None).forward_and_log_det):
        raise ValueError(f"{who}: model.bijection must be an nfcore bijection.")


def _log_q_forward(model, z):
    x, log_det = jax.vmap(model.bijection.forward_and_log_det)(z)
    return x, model.base.log_prob(z) - log_det


def reverse_kl_loss(model, log_density: Callable, z):
    """``mean_i [log q(f(z_i)) - log p~(f(z_i))]`` for base samples ``z`` (N, D): the training loss
    (``KL(q || p) - log Z``, the negative ELBO). ``log_density``: one sample ``(D,)`` -> ``()``."""
    x, log_q = _log_q_forward(model, z)
    return jnp.mean(log_q - jax.vmap(log_density)(x))


def fit_reverse_kl(key, model: Transformed, log_density: Callable, *, steps: int, batch_size: int = 256,
                   **train_kwargs):
    """Minimise ``KL(q || p)`` for an unnormalised ``log p~`` (one sample ``(D,) -> ()``) with ``nf.train``.

    Each step draws ``batch_size`` fresh base samples (the "data" of this objective) inside the
    compiled loop; everything else (optimiser, learning-rate schedule, progress bar, non-finite
    handling, history, ``evaluate``/``patience``, ``ema``) is :func:`nfcore.train`'s, whose keyword
    arguments pass through. Returns its ``FitResult``; ``loss`` is the negative ELBO per step.
    """
    _check_model(model, "fit_reverse_kl")
    if not callable(log_density):
        raise ValueError("log_density must be a function of one sample (D,) -> scalar, e.g. target.log_prob.")
    batch_size = positive_int(batch_size, "batch_size")
    base = model.base

    def batches(k):
        return base.sample(k, batch_size)

    def loss(m, z):
        return reverse_kl_loss(m, log_density, z)

    train_kwargs.setdefault("desc", "reverse KL")
    return train(key, model, loss, batches, steps=steps, batch_size=batch_size, **train_kwargs)


def importance_weights(model: Transformed, log_density: Callable, key, n: int):
    """Samples ``x ~ q`` (n, D) and their log-weights ``log p~(x) - log q(x)`` (n,), forward pass only."""
    _check_model(model, "importance_weights")
    n = positive_int(n, "n")
    x, log_q = _log_q_forward(model, model.base.sample(key, n))
    return x, jax.vmap(log_density)(x) - log_q


def reverse_kl(model: Transformed, log_density: Callable, key, n: int, log_Z: float | None = None):
    """``KL(q || p) = E_q[log q - log p~] + log Z`` in nats, with its Monte-Carlo standard error.

    Without ``log_Z`` it returns ``E_q[log q - log p~]`` (``KL - log Z``, the negative ELBO), whose
    error bar is the same. Computed in float64 from ``n`` samples of ``q``.
    """
    _, log_w = importance_weights(model, log_density, key, n)
    d = -np.asarray(log_w, np.float64)
    if not np.all(np.isfinite(d)):
        raise ValueError("reverse_kl: q puts samples where log p~ is -inf or non-finite; KL(q || p) is infinite.")
    kl = float(d.mean()) + (0.0 if log_Z is None else float(log_Z))
    return kl, float(d.std(ddof=1) / math.sqrt(len(d)))


def ess(log_w) -> float:
    """Effective sample size per sample, ``(sum w)^2 / (N sum w^2)`` in (0, 1], from log-weights (N,)."""
    lw = np.asarray(log_w, np.float64)
    if lw.ndim != 1 or len(lw) < 1:
        raise ValueError(f"ess needs log-weights of shape (N,), got {lw.shape}.")
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / (len(w) * np.sum(w**2)))


def snis_expectation(values, log_w):
    """Self-normalised importance sampling: ``sum w_i f_i / sum w_i`` with its delta-method standard
    error ``sqrt(sum wbar_i^2 (f_i - estimate)^2)`` (``wbar`` the normalised weights).

    ``values``: ``f(x_i)`` (N,), ``log_w``: (N,) from :func:`importance_weights`.
    """
    f, lw = np.asarray(values, np.float64), np.asarray(log_w, np.float64)
    if f.shape != lw.shape or f.ndim != 1:
        raise ValueError(f"values and log_w must both have shape (N,), got {f.shape} and {lw.shape}.")
    w = np.exp(lw - lw.max())
    w /= w.sum()
    est = float(np.sum(w * f))
    return est, float(np.sqrt(np.sum(w**2 * (f - est) ** 2)))
