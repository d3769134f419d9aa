# Fresh machine:  make knowledge   (install + build a knowledge file offline)
#                 make test        (install + lint + tests)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU machines: these CUDA builds run on the CPU; pip takes them from local disk where cached.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install wordnet foldoc system-deps knowledge test lint bench efficacy docs-screenshot clean

# pip runs without -q: on 2 cores the install takes about 18 minutes (llama-cpp-python
# compiles for about 4), and its progress lines show that it is working.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH_PINS)
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Debian packages, installed when missing and we are root with apt-get: WordNet 3.0 (the
# offline noun vocabulary: label grouping, names and fallback glosses of `kec knowledge
# build`) and Chromium (report screenshot tests). Tests skip without them.
wordnet:
	@if [ ! -f /usr/share/wordnet/data.noun ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      wordnet-base wordnet-sense-index; \
	  else echo "note: install Debian's wordnet-base wordnet-sense-index (WordNet 3.0)"; fi; \
	fi

# FOLDOC (Debian dict-foldoc): the text of the `kec bench foldoc` efficacy benchmark.
foldoc:
	@if [ ! -f /usr/share/dictd/foldoc.index ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dict-foldoc; \
	  else echo "note: install Debian's dict-foldoc (the FOLDOC efficacy benchmark)"; fi; \
	fi

system-deps: wordnet foldoc
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: install Debian's chromium for the report screenshot test"; fi; \
	fi

knowledge: install wordnet
	$(VENV)/bin/kec knowledge build --labels examples/cifar10.labels.txt --out cifar10.knowledge.json --allow-failures
	$(VENV)/bin/kec knowledge show cifar10.knowledge.json

lint: install
	$(VENV)/bin/ruff check .

test: install system-deps lint
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/bench_knowledge.py
	$(PY) benchmarks/bench_cluster.py
	$(PY) benchmarks/bench_ot.py
	$(PY) benchmarks/bench_kmeans.py
	$(PY) benchmarks/bench_startup.py

# The efficacy benchmark at full size (WordNet glosses, MiniLM, offline): README's table.
efficacy: install system-deps
	$(VENV)/bin/kec bench wordnet-glosses --out bench-efficacy/wordnet-glosses
	$(VENV)/bin/kec bench foldoc --out bench-efficacy/foldoc

docs-screenshot: install
	KEC_UPDATE_SCREENSHOT=1 $(PY) -m pytest tests/report/test_screenshot.py -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
