# BrainTumorLabel: two commands for a fresh machine.
#   make run   set up, generate sample data, start the MONAI Label server
#   make test  set up (system packages too) and run the whole suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE_DIR := sample-data/generated
SAMPLE_CASES ?= 4
SAMPLE_SEED ?= 0
HOST ?= 127.0.0.1
PORT ?= 8000
DICOM_DIR := sample-data/dicom
ORTHANC_PORT ?= 8042
PACS_URL ?= http://127.0.0.1:$(ORTHANC_PORT)/dicom-web
REPORT_DIR := build/report-demo
# pytest-xdist workers (auto: one per core); each test file runs whole on one worker
TEST_WORKERS ?= auto

SYSTEM_PACKAGES := orthanc orthanc-dicomweb orthanc-postgresql postgresql rabbitmq-server nginx iproute2 dicom3tools \
	poppler-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages data run report orthanc run-pacs lint test suite clean

help:
	@echo "make run    set up, generate $(SAMPLE_CASES) sample cases in $(SAMPLE_DIR)/, serve them on http://$(HOST):$(PORT)"
	@echo "make test   set up, lint (ruff), type-check (mypy) and run the test suite"
	@echo "make suite  the test suite alone (TEST_WORKERS=1: one test file at a time)"
	@echo "make data   regenerate sample data from scratch: SAMPLE_CASES=N SAMPLE_SEED=S"
	@echo "make report    a signed demo report (PDF, JSON, key images) of a generated follow-up scan in $(REPORT_DIR)/"
	@echo "make orthanc   a private Orthanc on port $(ORTHANC_PORT) holding the sample studies as DICOM"
	@echo "make run-pacs  serve the studies of PACS_URL (default $(PACS_URL)); BTL_PACS_USERNAME/PASSWORD"

# The virtual environment is rebuilt only when a dependency file changes. pip byte-compiles at
# install: keep it (with PYTHONDONTWRITEBYTECODE set, as on CI, nothing else would, and every
# server and trainer process would compile torch and MONAI again: the suite took 1.6x as long).
$(STAMP): pyproject.toml requirements/constraints.txt requirements/no-deps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e '.[server,test]'
	$(BIN)/pip install --quiet --no-deps -r requirements/no-deps.txt
	$(BIN)/python -c "import lib.transforms, synthbrats, monailabel.interfaces.app"
	touch $@

setup: $(STAMP)

$(SAMPLE_DIR)/.complete: $(STAMP)
	$(BIN)/synthbrats --cases $(SAMPLE_CASES) --seed $(SAMPLE_SEED) --out $(SAMPLE_DIR) --workers 2
	touch $@

# Regenerates the case folders only: labels saved in $(SAMPLE_DIR)/labels are kept.
data: $(STAMP)
	rm -rf $(SAMPLE_DIR)/SynBraTS-* $(SAMPLE_DIR)/.complete
	$(MAKE) $(SAMPLE_DIR)/.complete

run: $(SAMPLE_DIR)/.complete
	@echo "Serving $(SAMPLE_DIR)/ ($$(ls -d $(SAMPLE_DIR)/SynBraTS-*/ | wc -l) studies) with the bundled model"
	@echo "MONAI Label server: http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/btl-server --studies $(SAMPLE_DIR) --host $(HOST) --port $(PORT)

# A baseline scan and its follow-up (same subject and site, tumor shrunk to 60 %), reported
# against each other with their reference labels; signed as "demo" so the PDF is final.
$(REPORT_DIR)/studies/.complete: $(STAMP)
	$(BIN)/synthbrats --cases 1 --seed 5 --out $(REPORT_DIR)/studies
	$(BIN)/synthbrats --cases 1 --seed 5 --out $(REPORT_DIR)/studies --follow-up-scale 0.6
	touch $@

report: $(REPORT_DIR)/studies/.complete
	$(BIN)/btl-report --study $(REPORT_DIR)/studies/SynBraTS-00005-000-followup \
	    --prior $(REPORT_DIR)/studies/SynBraTS-00005-000 --steroid-dose stable --clinical-status stable \
	    --out $(REPORT_DIR) --sign demo --impression "Smaller enhancing tumor." \
	    --recommendations "Follow-up MRI in 8 weeks."
	@echo "Report: $(REPORT_DIR)/report.pdf (JSON: $(REPORT_DIR)/report.json)"

# Orthanc (with its PostgreSQL index plugin), PostgreSQL, RabbitMQ, nginx and iproute2 (the tests start
# private ones, on loopback or in network namespaces of their own) and dciodvfy, installed when missing.
# The packages' own services are not started (a policy-rc.d during the install, where none is set).
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null; $(SUDO) chmod +x $$policy; fi; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
		status=$$?; [ -n "$$policy" ] && $(SUDO) rm -f $$policy; exit $$status; \
	fi

$(DICOM_DIR)/.complete: $(SAMPLE_DIR)/.complete
	rm -rf $(DICOM_DIR)
	$(BIN)/synthbrats-dicom --cases $(SAMPLE_DIR) --out $(DICOM_DIR) --seed $(SAMPLE_SEED)
	touch $@

orthanc: $(DICOM_DIR)/.complete system-packages
	$(BIN)/python -m lib.pacs.sandbox --port $(ORTHANC_PORT) --studies $(DICOM_DIR)

run-pacs: $(STAMP)
	@echo "MONAI Label server on the PACS $(PACS_URL): http://$(HOST):$(PORT)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/btl-server --studies $(PACS_URL) --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

OIDC_PROVIDER := tests/oidc_provider
# the loopback OpenID Connect provider of the auth tests (Node.js >= 20.19)
$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_PROVIDER)/package-lock.json
	cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund

# lint and the suite run side by side (the suite leaves a core idle a fifth of the time: servers
# starting, Orthanc answering); make fails if either fails
test: $(STAMP) system-packages $(OIDC_PROVIDER)/node_modules/.package-lock.json
	$(MAKE) --no-print-directory -j2 lint suite

suite: $(STAMP) system-packages $(OIDC_PROVIDER)/node_modules/.package-lock.json
	$(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) $(SAMPLE_DIR) $(DICOM_DIR) $(OIDC_PROVIDER)/node_modules
