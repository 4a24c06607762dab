"""Maximum-likelihood training: one ``fit`` for every chapter.

The update loop runs ``chunk`` optimiser steps per dispatch inside :func:`jax.lax.scan`
(on small flows, Python dispatch would otherwise dominate), draws fresh batches from a sampler
or minibatches from an array *inside* the compiled loop, evaluates a held-out NLL after each
chunk, shows a progress bar, stops early when the held-out NLL stops improving, and stops on a
non-finite loss — reporting the step — returning the last good parameters.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .distributions import Distribution, check_batch

__all__ = ["fit", "FitResult", "nll", "kl_divergence"]


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    ``model``: the trained (best held-out, else last good; averaged with ``ema``) model; ``loss``: (steps_done,)
    training NLL per step; ``eval_steps`` / ``held_out_nll``: the held-out NLL after each chunk;
    ``status``: ``"done"``, ``"early stop at step N"`` or ``"non-finite loss at step N"`` (then
    ``model`` holds the parameters of the last step whose loss was finite);
    ``seconds``: wall time; ``compile_seconds``: XLA compilation of the training loop;
    ``run_seconds``: time spent running training steps (no compilation, no evaluation);
    ``chunk_seconds``: the run time of each compiled chunk of ``chunk`` steps (the last may be shorter).
    """

    model: Distribution
    loss: np.ndarray
    eval_steps: np.ndarray
    held_out_nll: np.ndarray
    status: str
    steps: int
    seconds: float
    compile_seconds: float
    run_seconds: float
    chunk_seconds: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    @property
    def steps_per_second(self) -> float:
        """Training speed excluding compilation and held-out evaluation."""
        return self.steps / self.run_seconds if self.run_seconds > 0 else float("nan")


def nll(model: Distribution, x) -> jnp.ndarray:
    """Mean negative log-likelihood ``-1/N sum log q(x_i)`` in nats (``x``: (N, D))."""
    return -jnp.mean(model.log_prob(x))


EVAL_CHUNK = 8192  # samples per chunk when evaluating a large held-out set (bounds peak memory)


@functools.partial(jax.jit, static_argnames="chunk")
def _log_prob_chunked(distribution, x, chunk=EVAL_CHUNK):
    # log q(x_i) for every row of x (N, D), `chunk` rows at a time under lax.map, so the
    # intermediate activations of one chunk, not of all N rows, are alive at once. Compiled once
    # per model structure and data shape (the model is an argument, not a constant).
    n = x.shape[0]
    if n <= chunk:
        return jax.vmap(distribution._log_prob_one)(x)
    pad = (-n) % chunk
    xp = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, x.shape[1]))]) if pad else x
    out = jax.lax.map(jax.vmap(distribution._log_prob_one), xp.reshape(-1, chunk, x.shape[1]))
    return out.reshape(-1)[:n]


def kl_divergence(model: Distribution, target, x) -> tuple[float, float]:
    """``KL(p || q) = E_p[log p - log q] = NLL(q) - H(p)`` on samples ``x ~ p``, with its
    Monte-Carlo standard error ``std(log p - log q) / sqrt(N)`` (nats)."""
    x = check_batch(x, target.dim, "kl_divergence")
    if x.ndim == 1:
        x = x[None]
    diff = (np.asarray(_log_prob_chunked(target, x), np.float64)
            - np.asarray(_log_prob_chunked(model, x), np.float64))
    return float(np.mean(diff)), float(np.std(diff, ddof=1) / math.sqrt(len(diff)))


def _validate(model, data, steps, batch_size, learning_rate, held_out, chunk, sub_batches):
    if not isinstance(model, Distribution):
        raise ValueError(f"model must be an nfcore distribution (e.g. Transformed), got {type(model).__name__}.")
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if learning_rate is not None and not (float(learning_rate) > 0 and math.isfinite(float(learning_rate))):
        raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate}.")
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk}.")
    if not 1 <= int(sub_batches) <= int(batch_size):
        raise ValueError(f"sub_batches must be an integer from 1 to batch_size={batch_size}, got {sub_batches}.")
    if not callable(data):
        data = jnp.asarray(check_batch(data, model.dim, "fit data"))
        if data.ndim != 2:
            raise ValueError(f"fit data must be a batch of shape (N, {model.dim}), got shape {data.shape}.")
        if int(batch_size) > data.shape[0]:
            raise ValueError(f"batch_size={batch_size} is larger than the data ({data.shape[0]} samples); "
                             "use a smaller batch_size or more data.")
        if not bool(jnp.all(jnp.isfinite(data))):
            raise ValueError("fit data contains inf values; remove them first.")
    if held_out is not None:
        held_out = jnp.asarray(check_batch(held_out, model.dim, "fit held_out"))
        if held_out.ndim != 2:
            raise ValueError(f"held_out must have shape (N, {model.dim}), got {held_out.shape}.")
    return data, held_out


