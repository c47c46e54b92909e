"""Pinhole intrinsics, projection (vs OpenCV) and unprojection."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry import PinholeIntrinsics, points_in_front, project_points, unproject_pixels

FAST = settings(max_examples=50, deadline=None)
INTR = PinholeIntrinsics(fx=600.0, fy=610.0, cx=319.5, cy=239.5, width=640, height=480)

point_sets = st.lists(
    st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(0.1, 5.0)), min_size=1, max_size=8
).map(lambda p: np.asarray(p, dtype=np.float64))
intrinsics = st.builds(
    lambda fx, fy, cx, cy: PinholeIntrinsics(fx, fy, cx, cy, 640, 480),
    st.floats(100.0, 2000.0),
    st.floats(100.0, 2000.0),
    st.floats(0.0, 640.0),
    st.floats(0.0, 480.0),
)


def test_matrix_layout_dtype_device() -> None:
    K = INTR.matrix()
    assert K.dtype == torch.float32 and K.device.type == "cpu"
    assert K.tolist() == [[600.0, 0.0, 319.5], [0.0, 610.0, 239.5], [0.0, 0.0, 1.0]]
    assert INTR.matrix(dtype=torch.float64, device="cpu").dtype == torch.float64


def test_from_matrix_and_ros_camera_info_round_trip() -> None:
    assert PinholeIntrinsics.from_matrix(INTR.matrix(torch.float64), 640, 480) == INTR
    assert PinholeIntrinsics.from_matrix(INTR.matrix().numpy(), 640, 480) == INTR
    k = [600.0, 0.0, 319.5, 0.0, 610.0, 239.5, 0.0, 0.0, 1.0]
    assert PinholeIntrinsics.from_ros_camera_info(k, 640, 480) == INTR


def test_from_mapping_builds_intrinsics() -> None:
    data = {"fx": 600, "fy": 610.0, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480}
    assert from_mapping(PinholeIntrinsics, data) == INTR
    with pytest.raises(ConfigError, match=r"^cam\.fy: expected a positive finite focal length"):
        from_mapping(PinholeIntrinsics, {**data, "fy": -1.0}, path="cam")


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("fx", 0.0, r"^fx: expected a positive finite focal length in pixels, got 0\.0"),
        ("fy", float("nan"), r"^fy: expected a positive finite focal length"),
        ("fx", "600", r"^fx: expected a number"),
        ("cx", float("inf"), r"^cx: expected a finite principal point"),
        ("width", 0, r"^width: expected a positive integer image size in pixels, got 0"),
        ("height", 480.0, r"^height: expected a positive integer image size"),
        ("width", True, r"^width: expected a positive integer"),
    ],
)
def test_invalid_intrinsics_name_the_field(field: str, value: object, pattern: str) -> None:
    kwargs = {"fx": 600.0, "fy": 600.0, "cx": 319.5, "cy": 239.5, "width": 640, "height": 480, field: value}
    with pytest.raises(ConfigError, match=pattern):
        PinholeIntrinsics(**kwargs)


def test_bad_matrices_are_rejected() -> None:
    skewed = INTR.matrix().clone()
    skewed[0, 1] = 1.0
    with pytest.raises(ShapeError, match=r"^K: expected a pinhole matrix"):
        PinholeIntrinsics.from_matrix(skewed, 640, 480)
    with pytest.raises(ShapeError, match=r"^K: expected shape \(3, 3\), got \(3, 4\)"):
        PinholeIntrinsics.from_matrix(np.zeros((3, 4)), 640, 480)
    with pytest.raises(ShapeError, match=r"^k: expected 9 values"):
        PinholeIntrinsics.from_ros_camera_info([600.0, 0.0, 319.5], 640, 480)
    uncalibrated = [0.0] * 8 + [1.0]
    with pytest.raises(ConfigError, match=r"^fx: expected a positive finite focal length"):
        PinholeIntrinsics.from_ros_camera_info(uncalibrated, 640, 480)


def test_intrinsics_is_frozen() -> None:
    with pytest.raises(AttributeError):
        INTR.fx = 1.0  # type: ignore[misc]


@FAST
@given(point_sets, intrinsics)
def test_project_points_matches_opencv(points: np.ndarray, intr: PinholeIntrinsics) -> None:
    K = intr.matrix(torch.float64)
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K.numpy(), np.zeros(5))
    np.testing.assert_allclose(project_points(torch.from_numpy(points), K).numpy(), expected[:, 0], atol=1e-9)


@FAST
@given(point_sets, intrinsics, st.floats(-50.0, 50.0))
def test_unproject_inverts_project(points: np.ndarray, intr: PinholeIntrinsics, skew: float) -> None:
    K = intr.matrix(torch.float64)
    K[0, 1] = skew
    pts = torch.from_numpy(points)
    uv = project_points(pts, K)
    assert torch.allclose(unproject_pixels(uv, pts[:, 2], K), pts, atol=1e-10)


def test_batched_projection_broadcasts_and_keeps_dtype() -> None:
    points = torch.rand(2, 3, 5, 3) + torch.tensor([0.0, 0.0, 1.0])
    Ks = torch.stack((INTR.matrix(), 2 * INTR.matrix()))  # (2, 3, 3) vs batch (2, 3): broadcast on dim 0
    Ks[1, 2, 2] = 1.0
    uv = project_points(points, Ks[:, None])
    assert uv.shape == (2, 3, 5, 2) and uv.dtype == torch.float32
    assert torch.allclose(uv[1, 2], project_points(points[1, 2], Ks[1]))


def test_behind_camera_and_zero_depth_are_finite_and_masked() -> None:
    points = torch.tensor([[0.1, 0.2, 1.0], [0.1, 0.2, -1.0], [0.1, 0.2, 0.0], [0.0, 0.0, 5e-4]], requires_grad=True)
    uv = project_points(points, INTR.matrix())
    assert torch.isfinite(uv).all()
    # z < 0 is mirrored through the centre, like cv2.projectPoints
    assert uv[1].tolist() == pytest.approx([319.5 - 60.0, 239.5 - 122.0])
    mask = points_in_front(points)
    assert mask.tolist() == [True, False, False, False]
    assert points_in_front(points, near=1e-4).tolist() == [True, False, False, True]
    torch.where(mask[:, None], uv, torch.zeros_like(uv)).sum().backward()
    assert torch.isfinite(points.grad).all() and points.grad[1:].abs().sum() == 0


def test_projection_gradient_matches_finite_differences() -> None:
    points = torch.tensor([[0.1, -0.2, 0.8], [0.3, 0.05, 1.7]], dtype=torch.float64, requires_grad=True)
    K = INTR.matrix(torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(project_points, (points, K))


def test_principal_point_is_pixel_centre_convention() -> None:
    # a 640-pixel-wide image spans [-0.5, 639.5]; its centre 319.5 is where the optical axis lands.
    uv = project_points(torch.tensor([[0.0, 0.0, 2.0]]), INTR.matrix())
    assert uv[0].tolist() == [319.5, 239.5]
    assert math.isclose(float(project_points(torch.tensor([[1.0, 0.0, 2.0]]), INTR.matrix())[0, 0]), 619.5)


def test_bad_shapes_name_the_argument() -> None:
    K = INTR.matrix()
    with pytest.raises(ShapeError, match=r"^points: expected shape \(\.\.\., \*, 3\), got \(4,\)"):
        project_points(torch.zeros(4), K)
    with pytest.raises(ShapeError, match=r"^K: expected shape \(\.\.\., 3, 3\)"):
        project_points(torch.zeros(4, 3), torch.zeros(2, 3))
    with pytest.raises(ShapeError, match=r"^depth: expected \(\.\.\., N\) with N = 4"):
        unproject_pixels(torch.zeros(4, 2), torch.ones(3), K)
    with pytest.raises(ShapeError, match=r"^uv: expected shape"):
        unproject_pixels(torch.zeros(4, 3), torch.ones(4), K)
