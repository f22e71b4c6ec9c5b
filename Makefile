# kopter: `make run` brings the whole stack up locally; `make test` runs every test;
# `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The IAM evaluator the policy tests run (node, test-only, never shipped): tests/iam/.
IAM_EVALUATOR := tests/iam/node_modules/.package-lock.json
# What the tests run beside Python, each with the Debian package that has it (installed by
# scripts/ensure-commands where it can): Chromium and its driver for the browser tests, npm and
# node, systemd-analyze for deploy/'s units, and what builds and runs the image.
IMAGE_COMMANDS := podman:podman buildah:buildah runc:runc newuidmap:uidmap mmdebstrap:mmdebstrap
TEST_COMMANDS := chromium:chromium chromedriver:chromium-driver npm:npm node:nodejs \
	systemd-analyze:systemd $(IMAGE_COMMANDS)
# checkov (test-only) scans the Containerfile and the template of `kopter deploy template`.
CHECKOV := $(VENV)/checkov/bin/checkov

.PHONY: run test soak lint bench clean lock image

# Every package at the version the lock pins, checked against its hashes (requirements/, made by
# `make lock`; DEVELOPERS.md), then kopter itself, whose dependencies the lock already holds.
# uv installs them (half the time pip took here); uv itself comes first, from its own
# hashed lock, through pip. Compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is
# set (these machines), every process would compile what it imports, each time.
UV_INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python
$(INSTALLED): setup.cfg pyproject.toml requirements/dev.txt requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "kopter needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/uv.txt
	$(UV_INSTALL) $(BIN)/python --require-hashes -r requirements/dev.txt
	$(UV_INSTALL) $(BIN)/python --no-deps --no-build-isolation -e .
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; \
		echo "requirements/dev.txt lacks what setup.cfg asks for: run scripts/lock"; exit 1; }
	@touch $@

# checkov in a venv of its own: it pins versions below what kopter's dependencies need.
$(CHECKOV): requirements/checkov.txt | $(INSTALLED)
	$(PYTHON) -m venv --without-pip $(VENV)/checkov
	$(UV_INSTALL) $(VENV)/checkov/bin/python --require-hashes -r requirements/checkov.txt
	@touch $@

# The lock files at the newest versions setup.cfg allows (`scripts/lock` alone keeps the pins
# and only adds or drops what setup.cfg changed). It runs uv from the venv, whatever the venv's
# state: after an edit of setup.cfg, $(INSTALLED) refuses the stale lock it installed.
lock:
	VENV=$(VENV) scripts/lock --upgrade

run: $(INSTALLED)
	@scripts/ensure-redis-server --unless-reachable "$${KOPTER_REDIS_URL:-redis://127.0.0.1:6379/0}"
	$(BIN)/kopter dev

$(IAM_EVALUATOR): tests/iam/package.json tests/iam/package-lock.json
	@scripts/ensure-commands $(TEST_COMMANDS)
	@command -v npm >/dev/null || { echo "make test needs Node 20 and npm (the IAM evaluator)"; exit 1; }
	npm ci --prefix tests/iam --no-audit --no-fund
	@touch $@

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(INSTALLED) $(IAM_EVALUATOR) $(CHECKOV) lint
	@scripts/ensure-redis-server
	@scripts/ensure-commands $(TEST_COMMANDS)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

# Longer than `make test` allows: sustained load, and the SIGKILL run at five times the files.
soak: $(INSTALLED)
	@scripts/ensure-redis-server
	KOPTER_CHAOS_FILES=1000 $(BIN)/pytest -s -m 'soak or not soak' tests/test_soak.py tests/test_faults.py

# Figures on this machine, beside the limits they must meet (not a test: nothing flakes).
bench: $(INSTALLED)
	@scripts/ensure-redis-server
	@scripts/ensure-commands chromium:chromium chromedriver:chromium-driver $(IMAGE_COMMANDS)
	@status=0; $(BIN)/python -m benchmarks.ingest || status=1; \
		$(BIN)/python -m benchmarks.describer || status=1; \
		$(BIN)/python -m benchmarks.pricing || status=1; \
		$(BIN)/python -m benchmarks.aggregator || status=1; \
		$(BIN)/python -m benchmarks.audit || status=1; \
		$(BIN)/python -m benchmarks.sigma || status=1; \
		$(BIN)/python -m benchmarks.api || status=1; \
		$(BIN)/python -m benchmarks.delays || status=1; \
		$(BIN)/python -m benchmarks.deliveries || status=1; \
		$(BIN)/python -m benchmarks.web || status=1; \
		$(BIN)/python -m benchmarks.image || status=1; exit $$status

# kopter:VERSION, built with podman from Debian's packages and the runtime lock (DEVELOPERS.md).
image: $(INSTALLED)
	@scripts/ensure-commands $(IMAGE_COMMANDS)
	VENV=$(VENV) scripts/build-image

clean:
	rm -rf $(VENV) .kopter-dev test-output *.egg-info tests/iam/node_modules
