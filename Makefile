# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_DATA ?= $(abspath ../shared/data)
ICT_MODEL ?= $(SHARED_DATA)/ict_facekit/ict_face_full_fp32.npz
DEMO_OUT ?= out/demo

.PHONY: venv test demo demo-preview lint lint-ros clean

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

# The main job on the embedded default model (README "The default model"): a synthetic three-camera bag with ground
# truth (dfmvr make-bag) replayed through the reconstruction pipeline (dfmvr replay), which prints the RMSE against
# the bag's ground truth next to the mean face's and where the output bag, report.json, meshes and overlays are.
# DEMO_CHECKPOINT=path/to/model.pt runs another trained checkpoint instead.
DEMO_CHECKPOINT ?= default
DEMO_FRAMES ?= 30

demo: $(STAMP)
	$(BIN)/dfmvr make-bag -o $(DEMO_OUT)/bag --model $(ICT_MODEL) --frames $(DEMO_FRAMES) --fps 15 --seed 7 --overwrite --quiet
	$(BIN)/dfmvr replay $(DEMO_OUT)/bag -o $(DEMO_OUT)/replay --model $(ICT_MODEL) --checkpoint $(DEMO_CHECKPOINT) \
		--cache-dir $(DEMO_OUT)/cache --overlay-every 5 -p sync.expected_rate_hz=15 --overwrite --quiet
	@echo "demo: input bag $(DEMO_OUT)/bag; outputs in $(DEMO_OUT)/replay: output_bag/ (the node's topics), report.json, meshes/ (PLY), overlays/ (PNG)"

# The morphable model alone: its facts, and the mean face posed in the rig and rendered in the three cameras.
demo-preview: $(STAMP)
	$(BIN)/dfmvr assets info $(ICT_MODEL)
	$(BIN)/dfmvr assets preview $(ICT_MODEL) --rig config/rig.yaml -o $(DEMO_OUT)/preview

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out build *.egg-info
