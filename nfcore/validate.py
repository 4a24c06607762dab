"""One home for argument checks: every bad argument raises ``ValueError`` naming it and the fix.

Used by every public factory, layer constructor, distribution and ``fit``. The checks run on
Python values and concrete arrays (never inside ``jit``), so the messages come before any tracing.
"""
from __future__ import annotations

import math
import numbers

import jax
import numpy as np

__all__ = ["positive_int", "positive_float", "finite_float", "unit_interval", "int_tuple", "finite_array",
           "check_sample", "check_batch", "check_context"]


def _is_int(v) -> bool:
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def positive_int(v, name: str, minimum: int = 1) -> int:
    """``int(v)`` if ``v`` is an integer ``>= minimum``: rejects ``2.5``, ``True``, ``"3"``, ``None``."""
    if not _is_int(v) or int(v) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (e.g. {name}={max(minimum, 2)}), got {v!r}.")
    return int(v)


def finite_float(v, name: str) -> float:
    """``float(v)`` if ``v`` is a finite real number (not a bool, string or array)."""
    ok = isinstance(v, (numbers.Real, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_))
    if not ok or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v!r}.")
    return float(v)


def positive_float(v, name: str) -> float:
    """``float(v)`` if ``v`` is a finite number ``> 0``."""
    f = finite_float(v, name)
    if not f > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}.")
    return f


def unit_interval(v, name: str) -> float:
    """``float(v)`` if ``0 < v < 1`` (e.g. a decay)."""
    f = finite_float(v, name)
    if not 0.0 < f < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1 (e.g. 0.995), got {v!r}.")
    return f


def int_tuple(v, name: str) -> tuple:
    """A tuple of positive integers, e.g. hidden sizes ``(64, 64)`` (a bare ``64`` is rejected)."""
    if not isinstance(v, (tuple, list)) or not all(_is_int(h) and h >= 1 for h in v):
        raise ValueError(f"{name} must be a tuple of positive integers such as (64, 64), got {v!r}.")
    return tuple(int(h) for h in v)


def finite_array(a, name: str, shape: tuple | None = None, dtype=None):
    """``a`` as an array of the given ``shape`` with only finite values (concrete arrays only)."""
    try:
        arr = np.asarray(a) if dtype is None else np.asarray(a, dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers, got {type(a).__name__}.") from None
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}.")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf).")
    return a


def check_sample(x, dim: int | None, who: str) -> None:
    """Raise ``ValueError`` unless ``x`` is one sample of shape ``(dim,)``."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 1 or (dim is not None and shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(D,)"
        raise ValueError(f"{who} acts on one sample of shape {want}, got shape {shape}; "
                         "batch with jax.vmap (or use a distribution's log_prob, which accepts (N, D)).")


def check_batch(x, dim: int, who: str = "log_prob"):
    """``x`` as an array of shape ``(D,)`` or ``(N, D)`` with no NaN (checked on concrete arrays)."""
    if not hasattr(x, "shape"):
        try:
            x = jax.numpy.asarray(x)
        except TypeError:
            raise ValueError(f"{who} expects an array of shape (N, {dim}), got {type(x).__name__}.") from None
    if x.ndim not in (1, 2) or x.shape[-1] != dim:
        raise ValueError(f"{who} expects one sample of shape ({dim},) or a batch of shape (N, {dim}), "
                         f"got shape {tuple(x.shape)}.")
    if not isinstance(x, jax.core.Tracer):
        nan = np.isnan(np.asarray(x))
        if nan.any():
            n_bad = int(nan.any(axis=-1).sum()) if x.ndim == 2 else 1
            raise ValueError(f"{who} got NaN values in {n_bad} sample(s); remove or impute them first.")
    return x


def check_context(context, context_dim: int, who: str) -> None:
    """Raise ``ValueError`` unless ``context`` fits a layer with ``context_dim`` context inputs:
    ``None`` when ``context_dim == 0`` (unconditional), else one context of shape ``(context_dim,)``."""
    if context_dim == 0:
        if context is not None:
            raise ValueError(f"{who} is unconditional (context_dim=0) but got a context; build it with "
                             "context_dim=C to condition on a context of shape (C,), or pass no context.")
        return
    shape = getattr(context, "shape", None)
    if shape != (context_dim,):
        raise ValueError(f"{who} needs one context of shape ({context_dim},) with each sample, got "
                         f"{'no context' if context is None else f'shape {shape}'}; batch pairs with jax.vmap.")
