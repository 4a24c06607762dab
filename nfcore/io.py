"""Save and load models: one ``.npz`` of arrays + a JSON description of the structure, no pickle.

``save(path, model)`` writes every array leaf bit for bit (``a0``, ``a1``, ... in traversal
order) and ``__structure__``: JSON naming each node's class, its data fields (nodes, tuples,
lists, dicts, ``None``, array references with shape and dtype) and its static metadata (numbers,
strings, tuples, and static objects such as ``AffineTransformer(...)``, stored by their fields).
Key-dependent metadata (glow's permutations, random MADE orders) travels with the description.
``load`` reads with ``allow_pickle=False`` and rebuilds classes only from an allow-list of
nfcore's own dataclasses (by class name): nothing named in the file is imported or executed.
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

_FORMAT = "nfcore-model"
_VERSION = 1


@functools.lru_cache(maxsize=1)
def _classes() -> dict:
    """``{__name__: class}`` for every dataclass defined in nfcore (bijections, distributions, ...)."""
    import nfcore

    for m in pkgutil.iter_modules(nfcore.__path__):  # nfcore's own module list, never the file's
        if m.name != "plot":  # plot holds no model classes (and imports matplotlib)
            __import__(f"nfcore.{m.name}")
    found = {}
    for name, mod in list(sys.modules.items()):
        if name == "nfcore" or name.startswith("nfcore."):
            for c in vars(mod).values():
                if (isinstance(c, type) and dataclasses.is_dataclass(c)
                        and c.__module__.startswith("nfcore")):
                    assert found.setdefault(c.__name__, c) is c, f"two nfcore classes named {c.__name__}"
    return found


def _static(v):
    """JSON for one piece of static metadata."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, (tuple, list)):
        return {type(v).__name__: [_static(u) for u in v]}
    if dataclasses.is_dataclass(v) and not isinstance(v, type) and type(v).__name__ in _classes():
        return {"object": type(v).__name__, "fields": {f.name: _static(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    raise ValueError(f"save: cannot describe static metadata {v!r} of type {type(v).__name__}; "
                     "static fields must be numbers, strings, tuples or nfcore transformer objects.")


def _encode(v, arrays: list):
    """JSON for a data field; appends its array leaves to ``arrays``."""
    if v is None or isinstance(v, (bool, int, float)):
        return v if v is None else {"scalar": v}
    if isinstance(v, (tuple, list)):
        return {type(v).__name__: [_encode(u, arrays) for u in v]}
    if isinstance(v, dict):
        if not all(isinstance(k, str) for k in v):
            raise ValueError("save: dict fields must have string keys.")
        return {"dict": {k: _encode(u, arrays) for k, u in v.items()}}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        if _classes().get(type(v).__name__) is not type(v):
            raise ValueError(f"save: {type(v).__name__} is not an nfcore class; only nfcore models can be saved.")
        split = {True: {}, False: {}}
        for f in dataclasses.fields(v):
            st = bool(f.metadata.get("static", False))
            split[st][f.name] = (_static if st else lambda u: _encode(u, arrays))(getattr(v, f.name))
        return {"node": type(v).__name__, "data": split[False], "static": split[True]}
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        a = np.asarray(v)
        arrays.append(a)
        return {"array": len(arrays) - 1, "shape": list(a.shape), "dtype": a.dtype.str}
    raise ValueError(f"save: cannot describe a leaf of type {type(v).__name__}.")


def save(path, model) -> None:
    """Write ``model`` (any nfcore model, distribution or bijection) to ``path`` (``.npz``)."""
    arrays = []
    tree = _encode(model, arrays)
    desc = json.dumps({"format": _FORMAT, "version": _VERSION, "tree": tree})
    np.savez(path, __structure__=np.array(desc), **{f"a{i}": a for i, a in enumerate(arrays)})


def _build(cls, values: dict, path: str):
    names = [f.name for f in dataclasses.fields(cls)]
    if sorted(names) != sorted(values):
        raise ValueError(f"load: {path} ({cls.__name__}) has fields {sorted(values)}, expected {sorted(names)}.")
    obj = object.__new__(cls)  # never __init__ (e.g. Chain(bijections)): set the saved fields
    for k in names:
        object.__setattr__(obj, k, values[k])
    if hasattr(obj, "__post_init__"):  # the class's own checks of its (static) fields
        try:
            obj.__post_init__()
        except (TypeError, ValueError) as e:
            raise ValueError(f"load: {path} ({cls.__name__}) is invalid: {e}") from None
    return obj


def _decode(j, arrays, classes, path, static=False):
    if j is None or isinstance(j, (bool, int, float, str)):
        return j
    if not isinstance(j, dict) or len(j) not in (1, 2, 3):
        raise ValueError(f"load: malformed description at {path}.")
    def sub(v, p, st=static):
        return _decode(v, arrays, classes, p, st)
    if "tuple" in j or "list" in j:
        items = [sub(u, f"{path}[{i}]") for i, u in enumerate(j.get("tuple", j.get("list")))]
        return tuple(items) if "tuple" in j else items
    if "scalar" in j:
        return j["scalar"]
    if "dict" in j:
        return {k: sub(u, f"{path}[{k!r}]") for k, u in j["dict"].items()}
    name = j.get("node", j.get("object"))
    if name is not None:
        if name not in classes:
            raise ValueError(f"load: unknown class {name!r} at {path}; only nfcore classes can be loaded.")
        if "object" in j:
            return _build(classes[name], {k: sub(u, f"{path}.{k}", True) for k, u in j["fields"].items()}, path)
        vals = {k: sub(u, f"{path}.{k}", False) for k, u in j["data"].items()}
        vals.update({k: sub(u, f"{path}.{k}", True) for k, u in j["static"].items()})
        return _build(classes[name], vals, path)
    if "array" in j and not static:
        a = arrays.get(f"a{j['array']}")
        if a is None:
            raise ValueError(f"load: array a{j['array']} for {path} is missing from the file.")
        if list(a.shape) != j["shape"] or a.dtype.str != j["dtype"]:
            raise ValueError(f"load: {path} should be {j['dtype']} {tuple(j['shape'])}, "
                             f"the file holds {a.dtype.str} {a.shape}.")
        return jnp.asarray(a)
    raise ValueError(f"load: malformed description at {path}: keys {sorted(j)}.")


def _diff(a, b, path="model"):
    """The first place where two descriptions differ (array indices aside), or ``None``."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for k in a:
            if k != "array":
                step = "" if k in ("data", "static", "fields", "tuple", "list", "dict") else f".{k}"
                d = _diff(a[k], b[k], path if k in ("node", "object", "shape", "dtype") else path + step)
                if d:
                    return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and not any(
            isinstance(u, (int, float, str)) for u in a + b):
        return next((d for i, (u, v) in enumerate(zip(a, b)) if (d := _diff(u, v, f"{path}[{i}]"))), None)
    def short(v):
        t = json.dumps(v)
        return t if len(t) < 80 else t[:77] + "..."
    return None if a == b and type(a) is type(b) else f"{path}: file has {short(a)}, like has {short(b)}"


def load(path, like=None):
    """The model saved at ``path``; with ``like``, ``ValueError`` unless it has the same structure,
    static metadata (e.g. permutations), shapes and dtypes as ``like``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        desc = json.loads(str(arrays.pop("__structure__")))
    except Exception as e:  # truncated zip, bad CRC, missing entry, bad JSON, pickled objects, ...
        raise ValueError(f"load: {path} is not a readable nfcore save file ({type(e).__name__}: {e}).") from None
    if not isinstance(desc, dict) or desc.get("format") != _FORMAT or desc.get("version") != _VERSION:
        raise ValueError(f"load: {path} is not an nfcore save file of version {_VERSION}.")
    if like is not None and (d := _diff(desc["tree"], _encode(like, []))):
        raise ValueError(f"load: the saved model does not match `like` at {d}.")
    try:
        return _decode(desc["tree"], arrays, _classes(), "model")
    except (TypeError, KeyError, AttributeError, IndexError) as e:
        raise ValueError(f"load: {path} has a malformed structure description ({e!r}).") from None
