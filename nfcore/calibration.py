"""Calibration of an amortised posterior ``q(theta | y)``: is it right *on average* over the prior?

Draw ``(theta_i, y_i)`` from the prior and the simulator, then ``L`` posterior draws for each ``y_i``.

* **Simulation-based calibration** (SBC; Talts, Betancourt, Simpson, Vehtari & Gelman 2018):
  ``rank_ij = #{l : theta_lj < theta_ij}`` in ``{0, ..., L}``; for the exact posterior the ranks
  are uniform, for every parameter ``j``. :func:`rank_uniformity` tests that with a chi-square.
* **Expected coverage of highest-density regions** (Hermans, Delaunoy, Rozet, Wehenkel, Begy &
  Louppe 2022, "A trust crisis in simulation-based inference?"): ``level_i = #{l : log q(theta_l)
  > log q(theta_i)} / L`` is the credibility of the smallest HPD region containing the truth; the
  coverage of the ``alpha`` HPD region is ``mean_i [level_i < alpha]``, which equals ``alpha`` for a
  calibrated posterior. Below the diagonal: overconfident; above: conservative.

Every function returns NumPy arrays a plot can show; none draws.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaincc

from .validate import positive_int

__all__ = ["posterior_draws", "sbc_ranks", "hpd_levels", "expected_coverage", "coverage_band", "rank_uniformity"]


def posterior_draws(key, model, contexts, n: int, chunk: int = 256):
    """``n`` draws of ``model`` (a ``ConditionalTransformed``) for each context ``(M, C)`` and their
    log-densities: ``((M, n, D), (M, n))``, ``chunk`` contexts at a time (bounded memory)."""
    contexts = jnp.asarray(contexts)
    m, n, chunk = contexts.shape[0], positive_int(n, "n"), positive_int(chunk, "chunk")
    chunk = min(chunk, m)
    pad = (-m) % chunk
    cp = jnp.concatenate([contexts, jnp.broadcast_to(contexts[:1], (pad, contexts.shape[1]))]) if pad else contexts
    keys = jax.random.split(key, cp.shape[0])
    x, lq = _draws(model, keys.reshape(-1, chunk, *keys.shape[1:]), cp.reshape(-1, chunk, cp.shape[1]), n)
    return np.asarray(x.reshape(-1, n, x.shape[-1])[:m]), np.asarray(lq.reshape(-1, n)[:m])


@functools.partial(jax.jit, static_argnames="n")
def _draws(model, keys, contexts, n):
    draw = jax.vmap(lambda k, c: model.sample_and_log_prob(k, n, c))
    return jax.lax.map(lambda a: draw(*a), (keys, contexts))


def sbc_ranks(samples, truth) -> np.ndarray:
    """``(N, D)`` ranks in ``{0, ..., L}``: how many of the ``L`` draws ``samples (N, L, D)`` lie below
    each true parameter ``truth (N, D)``, per parameter."""
    samples, truth = np.asarray(samples), np.asarray(truth)
    if samples.ndim != 3 or truth.shape != (samples.shape[0], samples.shape[2]):
        raise ValueError(f"samples must be (N, L, D) and truth (N, D), got {samples.shape} and {truth.shape}.")
    return np.sum(samples < truth[:, None, :], axis=1)


def hpd_levels(log_q_samples, log_q_truth) -> np.ndarray:
    """``(N,)`` credibility of the smallest highest-density region containing the truth: the fraction
    of the ``L`` draws (log-densities ``(N, L)``) that are more probable than the truth (``(N,)``)."""
    lq, lt = np.asarray(log_q_samples), np.asarray(log_q_truth)
    if lq.ndim != 2 or lt.shape != (lq.shape[0],):
        raise ValueError(f"log_q_samples must be (N, L) and log_q_truth (N,), got {lq.shape} and {lt.shape}.")
    return np.mean(lq > lt[:, None], axis=1)


def expected_coverage(levels, alphas=None):
    """``(alphas, coverage)``: the fraction of truths inside the ``alpha`` HPD region, ``mean [level < alpha]``
    (default: 101 levels from 0 to 1). A calibrated posterior gives ``coverage = alpha``."""
    levels = np.asarray(levels)
    alphas = np.linspace(0.0, 1.0, 101) if alphas is None else np.asarray(alphas)
    return alphas, np.mean(levels[None, :] < alphas[:, None], axis=1)


def coverage_band(n: int, confidence: float = 0.95) -> float:
    """Half-width of a band that holds the whole coverage curve of ``n`` calibrated posteriors with
    probability ``>= confidence``: ``sqrt(log(2 / (1 - confidence)) / (2 n))`` (the DKW inequality;
    the curve is the empirical CDF of the levels, uniform when calibrated)."""
    n = positive_int(n, "n")
    return math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * n))


def rank_uniformity(ranks, n_samples: int, bins: int = 10):
    """Pearson's chi-square test that ranks in ``{0, ..., L}`` (``L = n_samples``) are uniform, per column.

    Returns ``(counts (bins, D), statistic (D,), p_value (D,))``; ``bins`` must divide ``L + 1``, so each
    bin holds the same number of rank values and expects ``N / bins`` ranks. ``p = Q((bins - 1) / 2,
    statistic / 2)`` (the chi-square survival function with ``bins - 1`` degrees of freedom).
    """
    ranks = np.atleast_2d(np.asarray(ranks).T).T
    n_samples, bins = positive_int(n_samples, "n_samples"), positive_int(bins, "bins", minimum=2)
    if (n_samples + 1) % bins:
        raise ValueError(f"bins={bins} must divide n_samples + 1 = {n_samples + 1}; choose e.g. n_samples = "
                         f"{bins * ((n_samples + 1) // bins + 1) - 1}.")
    counts = np.stack([np.bincount(r * bins // (n_samples + 1), minlength=bins) for r in ranks.T], axis=1)
    expected = ranks.shape[0] / bins
    stat = np.sum((counts - expected) ** 2 / expected, axis=0)
    p = np.asarray(gammaincc((bins - 1) / 2.0, stat / 2.0))
    return counts, stat, p
