# Set-up and the two commands of the README. A second `make test` reuses .venv and starts in seconds.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ddpgkit-installed
# pytest workers: the suite is CPU-bound and every test runs torch with one thread (see runtime.py)
WORKERS ?= 2

.PHONY: install run fit test docs figures lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,render,ray,mujoco,box2d,robotics,tune,export,tensorboard,docs]"
	touch $(STAMP)

run: install
	$(VENV)/bin/ddpgkit train Pendulum-v1 --preset pendulum --overwrite

fit: install
	$(VENV)/bin/ddpgkit fit

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n $(WORKERS) --dist loadgroup tests

# The documentation site in build/docs: README, README.ja.md, the tutorial's notebooks executed as they are built,
# the API reference from the docstrings, the benchmarks' tables. Every warning is an error: a broken link or
# reference, a missing image or a failing notebook cell stops the build.
docs: install
	rm -rf build/docs
	$(VENV)/bin/sphinx-build -q -n -W --keep-going -c docs . build/docs
	@echo "docs: build/docs/index.html"

# The committed pictures (docs/fit, docs/pendulum, docs/sweep) regenerated from the commands that draw them
figures: install
	bash benchmarks/figures.sh

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs build .pytest_cache
