"""Save and load models: one ``.npz`` of arrays plus a JSON description of the structure, no pickle.

``save`` writes every array leaf bit for bit (``a0``, ``a1``, ...) and ``__structure__``, a JSON tree
of ``{"node": class name, "data": {field: ...}, "static": {field: ...}}``: data fields are nodes,
tuples, lists, dicts, ``None`` or array references (index, shape, dtype); static fields (numbers,
strings, tuples, transformers such as ``AffineTransformer(...)``) travel in full, key-dependent ones
too (glow's permutations, random MADE orders). ``load`` reads with ``allow_pickle=False`` and builds
only nfcore's own classes, found by name in an allow-list: nothing named in the file is imported, no
``__init__`` runs (fields are set directly, then the class's ``__post_init__`` checks them).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import pkgutil
import sys

import jax.numpy as jnp
import numpy as np

__all__ = ["save", "load"]

_FORMAT = {"format": "nfcore-model", "version": 1}


@functools.lru_cache(maxsize=1)
def _classes() -> dict:
    """``{__name__: class}`` for nfcore's frozen dataclasses: bijections, distributions, pytrees, transformers."""
    import nfcore

    for m in pkgutil.iter_modules(nfcore.__path__):  # nfcore's own module list, never the file's
        if m.name != "plot":  # no model classes there (and it imports matplotlib)
            __import__(f"nfcore.{m.name}")
    found = {}
    for name, module in list(sys.modules.items()):
        if name == "nfcore" or name.startswith("nfcore."):
            for c in vars(module).values():
                if (isinstance(c, type) and dataclasses.is_dataclass(c) and c.__dataclass_params__.frozen
                        and c.__module__.split(".")[0] == "nfcore"):
                    assert found.setdefault(c.__name__, c) is c, f"two nfcore classes named {c.__name__}"
    return found


def _node(v, encode_data) -> dict:
    """``{"node": name, "data": ..., "static": ...}``; every field is static when ``encode_data`` is None."""
    if _classes().get(type(v).__name__) is not type(v):
        raise ValueError(f"save: {type(v).__name__} is not an nfcore class; only nfcore models can be saved.")
    out = {"node": type(v).__name__, "data": {}, "static": {}}
    for f in dataclasses.fields(v):
        static = encode_data is None or f.metadata.get("static", False)
        out["static" if static else "data"][f.name] = (_static if static else encode_data)(getattr(v, f.name))
    return out


def _static(v):
    """JSON for one piece of static metadata (hashable: numbers, strings, tuples, frozen objects)."""
    v = v.item() if isinstance(v, np.generic) else v  # e.g. a numpy integer in a permutation
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, tuple):
        return {"tuple": [_static(u) for u in v]}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _node(v, None)
    raise ValueError(f"save: cannot describe the static field value {v!r} ({type(v).__name__}); static "
                     "metadata must be numbers, strings, tuples or nfcore objects such as transformers.")


def _encode(v, arrays: list):
    """JSON for a data field; appends its array leaves to ``arrays``."""
    if v is None or isinstance(v, (bool, int, float)):
        return v if v is None else {"scalar": v}
    if isinstance(v, (tuple, list)):
        return {type(v).__name__: [_encode(u, arrays) for u in v]}
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {"dict": {k: _encode(u, arrays) for k, u in v.items()}}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _node(v, lambda u: _encode(u, arrays))
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        arrays.append(np.asarray(v))
        return {"array": len(arrays) - 1, "shape": list(arrays[-1].shape), "dtype": arrays[-1].dtype.str}
    raise ValueError(f"save: cannot describe a leaf of type {type(v).__name__}.")


def save(path, model) -> None:
    """Write ``model`` (any nfcore flow, distribution, target or bijection) to ``path`` (``.npz``)."""
    arrays = []
    desc = json.dumps({**_FORMAT, "tree": _encode(model, arrays)})
    with open(path, "wb") as f:  # exactly `path`: np.savez(name) would append ".npz"
        np.savez(f, __structure__=np.array(desc), **{f"a{i}": a for i, a in enumerate(arrays)})


