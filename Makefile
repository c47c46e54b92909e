# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA ?= $(abspath ../shared/data)
ICT_MODEL ?= $(SHARED_DATA)/ict_facekit/ict_face_full_fp32.npz
DEMO_OUT ?= out/demo

.PHONY: venv test demo lint clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and alone, from its exact pin (a local CPU wheel on our machines).
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,export]"
	touch $(STAMP)

test: $(STAMP)
	DFMVR_SHARED_DATA=$(SHARED_DATA) $(BIN)/python -m pytest -q
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/dfmvr assets info $(ICT_MODEL)
	$(BIN)/dfmvr assets preview $(ICT_MODEL) --rig config/rig.yaml -o $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out build *.egg-info
