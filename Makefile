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
# pytest-xdist workers; each test file runs whole on one worker. One more than the 2 cores: much of
# a test is waiting (servers starting, Orthanc, a broker, a sleep), and 3 workers kept the cores
# 95 % busy where 2 left about a third of their time idle (user+sys over wall, 2026-12-02)
TEST_WORKERS ?= 3

SYSTEM_PACKAGES := orthanc orthanc-dicomweb orthanc-postgresql postgresql rabbitmq-server nginx iproute2 dicom3tools \
	poppler-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages data run report orthanc run-pacs lint test suite slicer-lib-tests docs-images clean

help:
	@echo "make run        set up, generate $(SAMPLE_CASES) sample cases in $(SAMPLE_DIR)/, serve them on http://$(HOST):$(PORT)"
	@echo "make test       set up, lint (ruff), type-check (mypy) and run the test suite and the Slicer Lib tests"
	@echo "make help       this list"
	@echo "make setup      the virtual environment $(VENV)/ alone (rebuilt when a dependency file changes)"
	@echo "make system-packages  the Debian packages the tests need (Orthanc, PostgreSQL, RabbitMQ, nginx, ...)"
	@echo "make data       regenerate sample data from scratch: SAMPLE_CASES=N SAMPLE_SEED=S"
	@echo "make report     a signed demo report (PDF, JSON, key images) of a generated follow-up scan in $(REPORT_DIR)/"
	@echo "make orthanc    a private Orthanc on port $(ORTHANC_PORT) holding the sample studies as DICOM"
	@echo "make run-pacs   serve the studies of PACS_URL (default $(PACS_URL)); BTL_PACS_USERNAME/PASSWORD"
	@echo "make lint       ruff, mypy, and the Slicer module's check at Python 3.9 (mypy, vermin)"
	@echo "make suite      the test suite alone (TEST_WORKERS=1: one test file at a time)"
	@echo "make slicer-lib-tests  the Slicer Lib tests under Slicer's Pythons ($(SLICER_PYTHONS))"
	@echo "make docs-images  redraw docs/images/architecture.png and the Slicer panel (docs/images/slicer-module.png)"
	@echo "make clean      remove the virtual environments, generated sample data and DICOM"

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

# Slicer's own Pythons: 3.9 (Slicer 5.8) and 3.12 (Slicer 5.10 and later), from pyenv or on PATH.
# The Slicer module is checked for 3.9 (mypy at 3.9 and vermin) and its Lib tests run under both.
SLICER_PYTHONS := 3.9 3.12
PYENV_ROOT_DIR := $(shell pyenv root 2>/dev/null)
# (a pythonX.Y on PATH counts if it runs: pyenv's shims exist for versions it does not enable)
slicer_python = $(or $(lastword $(wildcard $(PYENV_ROOT_DIR)/versions/$(1).*/bin/python$(1))),$(shell python$(1) -c 'import sys; print(sys.executable)' 2>/dev/null))

.venv-py%/.installed: requirements/slicer-py%.txt
	@python="$(call slicer_python,$*)"; \
	if [ -z "$$python" ]; then \
		echo "Python $* (Slicer's) is missing: the Slicer Lib tests and the 3.9 type check need it." >&2; \
		echo "  looked in pyenv ($(or $(PYENV_ROOT_DIR),pyenv not installed)/versions/$*.*) and for python$* on PATH;" >&2; \
		echo "  install it, e.g. 'pyenv install $*', or put python$* on PATH" >&2; exit 1; fi; \
	test -x .venv-py$*/bin/python || "$$python" -m venv .venv-py$*
	.venv-py$*/bin/pip install --quiet -r requirements/slicer-py$*.txt
	touch $@

lint: $(STAMP) .venv-py3.9/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	.venv-py3.9/bin/mypy --config-file slicer_extension/mypy.ini
	$(BIN)/vermin --target=3.9- --no-tips --violations slicer_extension/

OIDC_PROVIDER := tests/oidc_provider
# the loopback OpenID Connect provider of the auth tests (Node.js >= 20.19)
$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_PROVIDER)/package-lock.json
	cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund

# lint, the suite and the Slicer Lib tests run side by side (the suite leaves a core idle a fifth
# of the time: servers starting, Orthanc answering); make fails if any fails
test: $(STAMP) system-packages $(OIDC_PROVIDER)/node_modules/.package-lock.json
	$(MAKE) --no-print-directory -j2 lint suite slicer-lib-tests

# The suite, with the line coverage of the Slicer module's panel (BrainTumorLabel.py, >= 90 %).
# The Slicer Lib tests run in slicer-lib-tests, under Slicer's Pythons.
suite: $(STAMP) system-packages $(OIDC_PROVIDER)/node_modules/.package-lock.json
	$(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	    --ignore-glob='tests/slicer_extension/test_lib_*.py' \
	    --cov=BrainTumorLabel --cov-report=term-missing --cov-fail-under=90

# The Lib tests (standard library and pytest on the client side) under Python 3.9 and 3.12,
# against real servers started from the project's venv
slicer-lib-tests: $(STAMP) $(foreach v,$(SLICER_PYTHONS),.venv-py$(v)/.installed)
	@for v in $(SLICER_PYTHONS); do \
		.venv-py$$v/bin/python -c 'import sys; print("Slicer Lib tests on Python", sys.version.split()[0])'; \
		BTL_SERVER_PYTHON=$(CURDIR)/$(BIN)/python .venv-py$$v/bin/python -m pytest -p no:cacheprovider \
		    tests/slicer_extension/test_lib_*.py || exit 1; \
	done

# The architecture diagram (matplotlib) and the Slicer module's panel, drawn offscreen by the module
# tests' harness against a real server on generated studies (PySide6; about a minute)
docs-images: $(STAMP)
	$(BIN)/python docs/draw_architecture.py --out docs/images/architecture.png
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/render_slicer_module.py docs/images/slicer-module.png

clean:
	rm -rf $(VENV) .venv-py3.9 .venv-py3.12 $(SAMPLE_DIR) $(DICOM_DIR) $(OIDC_PROVIDER)/node_modules build/test-cases
