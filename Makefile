# nfcourse: `make book` builds the executed website, `make test` runs every check.
# Both create .venv from the pinned lock on first use (Python 3.11).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test unit notebooks pairing book-check bench sync clean install test-oldest

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

## Unit tests under the declared lower bounds: a fresh .venv-oldest with exactly
## requirements-oldest.txt, nfcore installed with --no-deps (tests/test_chapters.py needs the book's tools).
OLDEST := .venv-oldest
test-oldest:
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q -r requirements-oldest.txt
	$(OLDEST)/bin/python -m pip install -q --no-deps .
	$(OLDEST)/bin/python -m pip list --format=freeze | grep -iE '^(jax|jaxlib|optax|numpy|matplotlib|tqdm)=='
	# jax < 0.5 draws other random numbers from the same keys unless threefry_partitionable is on
	# (the default since 0.5); the tests' tolerances are set on today's draws.
	JAX_THREEFRY_PARTITIONABLE=1 $(OLDEST)/bin/pytest tests -q -p no:cacheprovider --ignore=tests/test_chapters.py

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
