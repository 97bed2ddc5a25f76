# MedRecord: every target sets up what it needs from the project's own files; nothing is
# installed by hand and nothing outside the checkout is written (compiler and Ape state included).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
SOLC_VERSION := 0.8.30
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin

export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export APE_DATA_FOLDER := $(CURDIR)/.ape
export PATH := $(CURDIR)/node_modules/.bin:$(BIN):$(PATH)
# The Ape test plugin opens a browser-less Rich console; keep output plain in CI logs.
export PYTHONUNBUFFERED := 1

SETUP_STAMPS := $(VENV)/.installed node_modules/.installed $(SOLCX_BINARY_PATH)/solc-v$(SOLC_VERSION)

.PHONY: help setup demo test lint typecheck test-contracts test-contracts-anvil test-sdk compile abis clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

setup: $(SETUP_STAMPS) ## Install everything (Python venv from the lock, npm packages, compiler shim); seconds when nothing changed

$(VENV)/.installed: requirements/lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# py-solc-x looks for `solc-v<version>` executables in $SOLCX_BINARY_PATH; this one is solc-js.
$(SOLCX_BINARY_PATH)/solc-v$(SOLC_VERSION): tools/solc-shim.js node_modules/.installed
	@mkdir -p $(SOLCX_BINARY_PATH)
	@printf '#!/bin/sh\nexec node "%s/tools/solc-shim.js" "$$@"\n' "$(CURDIR)" > $@
	@chmod +x $@
	@$@ --version | grep -q 'Version: $(SOLC_VERSION)' || { echo "solc shim reports the wrong version" >&2; exit 1; }

# ape copies its npm dependencies (OpenZeppelin, Solady: about 530 files) into contracts/.cache to
# compile, and may leave them there; but it lists at most 500 files of contracts/ when it loads
# the project, so with the copies present mocks and interfaces silently drop out of `project`.
# They are needed only while compiling: remove them after each compile.
APE_COMPILE = $(BIN)/ape compile --force && rm -rf contracts/.cache

compile: setup ## Compile the contracts (solc-js through the shim, no download)
	$(APE_COMPILE)

# The build output, rebuilt only when a source or the compiler settings change. Always a full
# compile: ape's incremental compile does not notice a settings change.
BUILD := .build/__local__.json
$(BUILD): $(shell find contracts -name '*.sol' -not -path '*/.cache/*') ape-config.yaml | setup
	$(APE_COMPILE)

abis: compile ## Refresh the ABIs and bytecode shipped in medrecord_sdk (after a contract change)
	$(BIN)/python scripts/export_abis.py

demo: setup ## Run the end-to-end flow on the embedded defaults
	$(BIN)/medrecord demo

lint: setup ## ruff (lint and format check), forge fmt --check (contracts and forge tests)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	forge fmt --check

typecheck: setup ## mypy --strict on the SDK
	$(BIN)/mypy --strict medrecord_sdk

test-contracts: setup ## Contract tests on the embedded chain (py-evm)
	$(BIN)/ape test tests/contracts -q -p no:cacheprovider

# Anvil writes state dumps under ~/.foundry and never removes them: it gets a throw-away HOME.
test-contracts-anvil: setup ## Contract tests on Anvil (random port)
	home=$$(mktemp -d) && trap 'rm -rf "$$home"' EXIT && \
		HOME=$$home $(BIN)/ape test tests/contracts -q -p no:cacheprovider --network ethereum:local:foundry

# Two xdist workers, one test file each at a time (--dist loadfile: a module's nodes start once).
# Test ids must not depend on random values, or the workers would collect different suites.
# Every flow x fault pair runs here, and a covering part of the SIGKILL column; all of it in `make test-faults`.
XDIST := -n 2 --dist loadfile
test-sdk: setup $(BUILD) ## SDK tests (embedded chain, Anvil, Hardhat 2, a real js-ipfs node, PostgreSQL, every flow x fault pair)
	$(BIN)/python -m pytest tests/sdk -q -p no:ape_test -p no:cacheprovider $(XDIST) -m "not full_matrix"

# The two contract runs side by side (one core each: py-evm and Anvil), then the SDK on two
# workers; --output-sync keeps each run's output in one piece.
test: setup $(BUILD) lint typecheck ## Everything CI runs: lint, types, contracts on two chains, SDK on three
	$(MAKE) --no-print-directory -j2 --output-sync=target test-contracts test-contracts-anvil
	$(MAKE) --no-print-directory test-sdk

# IPFS: a real js-ipfs node for the storage tests, in its own npm project (why and how it is
# started: medrecord_sdk/testing/ipfs.py).
IPFS_STAMP := tools/ipfs/node_modules/.installed
setup: $(IPFS_STAMP)
$(IPFS_STAMP): tools/ipfs/package.json tools/ipfs/package-lock.json
	cd tools/ipfs && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: test-storage bench-storage
test-storage: setup ## Storage tests only (starts and stops a real js-ipfs node)
	$(BIN)/python -m pytest tests/sdk/storage -q -p no:ape_test -p no:cacheprovider

