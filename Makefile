# Two entry points: `make demo` (install + quickstart + compress + explain) and `make test` (install + dev extras + pytest).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU wheel on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: demo test install install-dev bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[tables,forecast,text,compress,serve,explain,privacy]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[dev,tables,forecast,text,compress,serve,explain,privacy,federated,tune]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/forgeml quickstart
	$(BIN)/forgeml compress runs/quickstart --quantize int8 --prune 0.5
	$(BIN)/forgeml explain runs/quickstart -q

test: install-dev
	$(BIN)/python -m pytest -q

bench: install-dev
	$(BIN)/python benchmarks/run_all.py

docs: install-dev
	$(BIN)/python docs/gen_config_reference.py > docs/config-reference.md
	$(BIN)/python -c "import json; from forgeml.config.experiment import json_schema; print(json.dumps(json_schema(), indent=1))" > docs/config.schema.json

clean:
	rm -rf $(VENV) runs
