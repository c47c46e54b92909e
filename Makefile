# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA ?= $(abspath ../shared/data)
ICT_MODEL ?= $(SHARED_DATA)/ict_facekit/ict_face_full_fp32.npz
DEMO_OUT ?= out/demo

.PHONY: venv test demo demo-replay lint lint-ros clean

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

# The main job on a trained checkpoint: a synthetic three-camera bag (dfmvr make-bag) replayed through the
# reconstruction pipeline (dfmvr replay), which prints the RMSE against the bag's ground truth and where the output
# bag, report.json, meshes and overlays are. No trained default model ships yet (README "The default model"), so
# DEMO_CHECKPOINT is required: a dfmvr train model.pt, or "default" once the embedded model exists.
DEMO_CHECKPOINT ?=
DEMO_FRAMES ?= 30

demo-replay: $(STAMP)
	@test -n "$(DEMO_CHECKPOINT)" || { echo "demo-replay: set DEMO_CHECKPOINT=path/to/model.pt (a trained dfmvr checkpoint)"; exit 2; }
	$(BIN)/dfmvr make-bag -o $(DEMO_OUT)/bag --model $(ICT_MODEL) --frames $(DEMO_FRAMES) --fps 15 --seed 7 --overwrite --quiet
	$(BIN)/dfmvr replay $(DEMO_OUT)/bag -o $(DEMO_OUT)/replay --model $(ICT_MODEL) --checkpoint $(DEMO_CHECKPOINT) \
		--cache-dir $(DEMO_OUT)/cache --overlay-every 5 -p sync.expected_rate_hz=15 --overwrite --quiet
	@echo "demo-replay: input bag $(DEMO_OUT)/bag; outputs in $(DEMO_OUT)/replay (output_bag/, report.json, meshes/, overlays/)"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out build *.egg-info
