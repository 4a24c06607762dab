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
