"""The book's wiring: every chapter is a jupytext pair in sync, with code cells, a Colab
bootstrap derived from _config.yml, listed in _toc.yml, committed without outputs."""
import json
import pathlib
import re

import jupytext
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.md"))


def _config():
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def install_line():
    repo = _config()["repository"]
    return f'%pip install -q "nfcore @ git+{repo["url"]}@{repo["branch"]}"'


def test_make_sync_writes_the_line_this_test_expects(tmp_path):
    """`make sync` (tools/sync_bootstrap.py) derives the install line the same way."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_bootstrap", ROOT / "tools" / "sync_bootstrap.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    assert sync.install_line() == install_line()
    cfg = tmp_path / "_config.yml"
    cfg.write_text("repository:\n  url: https://example.org/a/b\n  branch: dev\n")
    assert sync.install_line(cfg) == '%pip install -q "nfcore @ git+https://example.org/a/b@dev"'
    old = '    %pip install -q "nfcore @ git+https://github.com/x/y@main"\n'
    assert sync.PATTERN.sub("NEW", old) == "    NEW\n"


def test_there_are_chapters():
    assert len(CHAPTERS) >= 3


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_paired_notebook_in_sync_and_clean(md):
    nb_path = md.with_suffix(".ipynb")
    assert nb_path.exists(), f"{nb_path.name} missing: run `make sync`"
    from_md = jupytext.read(md)
    committed = json.loads(nb_path.read_text())
    src = lambda c: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    a = [(c["cell_type"], src(c)) for c in from_md["cells"]]
    b = [(c["cell_type"], src(c)) for c in committed["cells"]]
    assert a == b, f"{nb_path.name} is out of sync with {md.name}: run `make sync`"
    code = [c for c in committed["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 3, f"{nb_path.name} has {len(code)} code cells: is the jupytext header missing?"
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{nb_path.name} has outputs: strip them"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_first_cell_is_colab_bootstrap(md):
    nb = jupytext.read(md)
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "remove-cell" in first["metadata"].get("tags", [])
    assert install_line() in first["source"], f"bootstrap must contain {install_line()!r} (from _config.yml)"
    assert "import nfcore" in first["source"]


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_in_toc_with_exercises_and_glue(md):
    toc = (ROOT / "_toc.yml").read_text()
    assert f"chapters/{md.stem}" in toc
    text = md.read_text()
    assert len(re.findall(r"\{solution-start\}", text)) >= 2, "each chapter ends with 2-3 exercises with solutions"
    assert "{glue:text}" in text or "{glue}" in text, "numbers in prose come from glue"


def private_names(source: str) -> list[str]:
    """Private names a code cell uses: ``obj._name`` attribute access (dunders such as
    ``__name__`` are fine) and ``_name`` imported from nfcore (or any ``nfcore._module``)."""
    import ast

    # IPython magics and shell escapes (``%pip``, ``!ls``) are not Python: make them ``pass``.
    lines = [ln[: len(ln) - len(ln.lstrip())] + "pass" if ln.lstrip().startswith(("%", "!")) else ln
             for ln in source.splitlines()]
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                found.append("." + name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nfcore":
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"from {node.module} import ...")
            found += [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names
                      if a.name.split(".")[0] == "nfcore" and "._" in a.name]
    return found


def test_private_name_check_catches_what_it_should():
    assert private_names("y = layer._split()\nz = nf.fit") == ["._split"]
    assert private_names("from nfcore.train import _log_prob_chunked, fit") == ["_log_prob_chunked"]
    assert private_names("import nfcore._hidden as h") == ["nfcore._hidden"]
    assert private_names("from nfcore._x import y") == ["from nfcore._x import ..."]
    assert private_names("%pip install -q x\nprint(type(b).__name__, m.log_prob(x))") == []


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_code_uses_public_names_only(md):
    nb = jupytext.read(md)
    bad = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code" and (names := private_names(cell["source"])):
            bad[f"code cell {i}"] = names
    assert not bad, f"{md.name} uses private names (use the public API instead): {bad}"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_code_lines_fit_the_rendered_column(md):
    """Shown code cells (all but `remove-cell`) keep lines <= 80 characters, so the built page
    does not scroll sideways; headings carry no hand-typed numbers (the book numbers them)."""
    nb = jupytext.read(md)
    long = [f"cell {i}: {len(line)} chars: {line[:40]}..."
            for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
            and "remove-cell" not in cell["metadata"].get("tags", [])
            for line in cell["source"].splitlines() if len(line) > 80]
    assert not long, f"{md.name}: code lines over 80 characters: {long}"
    numbered = [line for line in md.read_text().splitlines() if re.match(r"#{1,6} +\d+[.)] ", line)]
    assert not numbered, f"{md.name}: headings with hand-typed numbers: {numbered}"
