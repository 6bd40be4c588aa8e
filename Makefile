# Trimtab developer tasks. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

cluster-binaries: ## build (once) and cache the pinned control plane, kubelet, kube-proxy and kwok
	hack/build-k8s.sh >/dev/null

binaries: cluster-binaries ## ... and helm, promtool, Jaeger, the Prometheus Operator CRDs and llama.cpp's llama-server (tests)
	hack/build-helm.sh >/dev/null
	hack/build-promtool.sh >/dev/null
	hack/build-jaeger.sh >/dev/null
	hack/fetch-prometheus-crds.sh >/dev/null
	hack/build-llama-server.sh >/dev/null

image: ## build the project image locally (no Docker needed), print its archive
	@hack/build-image.sh

.PHONY: help cluster-binaries binaries image install generate verify lint test unit integration e2e bench cluster-up cluster-down demo clean

help: ## list the tasks
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml hack/devtools/pyproject.toml hack/install-deps.sh
	hack/install-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,lint,demo]' -e hack/devtools
	touch $(STAMP)

install: $(STAMP) ## system packages, a virtualenv in .venv and the package with test and lint extras

generate: $(STAMP) ## regenerate checked-in files (CRDs from the API models)
	$(BIN)/python hack/generate.py

verify: $(STAMP) binaries ## fail when generated files drift from their sources; lint the chart
	$(BIN)/python hack/generate.py --check
	"$$(hack/build-helm.sh)" lint --strict charts/trimtab
	"$$(hack/build-helm.sh)" lint --strict charts/trimtab -f charts/trimtab/values-dev.yaml

lint: $(STAMP) ## ruff, mypy --strict, import-linter layer contracts
	$(BIN)/ruff check operator tests hack
	$(BIN)/ruff format --check operator tests hack
	$(BIN)/mypy
	$(BIN)/lint-imports

test: verify lint binaries image ## the README's test command: verify, lint, unit, integration and e2e tests
	$(BIN)/pytest -m "unit or integration or e2e" $(PYTEST_ARGS)

unit: $(STAMP) ## unit tests only (no servers)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: $(STAMP) binaries ## integration tests (real control plane, real redis-server)
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

e2e: $(STAMP) binaries image ## end-to-end tests of the whole loop
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

bench: $(STAMP) cluster-up ## benchmarks under hack/bench (print figures, assert nothing)
	$(BIN)/pip install -q -e '.[bench]'
	for b in hack/bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

cluster-up: $(STAMP) cluster-binaries ## start the local control plane and its real node
	$(BIN)/trimtab cluster up

cluster-down: $(STAMP) ## stop the local control plane
	$(BIN)/trimtab cluster down

demo: $(STAMP) cluster-binaries ## the main job: the whole system under bursty load, with a report (DEMO_ARGS=...)
	$(BIN)/trimtab demo $(DEMO_ARGS)

clean: ## remove the virtualenv and caches (not the cluster binaries cache)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
