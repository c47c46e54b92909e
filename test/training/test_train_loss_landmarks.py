"""2D (eq. 4) and 3D (eq. 5-6) landmark losses."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.rotations import euler_to_matrix
from dfmvr_training.losses import (
    IBUG68_ALIGN_INDICES,
    PIXEL_FACE_101_ALIGN_INDICES,
    landmark_2d_loss,
    landmark_2d_weights,
    landmark_3d_loss,
)

B, V = 2, 3


def test_landmark_weight_schemes():
    paper = landmark_2d_weights()
    assert paper.shape == (68,)
    high = set(torch.nonzero(paper == 20).flatten().tolist())
    assert high == set(range(27, 36)) | set(range(60, 68))
    assert torch.all(paper[[i for i in range(68) if i not in high]] == 1)
    deep3d = landmark_2d_weights("deep3dface")
    assert set(torch.nonzero(deep3d == 20).flatten().tolist()) == {28, 29, 30, *range(60, 68)}
    authors = landmark_2d_weights("authors_code")
    assert set(torch.nonzero(authors == 20).flatten().tolist()) == {28, 29, 30, *range(36, 48), *range(60, 68)}
    assert landmark_2d_weights(high_weight=5.0).max() == 5.0
    with pytest.raises(ConfigError, match="landmark_2d_scheme"):
        landmark_2d_weights("nose")


def _landmarks_2d(seed: int = 0) -> torch.Tensor:
    return 224 * torch.rand(B, V, 68, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_2d_zero_on_identical_and_exact_for_a_shift():
    target = _landmarks_2d()
    assert torch.equal(landmark_2d_loss(target, target), torch.zeros(B, dtype=torch.float64))
    shifted = target + torch.tensor([3.0, 4.0], dtype=torch.float64)  # 5 px for every landmark
    mean_weight = (51 + 17 * 20) / 68
    torch.testing.assert_close(
        landmark_2d_loss(shifted, target), torch.full((B,), 5 * mean_weight, dtype=torch.float64)
    )
    ones = torch.ones(68, dtype=torch.float64)
    torch.testing.assert_close(
        landmark_2d_loss(shifted, target, weights=ones), torch.full((B,), 5.0, dtype=torch.float64)
    )


def test_2d_increases_with_the_perturbation_and_weights_nose_more():
    target = _landmarks_2d()
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    losses = [landmark_2d_loss(target + s * noise, target) for s in (0.0, 0.5, 2.0, 8.0)]
    for smaller, larger in itertools.pairwise(losses):
        assert torch.all(larger > smaller)
    nose_moved, jaw_moved = target.clone(), target.clone()
    nose_moved[..., 30, 0] += 2.0
    jaw_moved[..., 8, 0] += 2.0
    torch.testing.assert_close(landmark_2d_loss(nose_moved, target), 20 * landmark_2d_loss(jaw_moved, target))


def test_2d_invalid_views_and_invisible_landmarks_are_ignored():
    target = _landmarks_2d()
    pred = target + torch.randn(target.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    valid = torch.tensor([[True, False, True], [False, False, True]])
    broken = pred.clone()
    broken[0, 1] += 500
    broken[1, :2] -= 900
    got = landmark_2d_loss(broken, target, valid)
    torch.testing.assert_close(got[0], landmark_2d_loss(pred[:1, [0, 2]], target[:1, [0, 2]])[0])
    torch.testing.assert_close(got[1], landmark_2d_loss(pred[1:, 2:], target[1:, 2:])[0])
    visibility = torch.ones(B, V, 68, dtype=torch.bool)
    visibility[..., :17] = False  # jaw line hidden (profile views)
    hidden_moved = pred.clone()
    hidden_moved[..., :17, :] += 100
    torch.testing.assert_close(
        landmark_2d_loss(hidden_moved, target, visibility=visibility),
        landmark_2d_loss(pred, target, visibility=visibility),
    )
    # the sum runs over the visible landmarks, normalised by their count
    weights = torch.ones(68, dtype=torch.float64)
    shifted = target + torch.tensor([0.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(
        landmark_2d_loss(shifted, target, weights=weights, visibility=visibility),
        torch.full((B,), 2.0, dtype=torch.float64),
    )
    assert landmark_2d_loss(pred, target, torch.zeros(B, V, dtype=torch.bool)).eq(0).all()


def test_2d_gradient_and_bad_input():
    target = _landmarks_2d()
    pred = target.clone().requires_grad_(True)
    landmark_2d_loss(pred, target).sum().backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))  # finite at zero distance
    pred = (target + 1).requires_grad_(True)
    landmark_2d_loss(pred, target).sum().backward()
    assert pred.grad.abs().min() > 0
    nan = target.clone()
    nan[1, 2, 3, 0] = float("nan")
    with pytest.raises(ShapeError, match=r"target_lm.*non-finite"):
        landmark_2d_loss(target, nan)
    with pytest.raises(ShapeError, match="target_lm"):
        landmark_2d_loss(target, target[:, :2])
    with pytest.raises(ShapeError, match="pred_lm"):
        landmark_2d_loss(target[..., :1], target)
    with pytest.raises(ShapeError, match="weights"):
        landmark_2d_loss(target, target, weights=torch.ones(67, dtype=torch.float64))
    with pytest.raises(ShapeError, match="weights"):
        landmark_2d_loss(target[:, :, :5], target[:, :, :5])
    with pytest.raises(ShapeError, match="visibility"):
        landmark_2d_loss(target, target, visibility=torch.ones(B, V, 5, dtype=torch.bool))
    with pytest.raises(ShapeError, match="valid"):
        landmark_2d_loss(target, target, valid=torch.full((B, V), 0.5))


# ------------------------------------------------------------------ 3D
@pytest.fixture(scope="module")
def face_lm3d(ict_model) -> torch.Tensor:
    """(B, 68, 3) metres: the ICT mean face's landmarks and a slightly different identity."""
    sizes = ict_model.coefficient_sizes
    g = torch.Generator().manual_seed(0)
    identity = torch.cat([torch.zeros(1, sizes.identity), torch.randn(1, sizes.identity, generator=g)])
    vertices = ict_model.decode_shape(identity, torch.zeros(2, sizes.expression))
    return ict_model.landmarks(vertices).to(torch.float64)


