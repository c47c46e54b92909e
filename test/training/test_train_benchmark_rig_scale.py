"""The rig-scaled RMSE of benchmark evaluations: the benchmark's landmarks, crops and camera poses give the
reconstructor's metric face size (triangulation), which undoes a prediction's wrong overall size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _trainer_testlib import tiny_datasets

from dfmvr_training.benchmark_eval import load_benchmark, rig_metric_scales, rig_scaled_rmse, view_mask
from dfmvr_training.evaluation import evaluate_meshes


@pytest.fixture(scope="module")
def bench(tmp_path_factory, ict_npz):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    return load_benchmark(data["benchmark"], ict_npz, mask_source="rendered")


def test_rig_scale_recovers_the_size_of_a_shrunk_truth(bench):
    shrunk = bench.gt * 0.9  # the right shape, 10 % too small (what a network fooled by the crops would say)
    all_views = view_mask(None, 3)
    np.testing.assert_allclose(rig_metric_scales(bench, shrunk, all_views), 1 / 0.9, rtol=1e-6)
    rigid = [m.rmse_mm for m in evaluate_meshes(shrunk, bench.gt, bench.faces, indices=bench.indices)]
    rig = rig_scaled_rmse(bench, shrunk, all_views)
    assert min(rigid) > 1.0 and max(rig) < 0.01, (rigid, rig)


def test_rig_scale_needs_two_views(bench):
    shrunk = bench.gt * 0.9
    front = view_mask(["front"], 3)
    np.testing.assert_array_equal(rig_metric_scales(bench, shrunk, front), np.ones(bench.count))
    two = rig_metric_scales(bench, shrunk, torch.tensor([True, True, False]))
    np.testing.assert_allclose(two, 1 / 0.9, rtol=1e-6)
