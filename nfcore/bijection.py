"""The bijection protocol shared by every layer in nfcore.

A bijection is a small JAX pytree that acts on **one unbatched sample** of shape ``(D,)``:

* ``forward_and_log_det(z) -> (x, log|det J_f(z)|)``  — base space to data space;
* ``inverse_and_log_det(x) -> (z, log|det J_{f^-1}(x)|)`` — data space to base space,
  whose log-det is minus the forward one at ``z = f^-1(x)``.

Callers batch with :func:`jax.vmap`. Every array leaf is a trainable (unconstrained)
parameter; everything else is static metadata declared with :func:`static`.
"""
from __future__ import annotations

import dataclasses

import jax

__all__ = ["Bijection", "bijection", "static", "check_sample", "positive_int"]


def static(**kwargs):
    """A dataclass field that is static metadata (not a pytree leaf, never trained)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def bijection(cls):
    """Class decorator: a frozen dataclass registered as a JAX pytree.

    Fields made with :func:`static` are metadata; all other fields are pytree children.
    """
    cls = dataclasses.dataclass(frozen=True)(cls)
    return jax.tree_util.register_dataclass(cls)


def check_sample(x, dim: int | None, who: str) -> None:
    """Raise ``ValueError`` unless ``x`` is one sample of shape ``(dim,)``."""
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 1 or (dim is not None and shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(D,)"
        raise ValueError(
            f"{who} acts on one sample of shape {want}, got shape {shape}; "
            "batch with jax.vmap (or use a distribution's log_prob, which accepts (N, D))."
        )


def positive_int(v, name: str) -> int:
    """``int(v)``, or ``ValueError`` naming ``name`` unless ``v`` is a positive integer (not a bool)."""
    try:
        ok = not isinstance(v, bool) and int(v) == v and int(v) >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive integer, got {v!r}.")
    return int(v)


class Bijection:
    """Base class: subclasses implement the two ``*_and_log_det`` methods."""

    def forward_and_log_det(self, x):  # pragma: no cover - abstract
        """Map one base-space sample ``(D,)`` to data space; return ``(y, log|det J_f(x)|)``."""
        raise NotImplementedError

    def inverse_and_log_det(self, y):  # pragma: no cover - abstract
        """Map one data-space sample ``(D,)`` back; return ``(x, log|det J_{f^-1}(y)|)``."""
        raise NotImplementedError

    def forward(self, x):
        """``f(x)`` for one sample ``(D,)``."""
        return self.forward_and_log_det(x)[0]

    def inverse(self, y):
        """``f^-1(y)`` for one sample ``(D,)``."""
        return self.inverse_and_log_det(y)[0]