def fit(key, model: Distribution, data, *, steps: int, batch_size: int = 512,
        learning_rate: float = 1e-3, optimizer: optax.GradientTransformation | None = None,
        held_out=None, chunk: int | None = None, patience: int | None = None,
        sub_batches: int = 1, ema: float | None = None, compiler_options: dict | None = None,
        progress: bool = True) -> FitResult:
    """Fit ``model`` by maximum likelihood (minimise the NLL) with optax.

    ``data``: an (N, D) array (minibatches drawn with replacement) or a sampler
    ``data(key, n) -> (n, D)`` (fresh samples every step, e.g. ``target.sample``).
    ``optimizer``: any optax transformation (default: adamw, weight decay 1e-4, learning rate
    cosine-decayed from ``learning_rate`` to 0 over ``steps``). ``held_out``: (M, D) array whose NLL is
    evaluated after every ``chunk`` steps; with ``patience`` (chunks without improvement) it
    stops early and returns the best model. ``sub_batches``: the loss is summed over this many
    slices of each batch, each a separate ``vmap``; the gradient is the same, but on a CPU XLA runs
    the independent slices concurrently on different cores (2 helps an unrolled flow,
    ``unroll=True``; with a scanned ``Stack`` the slices' loops run one after the other).
    ``ema``: a decay in (0, 1), e.g. 0.995: also keep the exponential moving average of the
    parameters, ``avg <- ema * avg + (1 - ema) * params`` after every step from ``avg = 0``, used as
    ``avg / (1 - ema^t)`` after ``t`` steps (debiased, as in Adam: a weighted mean of the iterates,
    the initial model excluded). The held-out NLL, early stopping and the returned ``model`` then
    use the average, which removes most of the last iterates' noise (with a constant learning rate
    the last iterate jitters). On a non-finite loss the last good (not averaged) parameters are
    returned. ``compiler_options``: XLA options for compiling the training loop (advanced; e.g.
    ``{"xla_cpu_use_fusion_emitters": False}`` makes a CPU compile take ~200 MB less memory, but
    the steps run slower). Same ``key`` -> same result.
    """
    data, held_out = _validate(model, data, steps, batch_size, learning_rate, held_out, chunk, sub_batches)
    steps, batch_size, sub_batches = int(steps), int(batch_size), int(sub_batches)
    if ema is not None and not 0.0 < float(ema) < 1.0:
        raise ValueError(f"ema must be a decay in (0, 1) such as 0.995, or None, got {ema}.")
    chunk = int(chunk) if chunk is not None else min(steps, 500)
    if optimizer is None:
        optimizer = optax.adamw(optax.cosine_decay_schedule(learning_rate, steps), weight_decay=1e-4)
    sampler: Callable = data if callable(data) else None

    def batch(k):
        if sampler is not None:
            return sampler(k, batch_size)
        idx = jax.random.randint(k, (batch_size,), 0, data.shape[0])
        return data[idx]

    bounds = np.cumsum([0] + [batch_size // sub_batches + (i < batch_size % sub_batches) for i in range(sub_batches)])

    def loss_fn(m, x):
        log_q = [jnp.sum(jax.vmap(m._log_prob_one)(x[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
        return -sum(log_q) / batch_size

    def step(carry, k):
        m, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(m, batch(k))
        updates, opt_state = optimizer.update(grads, opt_state, m)
        return (optax.apply_updates(m, updates), opt_state), loss

    def averaged_step(carry, k):
        (m, opt_state), loss = step(carry[:2], k)
        avg = carry[2] if ema is None else jax.tree_util.tree_map(lambda a, p: ema * a + (1 - ema) * p, carry[2], m)
        return (m, opt_state, avg), loss

    def careful_step(carry, k):
        # Same update, but once a loss (or gradient) is non-finite everything freezes, and
        # `last` holds the parameters of the last step whose loss was finite.
        m, last, opt_state, bad, i = carry
        (new_m, new_state), loss = step((m, opt_state), k)
        ok_loss = jnp.isfinite(loss)
        ok = ok_loss & jnp.isfinite(optax.tree.norm(new_m)) & (bad < 0)
        pick = lambda c, a, b: jax.tree_util.tree_map(lambda u, v: jnp.where(c, u, v), a, b)
        last = pick((bad < 0) & ok_loss, m, last)
        bad = jnp.where(~ok & (bad < 0), i, bad)
        return (pick(ok, new_m, m), last, pick(ok, new_state, opt_state), bad, i + 1), loss

    @jax.jit
    def run_chunk(m, opt_state, avg, keys):
        return jax.lax.scan(averaged_step, (m, opt_state, avg), keys)

    @jax.jit
    def run_chunk_carefully(m, opt_state, keys, start):
        (_, last, _, bad, _), losses = jax.lax.scan(careful_step, (m, m, opt_state, jnp.array(-1), start), keys)
        return last, bad, losses

    def all_finite(tree):
        return all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree_util.tree_leaves(tree))

    def eval_nll(m, x):
        return -jnp.mean(_log_prob_chunked(m, x))

    opt_state = optimizer.init(model)
    avg = jax.tree_util.tree_map(jnp.zeros_like, model) if ema is not None else ()  # nothing to carry without ema

    def averaged(avg, t):
        return jax.tree_util.tree_map(lambda a: a / (1 - ema**t), avg)

    losses, eval_steps, evals = [], [], []
    best, best_nll, since_best = model, math.inf, 0
    status, done = "done", 0
    t0 = time.perf_counter()
    compile_seconds = run_seconds = 0.0
    chunk_seconds = []
    compiled = {}
    bar = _progress(steps) if progress else None
    try:
        while done < steps:
            n = min(chunk, steps - done)
            keys = jax.random.split(jax.random.fold_in(key, done), n)
            start = jnp.array(done)
            if n not in compiled:  # ahead-of-time, so compile time is measured apart from run time
                tc = time.perf_counter()
                compiled[n] = run_chunk.lower(model, opt_state, avg, keys).compile(compiler_options)
                compile_seconds += time.perf_counter() - tc
            tr = time.perf_counter()
            (new_model, new_state, new_avg), chunk_loss = compiled[n](model, opt_state, avg, keys)
            chunk_loss = np.asarray(chunk_loss)
            chunk_seconds.append(time.perf_counter() - tr)
            run_seconds += chunk_seconds[-1]
            if not (np.all(np.isfinite(chunk_loss)) and all_finite(new_model)):
                # re-run this chunk with per-step checks: they freeze the parameters before the bad step
                model, bad, chunk_loss = run_chunk_carefully(model, opt_state, keys, start)
                bad = int(bad)
                losses.append(np.asarray(chunk_loss)[: bad - done])
                status = f"non-finite loss at step {bad}"
                warnings.warn(f"fit stopped: non-finite loss or parameters at step {bad}; returning the parameters "
                              "of the last step with a finite loss. Try a smaller learning_rate, or check the data "
                              "scale.", RuntimeWarning, stacklevel=2)
                done = bad
                break
            model, opt_state, avg = new_model, new_state, new_avg
            losses.append(chunk_loss)
            done += n
            post = {"loss": f"{float(chunk_loss[-min(50, n):].mean()):.4f}"}
            current = model if ema is None else averaged(avg, done)  # the model that fit returns
            if held_out is not None:
                h = float(eval_nll(current, held_out))
                eval_steps.append(done)
                evals.append(h)
                post["held-out"] = f"{h:.4f}"
                if h < best_nll:
                    best, best_nll, since_best = current, h, 0
                else:
                    since_best += 1
                    if patience is not None and since_best >= patience:
                        status = f"early stop at step {done}"
                        break
            if bar is not None:
                bar.update(n)
                bar.set_postfix(post, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    if status.startswith("early stop"):
        model = best
    elif ema is not None and not status.startswith("non-finite"):
        model = averaged(avg, done)
    return FitResult(model, np.concatenate(losses) if losses else np.zeros(0), np.asarray(eval_steps),
                     np.asarray(evals), status, done, time.perf_counter() - t0, compile_seconds, run_seconds,
                     np.asarray(chunk_seconds))


def _progress(total):
    from tqdm import tqdm  # plain text bar: renders in notebooks, the built book and terminals alike

    return tqdm(total=total, desc="fit", unit="step", leave=False, mininterval=0.5)
