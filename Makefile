# Fresh machine:  make knowledge   (install + build a knowledge file offline)
#                 make test        (install + lint + tests)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU machines: these CUDA builds run on the CPU; pip takes them from local disk where cached.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install system-deps knowledge test lint bench efficacy docs-screenshot clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Debian packages: WordNet 3.0 (offline noun vocabulary) and Chromium (report screenshot
# tests). Installed when missing and we are root with apt-get; tests skip without them.
system-deps:
	@if [ ! -f /usr/share/wordnet/data.noun ] || ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      wordnet-base wordnet-sense-index chromium; \
	  else echo "note: install Debian's wordnet-base wordnet-sense-index chromium for all tests"; fi; \
	fi

knowledge: install
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
	$(VENV)/bin/kec bench wordnet-glosses --out bench-efficacy

docs-screenshot: install
	KEC_UPDATE_SCREENSHOT=1 $(PY) -m pytest tests/report/test_screenshot.py -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