def _decode(j, arrays: dict, path: str, static: bool):
    """The value described by ``j`` (arrays from ``arrays``); ``ValueError`` naming ``path`` if inconsistent."""
    if j is None or isinstance(j, (bool, int, float, str)):
        return j
    (kind, value), = list(j.items())[:1] if isinstance(j, dict) and j else [(None, None)]
    if kind in ("tuple", "list"):
        items = [_decode(u, arrays, f"{path}[{i}]", static) for i, u in enumerate(value)]
        return tuple(items) if kind == "tuple" else items
    if kind in ("scalar", "dict") and not static:
        return value if kind == "scalar" else {k: _decode(u, arrays, f"{path}[{k!r}]", False) for k, u in value.items()}
    if kind == "array" and not static:
        if (a := arrays.get(f"a{value}")) is None:
            raise ValueError(f"load: the array a{value} for {path} is missing from the file.")
        if list(a.shape) != j["shape"] or a.dtype.str != j["dtype"]:
            raise ValueError(f"load: {path} should be {j['dtype']} {tuple(j['shape'])}, the file holds "
                             f"{a.dtype.str} {a.shape}.")
        return jnp.asarray(a)
    if kind == "node":
        if (cls := _classes().get(value)) is None:
            raise ValueError(f"load: unknown class {value!r} at {path}; only nfcore classes can be loaded.")
        fields = {**{k: _decode(u, arrays, f"{path}.{k}", static) for k, u in j["data"].items()},
                  **{k: _decode(u, arrays, f"{path}.{k}", True) for k, u in j["static"].items()}}
        names = [f.name for f in dataclasses.fields(cls)]
        want = sorted(f.name for f in dataclasses.fields(cls) if static or f.metadata.get("static", False))
        if sorted(names) != sorted(fields) or sorted(j["static"]) != want:
            raise ValueError(f"load: {path} ({value}) has fields {sorted(j['data'])} + static {sorted(j['static'])}, "
                             f"expected {sorted(set(names) - set(want))} + static {want}.")
        obj = object.__new__(cls)  # no __init__ (e.g. Chain(bijections)): set the saved fields
        for k in names:
            object.__setattr__(obj, k, fields[k])
        try:
            getattr(obj, "__post_init__", lambda: None)()  # the class's own checks of its fields
        except (TypeError, ValueError) as e:
            raise ValueError(f"load: {path} ({value}) is invalid: {e}") from None
        return obj
    raise ValueError(f"load: malformed structure description at {path}.")


def _diff(a, b, path="model", named=False):
    """Where two descriptions first differ (array indices aside): ``"path: file has .., like has .."``."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for k in a:
            sub = f"{path}.{k}" if named else path + {"node": " class", "shape": " shape", "dtype": " dtype"}.get(k, "")
            if k != "array" and (d := _diff(a[k], b[k], sub, not named and k in ("data", "static", "dict"))):
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and any(isinstance(u, dict) for u in a):
        return next((d for i, (u, v) in enumerate(zip(a, b)) if (d := _diff(u, v, f"{path}[{i}]"))), None)
    a, b = json.dumps(a), json.dumps(b)
    return None if a == b else f"{path}: file has {a[:60]}, like has {b[:60]}"


def load(path, like=None):
    """The model saved at ``path`` by :func:`save`. With ``like`` (a model), ``ValueError`` naming
    the first difference unless the file has the same classes, static metadata (e.g. glow's
    permutations), shapes and dtypes. Unreadable or inconsistent files raise ``ValueError``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        desc = json.loads(str(arrays.pop("__structure__")))
        if {k: desc.get(k) for k in _FORMAT} != _FORMAT:
            raise ValueError(f"no {_FORMAT} header")
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated zip, bad CRC, no structure entry, bad JSON, pickled objects...
        raise ValueError(f"load: {path} is not a readable nfcore save file ({type(e).__name__}: {e}).") from None
    try:
        if like is not None and (d := _diff(desc["tree"], _encode(like, []))):
            raise ValueError(f"load: the saved model does not match `like` at {d}.")
        return _decode(desc["tree"], arrays, "model", False)
    except (TypeError, KeyError, AttributeError, IndexError, RecursionError) as e:
        raise ValueError(f"load: {path} has a malformed structure description ({e!r}).") from None
