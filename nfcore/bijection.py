"""The bijection protocol shared by every layer in nfcore.

A bijection is a small JAX pytree that acts on **one unbatched sample** of shape ``(D,)``:

* ``forward_and_log_det(z) -> (x, log|det J_f(z)|)``  — base space to data space;
* ``inverse_and_log_det(x) -> (z, log|det J_{f^-1}(x)|)`` — data space to base space,
  whose log-det is minus the forward one at ``z = f^-1(x)``.

Callers batch with :func:`jax.vmap`. Subclassing :class:`Bijection` is all a layer needs: the
class becomes a frozen dataclass registered as a pytree (array fields are the trainable,
unconstrained parameters; fields made with :func:`static` are metadata), and both methods are
wrapped once with the one-sample shape check, which names the concrete class.
"""
from __future__ import annotations

import dataclasses
import functools

import jax

from .validate import check_sample

__all__ = ["Bijection", "pytree", "static"]


def static(**kwargs):
    """A dataclass field that is static metadata (not a pytree leaf, never trained)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def pytree(cls):
    """Class decorator: ``cls`` as a frozen dataclass registered as a JAX pytree.

    For pytrees that are not bijections (distributions, targets, networks). Fields made with
    :func:`static` are metadata; all other fields are children (leaves when they are arrays).
    """
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = [f.name for f in fields if f.init and not f.metadata.get("static")]
    meta = [f.name for f in fields if f.init and f.metadata.get("static")]
    # Not `register_dataclass`: its treedefs compare equal across classes with the same field
    # layout (jax 0.10: Tanh's == Logit's), so on a hash collision a jit cache could run one
    # class's compiled program for the other. A custom node's treedef includes the class.
    keys = tuple(jax.tree_util.GetAttrKey(name) for name in data)

    def flatten(obj):
        return tuple(getattr(obj, n) for n in data), tuple(getattr(obj, n) for n in meta)

    def flatten_with_keys(obj):
        children, aux = flatten(obj)
        return tuple(zip(keys, children)), aux

    def unflatten(aux, children):
        return cls(**dict(zip(data, children)), **dict(zip(meta, aux)))

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


def _checked(method):
    """Wrap ``method(self, x, ...)`` with the one-sample shape check (once)."""
    if getattr(method, "_checks_shape", False):
        return method

    @functools.wraps(method)
    def checked(self, x, *args, **kwargs):
        check_sample(x, self.dim, type(self).__name__)
        return method(self, x, *args, **kwargs)

    checked._checks_shape = True
    return checked


class Bijection:
    """Base class of every layer: subclasses define fields and the two ``*_and_log_det`` methods.

    ``dim`` is the sample length the layer accepts (``None``: any; layers with parameters of
    shape ``(D,)`` override it so that a wrong length is caught with both shapes named).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("forward_and_log_det", "inverse_and_log_det"):
            if name in cls.__dict__:
                setattr(cls, name, _checked(cls.__dict__[name]))
        pytree(cls)

    @property
    def dim(self) -> int | None:
        return None

    @property
    def context_dim(self) -> int:
        """Length of the context ``c`` a conditional layer takes as ``*_and_log_det(x, c)``; 0 = none."""
        return 0

    def forward_and_log_det(self, z):  # pragma: no cover - abstract
        """Map one base-space sample ``(D,)`` to data space; return ``(x, log|det J_f(z)|)``."""
        raise NotImplementedError

    def inverse_and_log_det(self, x):  # pragma: no cover - abstract
        """Map one data-space sample ``(D,)`` back; return ``(z, log|det J_{f^-1}(x)|)``."""
        raise NotImplementedError

    def forward(self, z, *args, **kwargs):
        """``f(z)`` for one sample ``(D,)``."""
        return self.forward_and_log_det(z, *args, **kwargs)[0]

    def inverse(self, x, *args, **kwargs):
        """``f^-1(x)`` for one sample ``(D,)``."""
        return self.inverse_and_log_det(x, *args, **kwargs)[0]
