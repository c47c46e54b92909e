# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA ?= $(abspath ../shared/data)
ICT_MODEL ?= $(SHARED_DATA)/ict_facekit/ict_face_full_fp32.npz
DEMO_OUT ?= out/demo

.PHONY: venv test demo lint lint-ros clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and alone, from its exact pin (a local CPU wheel on our machines).
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	# dev: tests; export: ONNX + ONNX Runtime; landmarks: MediaPipe (its opencv-contrib build is pinned to the same
	# version as opencv-python-headless); train: TensorBoard.
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,export,landmarks,train]"
	touch $(STAMP)

test: $(STAMP)
	DFMVR_SHARED_DATA=$(SHARED_DATA) $(BIN)/python -m pytest -q
	$(BIN)/ruff check .
	tools/run_ament_lint.sh

# The ROS 2 lint tests (ament_copyright/flake8/pep257/xmllint from Debian's python3-ament-* packages, system python).
lint-ros:
	tools/run_ament_lint.sh

demo: $(STAMP)
	$(BIN)/dfmvr assets info $(ICT_MODEL)
	$(BIN)/dfmvr assets preview $(ICT_MODEL) --rig config/rig.yaml -o $(DEMO_OUT)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out build *.egg-info