def _similarity(points: torch.Tensor, scale: float, angles: tuple[float, float, float], shift: tuple) -> torch.Tensor:
    R = euler_to_matrix(torch.tensor(angles, dtype=torch.float64))
    return scale * points @ R.T + torch.tensor(shift, dtype=torch.float64)


def test_alignment_points_are_eye_corners_nose_tip_and_mouth_corners():
    assert IBUG68_ALIGN_INDICES == (36, 39, 42, 45, 30, 48, 54)
    assert len(PIXEL_FACE_101_ALIGN_INDICES) == 7


def test_3d_zero_on_identical_and_invariant_to_a_similarity_of_the_prediction(face_lm3d):
    target = face_lm3d
    assert landmark_3d_loss(target, target).abs().max() < 1e-12
    moved = _similarity(target, 1.7, (0.3, -0.8, 0.2), (0.1, -0.05, 0.6))
    assert landmark_3d_loss(moved, target).abs().max() < 1e-12
    noisy = target + 0.002 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(
        landmark_3d_loss(_similarity(noisy, 0.4, (-0.5, 1.0, 0.1), (0.0, 0.3, 2.0)), target),
        landmark_3d_loss(noisy, target),
    )


def test_3d_increases_with_the_perturbation_and_is_in_metres(face_lm3d):
    target = face_lm3d
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise[:, list(IBUG68_ALIGN_INDICES)] = 0  # the alignment points stay put, so the map stays the identity
    losses = [landmark_3d_loss(target + s * noise, target) for s in (0.0, 0.001, 0.003, 0.01)]
    for smaller, larger in itertools.pairwise(losses):
        assert torch.all(larger > smaller)
    expected = torch.linalg.vector_norm(0.003 * noise, dim=-1).mean(-1)
    torch.testing.assert_close(landmark_3d_loss(target + 0.003 * noise, target), expected)
    # a 1 cm bump on one non-alignment landmark: 1 cm / 68 in metres
    bumped = target.clone()
    bumped[:, 8, 2] += 0.01
    torch.testing.assert_close(landmark_3d_loss(bumped, target), torch.full((2,), 0.01 / 68, dtype=torch.float64))


