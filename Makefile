# Two entry points for a fresh machine:
#   make book   builds the HTML course in _build/html, executing every notebook afresh
#   make test   lint, pytest for actlib, nbval for every notebook, book build + browser check
# Each creates .venv/ at the repository root and installs requirements.txt into it first.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NOTEBOOKS := $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)

.PHONY: venv test lint unit nbval book book-from-outputs browser-check bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

venv: $(STAMP)

test: lint unit nbval book-from-outputs browser-check

lint: $(STAMP)
	$(PY) -m ruff check .

unit: $(STAMP)
	$(PY) -m pytest -q tests

nbval: $(STAMP)
	$(PY) -m pytest -q --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:randomly $(NOTEBOOKS)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
