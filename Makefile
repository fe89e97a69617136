# Two entry points do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast test-slow docs prepare-data accelerator-check clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

# The main job: P2's LeNet-300-100 protocol, shortened, on the MNIST subset shipped in the package.
demo: $(STAMP)
	$(PY) -m jaxtickets.main --config=configs/mnist_lenet.py:demo --workdir=runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

# The inner loop (under 3 minutes on 2 cores): unit tests and one end-to-end smoke run,
# the tests marked `fast` (tests/conftest.py lists them). `make test` runs them too.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'fast and not slow'

# The documentation site (mkdocs.yml, docs/) into site/; warnings fail the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# Import the offline MNIST and CIFAR-10 copies into a TFDS data dir (used by full-size runs).
DATA_SRC ?= ../shared/data
TFDS_DIR ?= $(HOME)/tensorflow_datasets
prepare-data: $(STAMP)
	$(PY) -m jaxtickets.data.prepare --dataset mnist --source $(DATA_SRC)/mnist.npz --data_dir $(TFDS_DIR)
	$(PY) -m jaxtickets.data.prepare --dataset cifar10 --source $(DATA_SRC)/cifar10_jpeg.npz --data_dir $(TFDS_DIR)

# Slow reproduction runs on the full data sets (about an hour on 2 cores).
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow -s

# The accelerator check (BENCHMARKS.md, section 9) with the Python of .venv (installed
# with the accelerator's extra, README) or else python3; ACCELERATOR_ARGS='--smoke' runs
# it at toy size on a CPU. For a machine without network, STAGE='--tfds --data mnist'
# puts the wheels and data it lacks into .whl/ and .devdata/ instead, and prints what to
# send with the checkout and the command to run there.
STAGE ?=
ACCELERATOR_ARGS ?=
CHECK_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
accelerator-check:
ifneq ($(STAGE),)
	bash bench/accelerator/stage.sh $(STAGE)
else
	$(CHECK_PY) -m bench.accelerator --out runs/accelerator --data_dir $(DATA_SRC) $(ACCELERATOR_ARGS)
endif

clean:
	rm -rf $(VENV) runs
