# The two commands a new user needs (see README): `make demo` and `make test`.
# Both set everything up first (idempotent, cached in $FQM_CACHE outside the clone).
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: setup demo test lint format clean

setup:
	scripts/bootstrap.sh

demo: setup
	scripts/demo.sh

test: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/python -m pytest $(PYTEST_ARGS)

lint:
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

format:
	$(VENV)/ruff check --fix .
	$(VENV)/ruff format .

# Removes the clone's virtualenv only; the shared cache ($FQM_CACHE) is left alone.
clean:
	rm -rf .venv .pytest_cache .ruff_cache
