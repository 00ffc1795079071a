# hybrid-retrieval: `make demo` and `make test` do all set-up on a fresh machine by themselves.
# The virtual environment is created once; a second call reuses it (the stamp records a complete install).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.hybrid-retrieval-installed
KERNEL := hybrid-retrieval
SMOKE_RUN := runs/test-smoke

.PHONY: demo test test-fast lab bench clean env browser assignments

demo: $(STAMP)
	$(PY) -m hybridlib run-notebooks

# The full suite CI runs: lint, every test (unit, slow, notebooks in SMOKE mode, browser) in one process per
# core, then nbval re-executes the smoke copies (warm cache this time) and compares the cells tagged
# nbval-check-output: the notebooks' numbers must not depend on whether features were computed or cached.
TEST_WORKERS ?= 2
test: $(STAMP) browser
	$(PY) -m ruff check hybridlib tests benchmarks notebooks
	rm -rf $(SMOKE_RUN)
	HYBRIDLIB_TEST_DATA=$$(mktemp -d) && trap 'rm -rf "$$HYBRIDLIB_TEST_DATA"' EXIT && export HYBRIDLIB_TEST_DATA && \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -p no:cacheprovider --durations=40 tests && \
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(SMOKE_RUN)/*.ipynb

# The development loop: unit tests only (no slow, notebook or browser tests).
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) -m "not slow and not notebooks and not browser" tests

# Lab serves the whole project (figures and results.json under runs/, experiments/, README.md) and opens on
# notebook 00 with the series in the file browser. Jupyter refuses to start as root (containers) unless
# told; LAB_ARGS adds your own options (e.g. --port). tests/browser_support.py starts Lab through this target.
LAB_URL  := /lab/tree/notebooks/00_setup_and_tour.ipynb
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=$(LAB_URL) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Course assignments (notebooks/exercises) as an nbgrader course: source/ (instructor) and release/ (students);
# ROSTER=students.csv also imports the students and writes personal copies with their variant seeds.
COURSE ?= runs/assignments/course
ROSTER ?=
assignments: $(STAMP)
	$(PY) -m hybridlib assignments build --course $(COURSE) $(if $(ROSTER),--roster $(ROSTER))

bench: $(STAMP)
	$(PY) benchmarks/bench_retrieval_math.py
	$(PY) benchmarks/bench_extraction.py

env: $(STAMP)

# Idempotent bootstrap: torch/torchaudio and the rest from requirements.txt (pinned), the offline audio
# model package without its (ancient) dependency pins, then hybridlib itself (editable) and a named kernel.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps aisfx==0.1.2
	$(PIP) install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (hybrid-retrieval)"
	@touch $@
	@echo "environment ready: $(VENV)"

# The browser tests drive Debian's chromium through its chromedriver (no browser download): both installed
# with apt-get when missing (as root, else with sudo; fonts-liberation for readable screenshots), else a no-op.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "error: the browser tests need /usr/bin/chromium and /usr/bin/chromedriver (Debian: chromium, chromium-driver)" >&2; exit 1; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else \
	  echo "error: chromium and chromium-driver are missing and sudo is not available: as root, run apt-get install chromium chromium-driver" >&2; exit 1; fi; \
	echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	$$SUDO apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null && \
	test -x /usr/bin/chromium && test -x /usr/bin/chromedriver

clean:
	rm -rf runs $(SMOKE_RUN) .pytest_cache .ruff_cache
