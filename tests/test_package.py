"""The shape of the nfcore package itself: its size and which module may import which."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "nfcore"

# Modules that build on the layers: factories, training loops and the objectives that use them.
BUILDERS = {"flows", "training", "variational", "conditional", "continuous", "io", "plot", "testing"}
# Layer, distribution and network modules: the building blocks. They never import a builder.
BLOCKS = {"bijection", "validate", "chain", "elementwise", "linear", "lowrank", "actnorm", "coupling", "made",
          "autoregressive", "spline", "transformers", "nn", "distributions", "targets", "energies", "planar",
          "multiscale", "dequantization", "ode", "calibration"}


def _relative_imports(path):
    """The nfcore modules that ``path`` imports (``from .x import``, ``from nfcore.x import``), anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.module and node.module.startswith("nfcore."):
                found.add(node.module.split(".")[1])
    return found


def test_every_module_is_classified():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == BUILDERS | BLOCKS, f"classify these in tests/test_package.py: {sorted(modules ^ (BUILDERS | BLOCKS))}"


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_building_blocks_never_import_what_builds_on_them(name):
    bad = _relative_imports(PACKAGE / f"{name}.py") & BUILDERS
    assert not bad, f"nfcore/{name}.py imports {sorted(bad)}, which build on the layers"


def _code_lines(path):
    """Lines that are neither blank, comments, nor docstrings."""
    src = path.read_text()
    docs = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docs.update(range(first.lineno, first.end_lineno + 1))
    return sum(1 for i, line in enumerate(src.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in docs)


def test_nfcore_stays_small():
    """At most 2,500 lines of code (docstrings, comments and blank lines not counted)."""
    counts = {p.name: _code_lines(p) for p in PACKAGE.glob("*.py")}
    total = sum(counts.values())
    biggest = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    assert 1000 < total <= 2500, f"nfcore has {total} lines of code (largest: {biggest})"
