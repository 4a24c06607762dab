# nfcourse: `make book` builds the executed website, `make test` runs every check.
# Both create .venv from the pinned lock on first use (Python 3.11).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test unit notebooks pairing book-check bench sync clean install

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

## The executed website in _build/html (clean build, warnings are errors).
book: $(STAMP)
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going

## Every check: unit tests, notebook pairing, nbval on each chapter, the -W book build.
test: $(STAMP)
	$(BIN)/python -m pytest tests -q
	$(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --ignore=_build -p no:cacheprovider chapters/
	$(MAKE) book

## Rewrite every chapter's install line from _config.yml (repository url + branch), then
## regenerate every chapters/NN_name.ipynb from its MyST source (outputs stripped).
sync: $(STAMP)
	$(BIN)/python tools/sync_bootstrap.py
	for f in chapters/[0-9][0-9]_*.md; do $(BIN)/jupytext --to ipynb --update -q -o "$${f%.md}.ipynb" "$$f" >/dev/null; done

## Benchmarks (not tests): writes bench/RESULTS.md
bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf _build .pytest_cache
