# Two commands for a fresh machine: `make serve` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/starcite: setup.cfg setup.py starcite/native/fanout.c clients/python/pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q -e ./clients/python  # the SDK and starcite-cli, for tests/sdk
	touch $(BIN)/starcite

.PHONY: install serve test bench bench-quick
install: $(BIN)/starcite

serve: install
	$(BIN)/starcite serve $(if $(CONFIG),--config $(CONFIG),)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench run

bench-quick: install
	$(BIN)/python -m bench run --quick
