"""The training step's geometry: ground-truth coefficients and pose labels, decoded and rendered the way the step
does (pose → real crop camera, K_crop), reproduce the dataset's crops, so every loss term except the regulariser
vanishes; a zero pose does not."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _trainer_testlib import Oracle, tiny_datasets
from torch.utils.data import default_collate

from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer
from dfmvr_training.data import SyntheticMultiViewDataset
from dfmvr_training.losses import PAPER_WEIGHTS
from dfmvr_training.step import ReconstructionLoss


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ict_npz, ict_model):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    dataset = SyntheticMultiViewDataset(data["train"], coefficient_sizes=ict_model.coefficient_sizes)
    batch = default_collate([dataset[i] for i in range(2)])
    batch["input_parts"] = batch["parts"]
    size = dataset.crop_camera.size
    renderer = FaceRenderer(ict_model, FaceRenderConfig(height=size, width=size))
    weights = dataclasses.replace(PAPER_WEIGHTS, mask=0.0)
    loss = ReconstructionLoss(ict_model, renderer, weights, dataset.crop_camera)
    truth = {
        "identity": batch["gt_identity"],
        "expression": batch["gt_expression"],
        "albedo": batch["gt_albedo"],
        "lighting": batch["gt_lighting"],
        "pose": batch["pose_label"],
    }
    return batch, loss, truth


def test_train_trainer_step_ground_truth_reproduces_the_crops(setup):
    batch, loss, truth = setup
    result = loss(Oracle(truth), batch, batch["valid"], epoch=0)
    rendering = result.rendering
    error = torch.linalg.vector_norm(rendering.landmarks - batch["landmarks"], dim=-1)[batch["visibility"]]
    assert float(error.max()) < 1e-3  # pixels
    assert float((rendering.parts == batch["parts"]).float().mean()) > 0.99
    assert float(result.raw["photo"]) < 0.02  # RGB distance; the dataset's degradation (noise, blur) remains
    assert float(result.raw["landmark_2d"]) < 1e-3 and float(result.raw["landmark_3d"]) < 1e-6
    assert set(result.terms) == {"photo", "landmark_2d", "landmark_3d", "regularization"}
    assert float(result.total) == pytest.approx(sum(float(v) for v in result.terms.values()), rel=1e-5)


def test_train_trainer_step_zero_pose_is_penalised_and_differentiable(setup):
    batch, loss, truth = setup
    guess = {k: v.clone().requires_grad_() for k, v in truth.items()}
    guess["pose"] = torch.zeros_like(truth["pose"], requires_grad=True)
    result = loss(Oracle(guess), batch, batch["valid"], epoch=0)
    assert float(result.raw["landmark_2d"]) > 10  # weighted pixels: the side views face the camera at 45°
    result.total.backward()
    assert guess["pose"].grad is not None and float(guess["pose"].grad.abs().sum()) > 0
    only_front = batch["valid"].clone()
    only_front[:, [0, 2]] = False
    front = loss(Oracle(guess), batch, only_front, epoch=0)
    assert float(front.raw["landmark_2d"]) < float(result.raw["landmark_2d"])  # dropped views are not counted


def test_train_trainer_step_without_pixel_terms_skips_the_rendering_with_the_same_landmark_loss(setup):
    """Photo and mask weights 0 (the default model's first stage): no rasterisation, the 2D landmarks are projected
    directly and give the rendering's landmark loss (and a pose gradient); the preview still renders on demand."""
    batch, loss, truth = setup
    guess = {k: v.clone() for k, v in truth.items()}
    guess["pose"] = truth["pose"] + 0.02  # off by a little: a non-zero landmark loss

    def run(weights):
        pose = guess["pose"].clone().requires_grad_()
        step = ReconstructionLoss(loss.model, loss.renderer, weights, loss.crop)
        result = step(Oracle({**guess, "pose": pose}), batch, batch["valid"], epoch=0)
        result.total.backward()
        return result, pose.grad

    rendered, _ = run(dataclasses.replace(loss.weights, vertex=0.0))
    geometric, grad_geometric = run(dataclasses.replace(loss.weights, photo=0.0, vertex=0.0))
    assert rendered.rendering is not None and geometric.rendering is None
    assert "photo" not in geometric.terms and "photo" in rendered.terms
    assert float(geometric.raw["landmark_2d"]) > 1.0
    assert float(geometric.raw["landmark_2d"]) == pytest.approx(float(rendered.raw["landmark_2d"]), rel=1e-5)
    assert grad_geometric is not None and float(grad_geometric.abs().sum()) > 0
    grid = geometric.preview()
    size = batch["images"].shape[-1]
    assert grid.shape == (3 * size, 3 * size, 3) and grid.dtype.name == "uint8"
    assert grid[:, size : 2 * size].max() > 0  # the rendered column is drawn


def test_train_trainer_step_landmark_2d_can_train_the_pose_alone(setup):
    """``landmark_2d_shape_gradient: false``: eq. 4 gives the same value, its gradient reaches the pose but not
    identity or expression (the paper's default sends it to both)."""
    batch, loss, truth = setup
    only_2d = dataclasses.replace(
        loss.weights, photo=0.0, landmark_3d=0.0, regularization=0.0, vertex=0.0, use_landmark_3d=False
    )

    def run(shape_gradient):
        weights = dataclasses.replace(only_2d, landmark_2d_shape_gradient=shape_gradient)
        guess = {k: v.clone().requires_grad_() for k, v in truth.items()}
        guess["pose"] = (truth["pose"] + 0.02).requires_grad_()
        guess["identity"] = (truth["identity"] + 0.5).requires_grad_()
        result = ReconstructionLoss(loss.model, loss.renderer, weights, loss.crop)(
            Oracle(guess), batch, batch["valid"], epoch=0
        )
        result.total.backward()
        return result, guess

    paper, with_shape = run(True)
    pose_only, detached = run(False)
    assert float(pose_only.raw["landmark_2d"]) == pytest.approx(float(paper.raw["landmark_2d"]), rel=1e-6)
    for name in ("identity", "expression"):
        assert float(with_shape[name].grad.abs().sum()) > 0
        assert detached[name].grad is None or float(detached[name].grad.abs().sum()) == 0.0
    torch.testing.assert_close(detached["pose"].grad, with_shape["pose"].grad, rtol=1e-5, atol=1e-8)