def test_3d_gradient_flows_through_the_alignment_or_not(face_lm3d):
    target = face_lm3d
    noisy = target + 0.003 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    pred = noisy.clone().requires_grad_(True)
    landmark_3d_loss(pred, target).sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().max() > 0
    # through the alignment the loss is flat along a global rescaling/translation of the prediction
    centroid = pred.detach().mean(1, keepdim=True)
    along_scale = (pred.grad * (pred.detach() - centroid)).sum(dim=(1, 2))
    along_shift = pred.grad.sum(1)
    assert along_scale.abs().max() < 1e-8 and along_shift.abs().max() < 1e-8
    detached = noisy.clone().requires_grad_(True)
    loss = landmark_3d_loss(detached, target, detach_alignment=True)
    torch.testing.assert_close(loss, landmark_3d_loss(noisy, target))
    loss.sum().backward()
    assert (detached.grad * (noisy - noisy.mean(1, keepdim=True))).sum(dim=(1, 2)).abs().max() > 1e-4
    # zero-distance prediction: finite gradient
    same = target.clone().requires_grad_(True)
    landmark_3d_loss(same, target).sum().backward()
    assert torch.isfinite(same.grad).all()


def test_3d_samples_without_ground_truth_are_skipped(face_lm3d):
    target = face_lm3d.clone()
    target[1] = 0.0  # no 3D label: all-zero placeholder (degenerate for an alignment)
    pred = (face_lm3d + 0.001).requires_grad_(True)
    loss = landmark_3d_loss(pred, target, torch.tensor([True, False]))
    assert loss[1] == 0 and loss[0] > 0
    loss.sum().backward()
    assert torch.isfinite(pred.grad).all() and torch.all(pred.grad[1] == 0)
    assert landmark_3d_loss(pred, target, torch.tensor([False, False])).eq(0).all()


def test_3d_bad_input(face_lm3d):
    target = face_lm3d
    nan = target.clone()
    nan[0, 5, 1] = float("nan")
    with pytest.raises(ShapeError, match=r"pred_lm3d.*non-finite"):
        landmark_3d_loss(nan, target)
    with pytest.raises(ShapeError, match="target_lm3d"):
        landmark_3d_loss(target, target[:, :60])
    with pytest.raises(ShapeError, match="pred_lm3d"):
        landmark_3d_loss(target[..., :2], target)
    with pytest.raises(ShapeError, match="align_indices"):
        landmark_3d_loss(target[:, :60], target[:, :60])  # not iBUG-68: indices required
    with pytest.raises(ShapeError, match="align_indices"):
        landmark_3d_loss(target, target, align_indices=(1, 2))
    with pytest.raises(ShapeError, match="align_indices"):
        landmark_3d_loss(target, target, align_indices=(1, 2, 70))
    flat = target.clone()
    flat[:, list(IBUG68_ALIGN_INDICES)] = 0.0
    with pytest.raises(ShapeError, match="degenerate"):
        landmark_3d_loss(flat, target)
    with pytest.raises(ShapeError, match="valid"):
        landmark_3d_loss(target, target, torch.ones(3, dtype=torch.bool))
    assert math.isfinite(landmark_3d_loss(target[:, :60], target[:, :60], align_indices=(0, 10, 20, 30)).sum().item())
