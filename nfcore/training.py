"""Training: one compiled step for every objective, and ``fit`` (maximum likelihood) built on it.

The pipeline, in the order a reader meets it:

1. a **batcher** ``batches(key) -> batch`` (minibatches of an array, or fresh samples);
2. a **loss** ``loss(model, batch) -> scalar`` (``nll_loss`` for maximum likelihood);
3. :func:`train_step`: value-and-grad, optax update, the parameter average (``ema``), and a
   freeze at the first non-finite loss — one function, run ``chunk`` times per dispatch under
   :func:`jax.lax.scan` (on small flows Python dispatch would otherwise dominate);
4. :func:`train`: the host loop — progress bar, held-out evaluation after each chunk,
   :class:`EarlyStopping`, and a :class:`FitResult` with typed fields.

Other objectives (reverse KL, flow matching, conditional pairs) call :func:`train` with their own
loss and batcher. Same key -> same result.
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .distributions import Distribution, map_in_chunks
from .validate import check_batch, finite_array, positive_float, positive_int, unit_interval

__all__ = ["train", "fit", "train_step", "TrainState", "FitResult", "EarlyStopping", "minibatches", "nll_loss",
           "nll", "kl_divergence", "default_optimizer"]


# --- 1. batchers and 2. losses ---------------------------------------------------------------

def minibatches(data, batch_size: int) -> Callable:
    """``batches(key)``: ``batch_size`` rows drawn with replacement from ``data`` (an array
    ``(N, ...)`` or a tuple of arrays with the same ``N``, e.g. pairs ``(x, c)``)."""
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    return lambda key: jax.tree_util.tree_map(lambda a: a[jax.random.randint(key, (batch_size,), 0, n)], data)


def nll_loss(model: Distribution, x, sub_batches: int = 1):
    """``-1/B sum_i log q(x_i)`` over a batch ``x (B, D)``; ``sub_batches`` slices vmap separately
    (same value and gradient; on a CPU XLA may run the slices on different cores)."""
    bounds = np.linspace(0, x.shape[0], sub_batches + 1).round().astype(int)
    log_q = [jnp.sum(jax.vmap(model.log_prob_one)(x[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
    return -sum(log_q) / x.shape[0]


# --- 3. the compiled step --------------------------------------------------------------------

class TrainState(NamedTuple):
    model: object  # the parameters (a pytree)
    opt_state: object
    average: object  # running sum for ema (or () without it)
    last_good: object  # the parameters at which the loss was last finite
    step: jnp.ndarray  # steps taken with a finite loss
    bad_step: jnp.ndarray  # the first step with a non-finite loss, -1 if none


def _all_finite(tree):
    # One norm over all leaves (an inf or NaN anywhere makes it non-finite). A per-leaf isfinite
    # check compiled ~3x slower for chains of many small layers (chapter 4's MLP flow).
    return jnp.isfinite(optax.tree.norm(tree))


def train_step(loss, batches, optimizer, ema=None, shard=None):
    """``step(state, key) -> (state, loss)``: one optimiser step on the batch ``batches(key)``.

    Once a loss (or the updated parameters) is non-finite, the state freezes and records the step;
    ``last_good`` holds the parameters of the last finite loss. ``ema``: also keep
    ``avg <- ema avg + (1 - ema) params``.
    """
    def step(state: TrainState, key):
        batch = batches(key) if shard is None else shard(batches(key))
        value, grads = jax.value_and_grad(loss)(state.model, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.model)
        model = optax.apply_updates(state.model, updates)
        average = state.average if ema is None else jax.tree_util.tree_map(
            lambda a, p: ema * a + (1 - ema) * p, state.average, model)
        running = state.bad_step < 0
        ok = jnp.isfinite(value) & _all_finite(model) & running
        keep = lambda c, new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(c, a, b), new, old)
        last_good = keep(jnp.isfinite(value) & running, state.model, state.last_good)
        bad = jnp.where(ok | ~running, state.bad_step, state.step)
        new = TrainState(keep(ok, model, state.model), keep(ok, opt_state, state.opt_state),
                         keep(ok, average, state.average), last_good, state.step + ok, bad)
        return new, value

    return step


# --- 4. the host loop ------------------------------------------------------------------------

@dataclasses.dataclass
class FitResult:
    """What :func:`train` / :func:`fit` return.

    ``model``: the trained model (the best held-out one after an early stop; the parameter average
    with ``ema``; the last good parameters after a non-finite loss). ``loss`` (steps,): training
    loss per step. ``eval_steps``, ``held_out``: the held-out value after each chunk. ``stopped``:
    ``"done"``, ``"early_stop"`` or ``"non_finite"``; ``stop_step``: where (else ``None``).
    ``seconds`` wall time = ``compile_seconds`` + ``run_seconds`` (steps) + evaluation and overhead;
    ``chunk_seconds``: run time of each compiled chunk.
    """

    model: object
    loss: np.ndarray
    eval_steps: np.ndarray
    held_out: np.ndarray
    stopped: str
    stop_step: int | None
    steps: int
    seconds: float
    compile_seconds: float
    run_seconds: float
    chunk_seconds: np.ndarray

    @property
    def status(self) -> str:
        return {"done": "done", "early_stop": f"early stop at step {self.stop_step}",
                "non_finite": f"non-finite loss at step {self.stop_step}"}[self.stopped]

    @property
    def steps_per_second(self) -> float:
        """Training speed excluding compilation and held-out evaluation."""
        return self.steps / self.run_seconds if self.run_seconds > 0 else float("nan")


@dataclasses.dataclass
class EarlyStopping:
    """Keeps the best model by held-out value; ``update`` says stop after ``patience`` chunks
    without improvement (never, when ``patience`` is ``None``)."""

    patience: int | None
    best_value: float = math.inf
    best_model: object = None
    since_best: int = 0

    def update(self, value: float, model) -> bool:
        if value < self.best_value:
            self.best_value, self.best_model, self.since_best = value, model, 0
            return False
        self.since_best += 1
        return self.patience is not None and self.since_best >= self.patience


def default_optimizer(learning_rate: float, steps: int):
    """adamw (weight decay 1e-4) with the learning rate cosine-decayed from ``learning_rate`` to 0."""
    return optax.adamw(optax.cosine_decay_schedule(learning_rate, steps), weight_decay=1e-4)


def _sharding(devices, batch_size):
    """Data parallelism: the batch split over ``devices`` along its first axis, parameters replicated."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = list(devices)
    if batch_size % len(devices):
        raise ValueError(f"batch_size={batch_size} must be divisible by the number of devices ({len(devices)}).")
    mesh = Mesh(np.asarray(devices), ("batch",))
    batch = NamedSharding(mesh, PartitionSpec("batch"))
    shard = lambda b: jax.tree_util.tree_map(lambda a: jax.lax.with_sharding_constraint(a, batch), b)
    return shard, NamedSharding(mesh, PartitionSpec())


