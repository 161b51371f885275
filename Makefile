# The two commands of the README: `make demo` (the live demo) and `make test` (the whole test suite).
# Both set everything up on a fresh machine: OS packages, the Python environment and the local stack.

UV := .tools/bin/uv
# Use the machine's python3 (>= 3.11); fail clearly rather than try to download an interpreter.
export UV_PYTHON_DOWNLOADS := never
VENV := .venv
TW := $(VENV)/bin/tickwatch

.PHONY: demo test bench setup stack-up stack-down lint

demo: setup
	$(TW) demo

test: setup
	$(TW) stack up
	$(VENV)/bin/python -m pytest

bench: setup
	$(TW) bench

setup: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock scripts/bootstrap.sh
	scripts/bootstrap.sh
	$(UV) sync --frozen
	touch $@

stack-up: setup
	$(TW) stack up

stack-down: setup
	$(TW) stack down

lint: setup
	$(VENV)/bin/ruff check .
