# `make run`: install if needed, then run the whole pipeline locally on the bundled SST-2 data.
# `make test`: install if needed, then run the test suite.
PYTHON ?= python3
VENV ?= .venv
PIP_INSTALL = $(VENV)/bin/pip install --ignore-requires-python -c requirements/constraints.txt

.PHONY: install run test clean

# TFX 1.16 declares Python <3.11 but works on 3.11; the constraints file keeps pip from
# backtracking over apache-beam[gcp] and click for hours.
$(VENV)/.installed: setup.py requirements/constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[test,kubeflow]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/python -m pipeline.local_runner

test: install
	$(VENV)/bin/python -m pytest tests

clean:
	rm -rf tfx_output serving_model