def train(key, model, loss: Callable, batches: Callable, *, steps: int, learning_rate: float | None = None,
          optimizer=None, chunk: int | None = None, evaluate: Callable | None = None, patience: int | None = None,
          ema: float | None = None, devices=None, batch_size: int | None = None, compiler_options=None,
          progress: bool = True, desc: str = "train") -> FitResult:
    """Minimise ``loss(model, batches(key))`` with optax; the loop every nfcore objective shares.

    ``optimizer``: any optax transformation, or ``None`` for :func:`default_optimizer` with
    ``learning_rate`` (default 1e-3; giving both is an error). ``chunk``: steps per compiled call
    (default: ``steps`` in equal chunks of at most 500; each distinct chunk length compiles once).
    ``evaluate(model) -> float``: a held-out value (lower is better) after each chunk; with ``patience`` (chunks without improvement) training stops early and the
    best model is returned. ``ema``: a decay in (0, 1); the returned and evaluated model is the
    debiased average ``avg / (1 - ema^t)`` of the iterates (the initial model gets no weight).
    ``devices``: train data-parallel over these devices (``batch_size`` must be given and divisible
    by their number); the same result as one device up to float round-off.
    ``compiler_options``: XLA options for the training loop (advanced).
    """
    steps = positive_int(steps, "steps")
    # default: equal chunks of at most 500 steps, so that one program is compiled (800 -> 2 x 400)
    chunk = math.ceil(steps / math.ceil(steps / 500)) if chunk is None else positive_int(chunk, "chunk")
    if optimizer is not None and learning_rate is not None:
        raise ValueError("give either learning_rate (for the default adamw) or an optimizer (which has its own "
                         "learning rate), not both.")
    if optimizer is None:
        optimizer = default_optimizer(1e-3 if learning_rate is None else positive_float(learning_rate, "learning_rate"),
                                      steps)
    if patience is not None:
        patience = positive_int(patience, "patience")
        if evaluate is None:
            raise ValueError("patience needs a held-out set to watch: pass held_out= (fit) or evaluate= (train).")
    if ema is not None:
        ema = unit_interval(ema, "ema")
    shard, replicated = (None, None) if devices is None else _sharding(devices, positive_int(batch_size, "batch_size"))

    state = TrainState(model, optimizer.init(model), jax.tree_util.tree_map(jnp.zeros_like, model) if ema else (),
                       model, jnp.array(0), jnp.array(-1))
    if replicated is not None:
        state = jax.device_put(state, replicated)
    run_chunk = jax.jit(lambda s, keys: jax.lax.scan(train_step(loss, batches, optimizer, ema, shard), s, keys))
    current = (lambda s: s.model) if ema is None else (
        lambda s: jax.tree_util.tree_map(lambda a: a / (1 - ema ** int(s.step)), s.average))

    losses, eval_steps, evals, chunk_seconds, compiled = [], [], [], [], {}
    stopper, stopped, stop_step, done = EarlyStopping(patience), "done", None, 0
    t0, compile_seconds = time.perf_counter(), 0.0
    bar = _progress(steps, desc) if progress else None
    try:
        while done < steps:
            n = min(chunk, steps - done)
            keys = jax.random.split(jax.random.fold_in(key, done), n)
            if n not in compiled:  # ahead of time, so compilation is timed apart from the steps
                tc = time.perf_counter()
                compiled[n] = run_chunk.lower(state, keys).compile(compiler_options)
                compile_seconds += time.perf_counter() - tc
            tr = time.perf_counter()
            state, chunk_loss = compiled[n](state, keys)
            chunk_loss = np.asarray(chunk_loss)
            chunk_seconds.append(time.perf_counter() - tr)
            if int(state.bad_step) >= 0:
                # last_good is the model after `done` updates: the bad step's own loss may still be finite
                stopped, stop_step = "non_finite", int(state.bad_step)
                losses.append(chunk_loss[: stop_step - done])
                done = stop_step if np.isfinite(chunk_loss[stop_step - done]) else max(stop_step - 1, 0)
                warnings.warn(f"training stopped: non-finite loss or parameters at step {stop_step}; returning the "
                              "parameters of the last step with a finite loss. Try a smaller learning_rate, or check "
                              "the data scale.", RuntimeWarning, stacklevel=2)
                break
            losses.append(chunk_loss)
            done += n
            post = {"loss": f"{float(chunk_loss[-min(50, n):].mean()):.4f}"}
            if evaluate is not None:
                value = float(evaluate(current(state)))
                eval_steps.append(done)
                evals.append(value)
                post["held-out"] = f"{value:.4f}"
                if stopper.update(value, current(state)):
                    stopped, stop_step = "early_stop", done
                    break
            if bar is not None:
                bar.update(n)
                bar.set_postfix(post, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    final = state.last_good if stopped == "non_finite" else stopper.best_model if stopped == "early_stop" else current(state)
    return FitResult(final, np.concatenate(losses)[:done] if losses else np.zeros(0), np.asarray(eval_steps),
                     np.asarray(evals), stopped, stop_step, done, time.perf_counter() - t0, compile_seconds,
                     float(sum(chunk_seconds)), np.asarray(chunk_seconds))


def _progress(total, desc):
    from tqdm import tqdm  # plain text bar: renders in notebooks, the built book and terminals alike

    return tqdm(total=total, desc=desc, unit="step", leave=False, mininterval=0.5)


# --- maximum likelihood ----------------------------------------------------------------------

def _finite_batch(x, dim, name):
    x = check_batch(jnp.asarray(x) if not hasattr(x, "shape") else x, dim, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a batch of shape (N, {dim}), got shape {tuple(x.shape)}.")
    finite_array(x, name)
    return jnp.asarray(x)


def fit(key, model: Distribution, data, *, steps: int, batch_size: int = 512, learning_rate: float | None = None,
        optimizer=None, held_out=None, patience: int | None = None, chunk: int | None = None,
        sub_batches: int = 1, ema: float | None = None, devices=None, compiler_options=None,
        progress: bool = True) -> FitResult:
    """Fit ``model`` by maximum likelihood: :func:`train` with :func:`nll_loss`.

    ``data``: an (N, D) array (minibatches drawn with replacement) or a sampler
    ``data(key, n) -> (n, D)`` (fresh samples every step, e.g. ``target.sample``). ``held_out``:
    (M, D) whose NLL is evaluated after every chunk (for ``patience`` and the held-out curve).
    ``sub_batches``: see :func:`nll_loss`. Other options: see :func:`train`.
    """
    if not isinstance(model, Distribution):
        raise ValueError(f"model must be an nfcore distribution (e.g. nf.Transformed), got {type(model).__name__}.")
    batch_size = positive_int(batch_size, "batch_size")
    sub_batches = positive_int(sub_batches, "sub_batches")
    if sub_batches > batch_size:
        raise ValueError(f"sub_batches must be an integer from 1 to batch_size={batch_size}, got {sub_batches}.")
    if callable(data):
        batches = lambda k: data(k, batch_size)
    else:
        data = _finite_batch(data, model.dim, "fit data")
        if batch_size > data.shape[0]:
            raise ValueError(f"batch_size={batch_size} is larger than the data ({data.shape[0]} samples); "
                             "use a smaller batch_size or more data.")
        batches = minibatches(data, batch_size)
    evaluate = None
    if held_out is not None:
        held_out = _finite_batch(held_out, model.dim, "held_out")
        evaluate = lambda m: nll(m, held_out)
    return train(key, model, lambda m, x: nll_loss(m, x, sub_batches), batches, steps=steps,
                 learning_rate=learning_rate, optimizer=optimizer, chunk=chunk, evaluate=evaluate, patience=patience,
                 ema=ema, devices=devices, batch_size=batch_size, compiler_options=compiler_options,
                 progress=progress, desc="fit")


# --- metrics ---------------------------------------------------------------------------------

@jax.jit
def _log_prob_chunked(distribution, x):
    # log q(x_i) for every row of x (N, D) in chunks (bounded memory), compiled once per model structure
    return map_in_chunks(distribution.log_prob_one, x)


def nll(model: Distribution, x) -> float:
    """Mean negative log-likelihood ``-1/N sum log q(x_i)`` in nats (``x``: (N, D), finite)."""
    return float(-jnp.mean(_log_prob_chunked(model, _finite_batch(x, model.dim, "nll x"))))


def kl_divergence(model: Distribution, target, x) -> tuple[float, float]:
    """``KL(p || q) = E_p[log p - log q] = NLL(q) - H(p)`` on samples ``x ~ p`` (N, D), with its
    Monte-Carlo standard error ``std(log p - log q) / sqrt(N)`` (nats)."""
    x = _finite_batch(x if getattr(x, "ndim", 2) == 2 else jnp.atleast_2d(x), target.dim, "kl_divergence x")
    diff = (np.asarray(_log_prob_chunked(target, x), np.float64)
            - np.asarray(_log_prob_chunked(model, x), np.float64))
    return float(np.mean(diff)), float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