bench-storage: setup ## Store and read back 1 GiB in a LocalStore; prints throughput and memory
	$(BIN)/python bench/store.py --size 1GiB

clean: ## Remove build output (keeps the environment)
	rm -rf .build .ape/*/subprocess_output .pytest_cache .mypy_cache .ruff_cache

# ---------------------------------------------------------------------------------------------
# Assurance (issue 9): forge fuzz/invariant campaigns, Slither, the unified gas table.
# forge is the npm binary (node_modules/.bin), compiling offline with the solc-js shim
# (foundry.toml: solc = .solcx/solc-v0.8.30, offline = true); forge-std comes from tools/forge.
# Slither runs in its own virtualenv from requirements/slither.lock, over a forge build of
# contracts/ (profile `slither`); its detector list, and the triaged findings with their
# justification (inline annotations in the contracts) are in slither.config.json and docs/SECURITY.md.
FORGE_STAMP := tools/forge/node_modules/.installed
SLITHER_VENV := $(CURDIR)/.venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.installed

.PHONY: fuzz fuzz-short slither bench-gas
$(FORGE_STAMP): tools/forge/package.json tools/forge/package-lock.json
	cd tools/forge && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(SLITHER_STAMP): requirements/slither.lock
	@test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/slither.lock
	$(SLITHER_VENV)/bin/python -m pip check
	@touch $@

fuzz-short: $(SETUP_STAMPS) $(FORGE_STAMP) ## Short forge fuzz and invariant campaign (part of make test)
	forge test

fuzz: $(SETUP_STAMPS) $(FORGE_STAMP) ## Long forge campaign (FOUNDRY_PROFILE=long: 10k fuzz runs, invariants 256 x 128)
	FOUNDRY_PROFILE=long forge test

# A clean build whenever a contract changes: incremental builds leave stale build-info files
# that Slither would read as well.
SLITHER_BUILD := .forge/slither/.built
$(SLITHER_BUILD): $(shell find contracts -name '*.sol' -not -path '*/.cache/*') foundry.toml $(SETUP_STAMPS)
	rm -rf .forge/slither
	FOUNDRY_PROFILE=slither forge build --skip './test/**' --skip './contracts/.cache/**'
	@touch $@

slither: $(SLITHER_STAMP) $(SLITHER_BUILD) ## Slither, curated detectors; fails on any untriaged finding
	home=$$(mktemp -d) && trap 'rm -rf "$$home"' EXIT && \
		HOME=$$home PATH=$(SLITHER_VENV)/bin:$$PATH slither . --config-file slither.config.json

bench-gas: setup $(BUILD) ## One gas table: every state-changing function, its floor, OZ and Solady ERC20
	$(BIN)/python bench/gas.py

test: fuzz-short slither

.PHONY: bench
bench: bench-gas ## Print every benchmark table: gas, then SDK throughput and memory (minutes)
	$(BIN)/python bench/sdk.py


.PHONY: test-faults
test-faults: setup ## Fault harness and flows x faults matrix (Anvil, js-ipfs); writes the table to docs/operations-faults.table.md
	$(BIN)/python -m pytest tests/sdk/faults/test_harness.py -q -p no:ape_test -p no:cacheprovider
	MEDRECORD_FAULTS_TABLE=$(CURDIR)/docs/operations-faults.table.md $(BIN)/python -m pytest tests/sdk/faults/test_matrix.py -q -p no:ape_test -p no:cacheprovider -rf

# Interop (issue 17): reference JS implementations the tests compare against, in their own npm
# project: Helia's UnixFS importer (CID parity per import profile) and MetaMask's eth-sig-util.
INTEROP_STAMP := tools/interop/node_modules/.installed
setup: $(INTEROP_STAMP)
$(INTEROP_STAMP): tools/interop/package.json tools/interop/package-lock.json
	cd tools/interop && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ---------------------------------------------------------------------------------------------
# Event index (issue 21): a PostgreSQL server for the index tests, from Debian's packages.
# Idempotent: apt runs only when the server binaries are missing (CI starts from a fresh
# machine; a developer's machine that has them is left alone). The tests start a throwaway
# cluster of their own (medrecord_sdk/testing/_postgres.py) and never touch a system cluster.
.PHONY: setup-postgres test-index bench-index
PG_BIN_GLOB := /usr/lib/postgresql/*/bin/initdb
setup-postgres: ## PostgreSQL server binaries (Debian package postgresql) for the index tests
	@if ls $(PG_BIN_GLOB) >/dev/null 2>&1; then echo "PostgreSQL present: $$(ls $(PG_BIN_GLOB) | head -1)"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi
setup: setup-postgres

test-index: setup ## Index tests: SQLite, a real PostgreSQL cluster, reorgs on Anvil
	$(BIN)/python -m pytest tests/sdk/index -q -p no:ape_test -p no:cacheprovider

