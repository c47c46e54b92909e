"""The dense vertex loss (synthetic 3D supervision, ``LossWeights.vertex``) and its place in the training step."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _trainer_testlib import Oracle, tiny_datasets
from torch.utils.data import default_collate

from dfmvr_core.errors import ShapeError
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer
from dfmvr_training.data import SyntheticMultiViewDataset
from dfmvr_training.losses import PAPER_WEIGHTS, load_loss_weights, vertex_loss
from dfmvr_training.step import ReconstructionLoss, front_face_weights


def test_vertex_loss_is_the_mean_euclidean_vertex_error():
    target = torch.zeros(2, 4, 3)
    pred = target.clone()
    pred[0, :, 0] = 0.003  # every vertex 3 mm off
    pred[1, 0] = torch.tensor([0.0, 0.004, 0.003])  # one vertex 5 mm off
    loss = vertex_loss(pred, target)
    assert torch.allclose(loss, torch.tensor([0.003, 0.005 / 4]), atol=1e-7)
    weights = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert torch.allclose(vertex_loss(pred, target, vertex_weights=weights), torch.tensor([0.003, 0.005]), atol=1e-7)
    masked = vertex_loss(pred, target, valid=torch.tensor([True, False]))
    assert float(masked[1]) == 0.0 and float(masked[0]) == pytest.approx(0.003, abs=1e-7)


def test_vertex_loss_gradient_is_finite_at_a_perfect_fit_and_points_to_the_target():
    target = torch.randn(1, 5, 3) * 0.01
    pred = target.clone().requires_grad_(True)
    vertex_loss(pred, target).sum().backward()
    assert torch.isfinite(pred.grad).all()
    moved = (target + 0.002).requires_grad_(True)
    vertex_loss(moved, target).sum().backward()
    assert bool((moved.grad > 0).all())  # descending moves every vertex back towards the target


def test_vertex_loss_refuses_bad_input():
    ok = torch.zeros(1, 3, 3)
    with pytest.raises(ShapeError, match="target_vertices"):
        vertex_loss(ok, torch.zeros(1, 4, 3))
    with pytest.raises(ShapeError, match="pred_vertices"):
        vertex_loss(torch.full((1, 3, 3), float("nan")), ok)
    with pytest.raises(ShapeError, match="vertex_weights"):
        vertex_loss(ok, ok, vertex_weights=torch.zeros(3))


def test_vertex_weight_is_off_in_the_presets_and_scaled_like_the_3d_landmarks():
    assert PAPER_WEIGHTS.term_weights()["vertex"] == 0.0
    weights = load_loss_weights({"preset": "paper", "vertex": 2.0})
    assert weights.term_weights()["vertex"] == pytest.approx(2.0 / weights.landmark_3d_unit_m)


def test_front_face_region_is_the_evaluated_sphere_around_the_nose(ict_model):
    region = front_face_weights(ict_model)
    mean = ict_model.mean_shape.float()
    distance = (mean - mean[ict_model.landmarks68[30]]).norm(dim=-1)
    assert bool((region[distance <= 0.09] == 1).all()) and bool((region[distance > 0.1] == 0).all())
    assert 0 < int(region.sum()) < ict_model.num_vertices


def test_step_vertex_term_vanishes_for_the_truth_and_grows_with_identity_error(tmp_path_factory, ict_npz, ict_model):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    dataset = SyntheticMultiViewDataset(data["train"], coefficient_sizes=ict_model.coefficient_sizes)
    batch = default_collate([dataset[i] for i in range(2)])
    batch["input_parts"] = batch["parts"]
    size = dataset.crop_camera.size
    renderer = FaceRenderer(ict_model, FaceRenderConfig(height=size, width=size))
    weights = dataclasses.replace(PAPER_WEIGHTS, mask=0.0, vertex=1.0)
    loss = ReconstructionLoss(ict_model, renderer, weights, dataset.crop_camera)
    truth = {
        "identity": batch["gt_identity"],
        "expression": batch["gt_expression"],
        "albedo": batch["gt_albedo"],
        "lighting": batch["gt_lighting"],
        "pose": batch["pose_label"],
    }
    exact = loss(Oracle(truth), batch, batch["valid"], epoch=0)
    assert float(exact.raw["vertex"]) < 1e-5  # metres
    wrong = loss(Oracle({**truth, "identity": torch.zeros_like(truth["identity"])}), batch, batch["valid"], epoch=0)
    assert float(wrong.raw["vertex"]) > 5e-4  # the mean identity is millimetres off
    assert float(wrong.terms["vertex"]) == pytest.approx(float(wrong.raw["vertex"]) / weights.landmark_3d_unit_m)
    no_3d = loss(Oracle(truth), {**batch, "has_3d": torch.tensor([False, False])}, batch["valid"], epoch=0)
    assert float(no_3d.raw["vertex"]) == 0.0
