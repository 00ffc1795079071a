# hybrid-retrieval: `make demo` and `make test` do all set-up on a fresh machine by themselves.
# The virtual environment is created once; a second call reuses it (the stamp records a complete install).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.hybrid-retrieval-installed
KERNEL := hybrid-retrieval
SMOKE_RUN := runs/test-smoke

.PHONY: demo test lab bench lint unit nbval clean env assignments

demo: $(STAMP)
	$(PY) -m hybridlib run-notebooks

test: $(STAMP)
	$(PY) -m ruff check hybridlib tests benchmarks notebooks
	$(PY) -m pytest tests
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(SMOKE_RUN)/*.ipynb

# Jupyter refuses to start as root (containers) unless told; LAB_ARGS adds your own options (e.g. --port).
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Course assignments (notebooks/exercises) as an nbgrader course: source/ (instructor) and release/ (students);
# ROSTER=students.csv also imports the students and writes personal copies with their variant seeds.
COURSE ?= runs/assignments/course
ROSTER ?=
assignments: $(STAMP)
	$(PY) -m hybridlib.assignments build --course $(COURSE) $(if $(ROSTER),--roster $(ROSTER))

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

clean:
	rm -rf runs $(SMOKE_RUN) .pytest_cache .ruff_cache
