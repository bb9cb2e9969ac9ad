# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install

$(BIN)/certgate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/certgate

install: $(BIN)/certgate

run: install
	$(BIN)/certgate serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy gateway protocols store
	$(BIN)/lint-imports

test: lint
	scripts/test.sh $(ARGS)
