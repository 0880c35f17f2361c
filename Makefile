# Pulse: the two commands of the README.
#   make run   the whole stack on the embedded defaults (SQLite + bundled Redis)
#   make test  the test suite against PostgreSQL, Redis, Mosquitto and real protocol peers

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install services bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python -m app.devstack

services:
	bash scripts/test-services.sh

test: install services
	$(BIN)/pytest

clean:
	rm -rf $(VENV) instance .pytest_cache
