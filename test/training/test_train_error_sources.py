"""The error split of dfmvr_training.error_sources on a tiny synthetic split: the truth swapped in for one part
removes that part's error, the shares of variance explained are 1 for the truth and 0 for the split's mean, and
predictions of the wrong shape are refused by name."""

from __future__ import annotations

import pytest
import torch
from _trainer_testlib import tiny_datasets

from dfmvr_core.errors import ShapeError
from dfmvr_training.benchmark_eval import load_benchmark
from dfmvr_training.error_sources import LEADING_MODES, error_sources, format_error_sources
from dfmvr_training.evaluation import evaluate_meshes


@pytest.fixture(scope="module")
def bench(tmp_path_factory, ict_npz):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    return load_benchmark(data["train"], data["model"], count=8)  # 8 samples: some spread in every coefficient


def _truth(bench):
    identity = torch.stack([s["gt_identity_full"] for s in bench.samples]).float()
    expression = torch.stack([s["gt_expression_full"] for s in bench.samples]).float()
    return identity, expression


def _rmse(bench, identity, expression) -> float:
    vertices = bench.model.to(dtype=torch.float64).decode_shape(identity.double(), expression.double())
    metrics = evaluate_meshes(vertices, bench.gt, bench.faces, indices=bench.indices, progress=False)
    return sum(m.rmse_mm for m in metrics) / len(metrics)


def test_exact_prediction_has_no_error_from_either_part(bench):
    identity, expression = _truth(bench)
    sources = error_sources(bench, identity, expression)
    assert sources["rmse_mm_true_identity"]["mean"] < 1e-3
    assert sources["rmse_mm_true_expression"]["mean"] < 1e-3
    assert sources["identity_variance_explained"] == pytest.approx(1.0, abs=1e-6)
    assert sources["expression_variance_explained"] == pytest.approx(1.0, abs=1e-6)
    assert sources["identity_r2_leading"] == pytest.approx([1.0] * LEADING_MODES)


def test_swapping_in_the_truth_isolates_each_part(bench):
    identity, expression = _truth(bench)
    mean_identity = identity.mean(0, keepdim=True).expand_as(identity)
    zero_expression = torch.zeros_like(expression)
    # right identity, no expression: all of the error is the expression's
    sources = error_sources(bench, identity, zero_expression)
    assert sources["rmse_mm_true_expression"]["mean"] < 1e-3
    assert sources["rmse_mm_true_identity"]["mean"] == pytest.approx(_rmse(bench, identity, zero_expression))
    assert sources["rmse_mm_true_identity"]["mean"] > 0.05
    assert sources["identity_variance_explained"] == pytest.approx(1.0, abs=1e-6)
    assert sources["expression_variance_explained"] < 1.0
    # the split's mean identity explains none of its variation, and the leading modes' R^2 are 0
    sources = error_sources(bench, mean_identity, expression)
    assert sources["identity_variance_explained"] == pytest.approx(0.0, abs=1e-6)
    assert sources["identity_r2_leading"] == pytest.approx([0.0] * LEADING_MODES, abs=1e-6)
    assert sources["rmse_mm_true_identity"]["mean"] < 1e-3
    assert sources["rmse_mm_true_expression"]["mean"] == pytest.approx(_rmse(bench, mean_identity, expression))
    line = format_error_sources(sources)
    assert "identity 0 %" in line and "expression 100 %" in line


def test_networks_predicting_fewer_coefficients_are_padded(bench):
    identity, expression = _truth(bench)
    sources = error_sources(bench, identity[:, :10], expression)  # a network with 10 identity components
    explained = sources["identity_variance_explained"]
    assert 0.0 < explained < 1.0
    assert sources["identity_r2_leading"] == pytest.approx([1.0] * LEADING_MODES)


def test_bad_predictions_are_refused_by_name(bench):
    identity, expression = _truth(bench)
    with pytest.raises(ShapeError, match="identity"):
        error_sources(bench, torch.zeros(len(identity), identity.shape[1] + 1), expression)
    with pytest.raises(ShapeError, match="expression"):
        error_sources(bench, identity, expression[0])
    with pytest.raises(ShapeError, match="8 samples"):
        error_sources(bench, identity[:3], expression[:3])
