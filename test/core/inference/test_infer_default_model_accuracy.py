"""The shipped default model (``checkpoint: default``, README model card) does its job on held-out synthetic faces.

Fresh benchmark-split samples (a seed the training never used) are reconstructed by the embedded checkpoint and
scored with the paper's metric (point-to-plane RMSE after landmark alignment + ICP on the 95 mm front face, mm). The
model card reports the 100-sample benchmark (1.81 mm with three views, 1.95 with the front view, 2.19 for the mean
face); on these 24 samples it measured 1.84 / 1.92 / 2.10 mm. The thresholds hold what the shipped model achieves
with a little room, not the issue's target (40 % below the mean face, not met by this CPU-budget model): at least
8 % below the mean face with three views, below it with the front view alone, and three views better than one.
Also: the file's budget and recipe travel with it, and it is small enough to ship.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfmvr_core.inference.default_model import DEFAULT_NETWORK, packaged_checkpoint_path
from dfmvr_training.benchmark_eval import load_benchmark, load_benchmark_checkpoint, predict_outputs, view_mask
from dfmvr_training.compare_budget import budget_from_extra
from dfmvr_training.data import make_dataset
from dfmvr_training.evaluation import evaluate_meshes, mean_face_baseline
from dfmvr_training.train_config import load_train_config
from dfmvr_training.trainer import load_init_checkpoint

SAMPLES = 24
SEED = 977  # not a seed of the training data (0, 1, 2) nor of the model card's benchmark (0)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, ict_npz):
    root = tmp_path_factory.mktemp("default_model_benchmark")
    make_dataset(root, ict_npz, count=SAMPLES, seed=SEED, split="benchmark", shard_size=SAMPLES, progress=False)
    return load_benchmark(root, ict_npz, mask_source="landmarks")


@pytest.fixture(scope="module")
def checkpoint(bench):
    return load_benchmark_checkpoint(packaged_checkpoint_path(), bench, network=DEFAULT_NETWORK)


def _rmse(bench, predictions) -> float:
    metrics = evaluate_meshes(predictions, bench.gt, bench.faces, indices=bench.indices)
    return float(np.mean([m.rmse_mm for m in metrics]))


def test_default_model_is_small_and_carries_its_recipe(checkpoint):
    assert packaged_checkpoint_path().stat().st_size <= 25 * 1024 * 1024
    extra = checkpoint.extra
    assert extra["train_config"]["network"] == DEFAULT_NETWORK
    budget = budget_from_extra(extra)  # what dfmvr eval --compare reports beside the RMSE
    recipe = extra["train_config"]
    # a run started from an earlier stage (init_checkpoint) carries that stage's steps too
    assert budget.steps >= recipe["steps"] > 0 and budget.batch_size == recipe["batch_size"]
    assert budget.seconds is not None and budget.seconds > 0 and budget.device == "cpu"
    assert extra["mask_input_source"] == "landmarks"


def test_default_model_beats_the_mean_face_and_one_view_on_held_out_faces(checkpoint, bench):
    net = checkpoint.build_network("cpu").eval()
    three, _, _ = predict_outputs(net, bench, view_mask(None, 3), batch_size=4, progress=False)
    front, _, _ = predict_outputs(net, bench, view_mask(["front"], 3), batch_size=4, progress=False)
    mean_face = float(np.mean([m.rmse_mm for m in mean_face_baseline(bench.model, bench.gt)]))
    rmse_three, rmse_front = _rmse(bench, three), _rmse(bench, front)
    assert rmse_three < 0.92 * mean_face, (rmse_three, rmse_front, mean_face)
    assert rmse_front < mean_face, (rmse_three, rmse_front, mean_face)
    assert rmse_three < rmse_front, (rmse_three, rmse_front, mean_face)


def test_training_can_start_from_the_default_model(checkpoint, bench):
    """``init_checkpoint: default`` (fine-tuning on your own captures) loads the shipped weights into a fresh run."""
    config = load_train_config({"data": ["d"], "morphable_model": "m.npz", "steps": 10, "init_checkpoint": "default"})
    assert config.init_checkpoint == packaged_checkpoint_path()
    net = checkpoint.build_network("cpu")
    with torch.no_grad():
        for tensor in net.state_dict().values():
            tensor.zero_()
    note, prior = load_init_checkpoint(net, config.init_checkpoint, bench.model)
    assert "fresh" not in note and prior.steps == budget_from_extra(checkpoint.extra).steps
    for name, value in net.state_dict().items():
        assert torch.equal(value, checkpoint.state_dict[name]), name