bench-index: setup $(BUILD) ## The big index bench (1,000,000 blocks, 100,000 events on Anvil; minutes)
	$(BIN)/python bench/index.py

# ---------------------------------------------------------------------------------------------
# Packaging (issue 16): the wheel as users install it, the newest allowed dependencies, API docs.
# pip's cache for the clean venvs stays inside the checkout (.cache/pip), never in $HOME.
PIP_CACHE := $(CURDIR)/.cache/pip
API_MODULES := medrecord_sdk medrecord_sdk.client medrecord_sdk.chain medrecord_sdk.crypto \
	medrecord_sdk.storage medrecord_sdk.fhir medrecord_sdk.testing medrecord_sdk.config \
	medrecord_sdk.errors medrecord_sdk.vocabulary medrecord_sdk.cli
NEWEST_VENV := $(CURDIR)/.venv-newest

.PHONY: test-wheel test-newest docs bench-packaging

# One run of each timed command: the check is what make test needs; `make bench-packaging`
# prints the figures (best of several runs).
test-wheel: setup ## The wheel in a clean venv outside the checkout: demo, README tour, pytest plugin
	PIP_CACHE_DIR=$(PIP_CACHE) $(BIN)/python tools/wheel_check.py --repeat 1

bench-packaging: setup ## Wheel size, install time, import and --help times, plugin start-up cost
	PIP_CACHE_DIR=$(PIP_CACHE) $(BIN)/python bench/packaging.py

# The newest versions the metadata allows (no lock), resolved from the package index in a venv
# of their own; the SDK tests that need neither ape nor a build run there (the contracts and
# the shipped-ABI check stay on the lock: ape caps web3, eth-account, click and rich).
test-newest: setup ## SDK tests on the newest dependency versions pyproject allows
	rm -rf $(NEWEST_VENV) && $(PYTHON) -m venv $(NEWEST_VENV)
	PIP_CACHE_DIR=$(PIP_CACHE) $(NEWEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade ".[embedded,postgres,research]" pytest pytest-xdist hypothesis graphql-core
	$(NEWEST_VENV)/bin/python -m pip list --format=freeze | grep -iE '^(web3|eth-account|eth-tester|py-evm|click|rich|httpx|pydantic|cryptography|psycopg)=='
	cd tests && $(NEWEST_VENV)/bin/python -m pytest sdk -q -p no:cacheprovider $(XDIST) -m "not hardhat and not ipfs and not full_matrix and not fault_pairs" \
		--ignore=sdk/storage --ignore=sdk/chain/test_artifacts.py

docs: setup ## API reference generated from the docstrings into build/api (pdoc)
	rm -rf build/api
	$(BIN)/pdoc --docformat restructuredtext -o build/api $(API_MODULES)
	@echo "open build/api/index.html"

test: test-wheel docs

# ---------------------------------------------------------------------------------------------
# Subgraph (issue 21): the index's entities on The Graph, from the same events (docs/subgraph.md).
# graph-cli and graph-ts come from subgraph/package-lock.json; codegen and build run offline and
# write only subgraph/generated, subgraph/build and subgraph/.cache (graph-cli's update check is
# off, and its cache directory is kept inside the checkout). The handlers and manifest are
# generated from the shipped ABIs (subgraph/generate.py); a stale copy fails the build.
SUBGRAPH_STAMP := subgraph/node_modules/.installed
SUBGRAPH_BUILT := subgraph/build/.built
SUBGRAPH_ENV := GRAPH_SKIP_NEW_VERSION_CHECK=true XDG_CACHE_HOME=$(CURDIR)/subgraph/.cache \
	XDG_CONFIG_HOME=$(CURDIR)/subgraph/.cache XDG_DATA_HOME=$(CURDIR)/subgraph/.cache
.PHONY: subgraph
$(SUBGRAPH_STAMP): subgraph/package.json subgraph/package-lock.json
	cd subgraph && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(SUBGRAPH_BUILT): $(SUBGRAPH_STAMP) $(VENV)/.installed subgraph/schema.graphql subgraph/subgraph.yaml \
		subgraph/generate.py $(wildcard subgraph/src/*.ts subgraph/src/handlers/*.ts) \
		$(wildcard medrecord_sdk/chain/artifacts/*.json)
	$(BIN)/python subgraph/generate.py --check
	cd subgraph && rm -rf generated build && $(SUBGRAPH_ENV) node_modules/.bin/graph codegen --output-dir generated
	cd subgraph && $(SUBGRAPH_ENV) node_modules/.bin/graph build --output-dir build
	@touch $@

subgraph: $(SUBGRAPH_BUILT) ## Subgraph: graph codegen + graph build (offline; rebuilt when a source changes)

test: subgraph

# Research datasets (issue 19): the dataset bench (a 1,000 x 10 cohort on Anvil, then the run).
.PHONY: bench-dataset
bench-dataset: setup ## Dataset of 1,000 patients x 10 records: records/s, memory, time per stage
	$(BIN)/python bench/dataset.py
