"""Rigid transforms and the network-pose ⇄ camera boundary."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry import (
    axis_angle_to_matrix,
    camera_to_euler_pose,
    compose,
    euler_pose_to_camera,
    euler_to_matrix,
    invert_transform,
    make_transform,
    project_points,
    transform_points,
)

FAST = settings(max_examples=50, deadline=None)
coord = st.floats(-2.0, 2.0, allow_nan=False)
vec3 = st.tuples(coord, coord, coord).map(lambda v: torch.tensor(v, dtype=torch.float64))
rotvecs = st.tuples(*[st.floats(-3.0, 3.0, allow_nan=False)] * 3).map(lambda v: torch.tensor(v, dtype=torch.float64))
K = torch.tensor([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


@FAST
@given(rotvecs, vec3)
def test_invert_transform_round_trip(rotvec: torch.Tensor, t: torch.Tensor) -> None:
    T = make_transform(axis_angle_to_matrix(rotvec), t)
    T_inv = invert_transform(T)
    eye = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(T @ T_inv, eye, atol=1e-12)
    assert torch.allclose(T_inv @ T, eye, atol=1e-12)
    assert torch.allclose(T_inv, torch.linalg.inv(T), atol=1e-12)
    assert torch.allclose(invert_transform(T_inv), T, atol=1e-12)


@FAST
@given(rotvecs, vec3, rotvecs, vec3)
def test_transform_points_and_compose_agree_with_homogeneous_matrices(
    rv1: torch.Tensor, t1: torch.Tensor, rv2: torch.Tensor, t2: torch.Tensor
) -> None:
    R1, R2 = axis_angle_to_matrix(rv1), axis_angle_to_matrix(rv2)
    T_ab, T_bc = make_transform(R1, t1), make_transform(R2, t2)
    points_c = torch.tensor([[0.1, -0.2, 0.5], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    homogeneous = torch.cat((points_c, torch.ones(3, 1, dtype=torch.float64)), dim=-1)
    expected = (compose(T_ab, T_bc) @ homogeneous.T).T[:, :3]
    sequential = transform_points(transform_points(points_c, R2, t2), R1, t1)
    assert torch.allclose(sequential, expected, atol=1e-12)


def test_make_transform_broadcasts_and_keeps_dtype() -> None:
    R = euler_to_matrix(torch.tensor([0.1, 0.2, 0.3]))
    t = torch.arange(15, dtype=torch.float32).reshape(5, 3)
    T = make_transform(R, t)
    assert T.shape == (5, 4, 4) and T.dtype == torch.float32
    assert torch.equal(T[:, :3, 3], t) and torch.equal(T[2, :3, :3], R)
    assert torch.equal(T[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(5, 4))


def test_compose_is_left_to_right() -> None:
    A = make_transform(torch.eye(3, dtype=torch.float64), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    B = make_transform(
        euler_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64)),
        torch.zeros(3, dtype=torch.float64),
    )
    # compose(A, B) applies B first: the origin stays, then moves +x.
    assert torch.allclose(compose(A, B)[:3, 3], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    assert torch.allclose(compose(B, A)[:3, 3], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.equal(compose(A), A)


@FAST
@given(
    st.tuples(
        st.floats(-math.pi + 1e-6, math.pi, allow_nan=False),
        st.floats(-1.5, 1.5, allow_nan=False),
        st.floats(-math.pi + 1e-6, math.pi, allow_nan=False),
    ).map(lambda v: torch.tensor(v, dtype=torch.float64)),
    vec3,
    st.floats(0.1, 5.0, allow_nan=False),
)
def test_euler_pose_round_trip(angles: torch.Tensor, translation: torch.Tensor, d: float) -> None:
    R_cam, t_cam = euler_pose_to_camera(angles, translation, d)
    angles_back, translation_back = camera_to_euler_pose(R_cam, t_cam, d)
    assert torch.allclose(angles_back, angles, atol=1e-9)
    assert torch.allclose(translation_back, translation, atol=1e-12)


def test_euler_pose_matches_the_documented_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    angles = torch.rand(4, 3, generator=gen, dtype=torch.float64) - 0.5
    translation = torch.rand(4, 3, generator=gen, dtype=torch.float64) * 0.1
    X_model = torch.rand(4, 7, 3, generator=gen, dtype=torch.float64) * 0.1
    d = 0.7
    R_cam, t_cam = euler_pose_to_camera(angles, translation, d)
    F = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    inner = X_model @ euler_to_matrix(angles).transpose(-1, -2) + translation[:, None]
    expected = inner @ F.T + torch.tensor([0.0, 0.0, d], dtype=torch.float64)
    assert torch.allclose(transform_points(X_model, R_cam, t_cam), expected, atol=1e-14)
    assert torch.allclose(torch.linalg.det(R_cam), torch.ones(4, dtype=torch.float64))


def test_zero_pose_is_a_frontal_face_facing_the_camera() -> None:
    d = 0.7
    R_cam, t_cam = euler_pose_to_camera(torch.zeros(3), torch.zeros(3), d)
    centre, nose, up, right = torch.tensor([[0.0, 0, 0], [0, 0, 0.1], [0, 0.1, 0], [0.1, 0, 0]]).unbind(0)
    pts = transform_points(torch.stack((centre, nose, up, right)), R_cam, t_cam)
    assert pts[0].tolist() == pytest.approx([0.0, 0.0, d])
    assert pts[1, 2] < pts[0, 2]  # nose (model +z) is nearer the camera
    uv = project_points(pts, K.float())
    assert uv[0].tolist() == pytest.approx([319.5, 239.5])
    assert uv[2, 1] < uv[0, 1]  # model up appears up in the image (smaller v)
    assert uv[2, 0] == pytest.approx(uv[0, 0])
    assert uv[3, 0] > uv[0, 0]  # model +x (viewer's right) appears right


def test_gradients_flow_through_euler_pose() -> None:
    angles = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64, requires_grad=True)
    translation = torch.tensor([0.01, 0.02, -0.03], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, t: euler_pose_to_camera(a, t, 0.7), (angles, translation))


def test_bad_inputs_name_the_argument() -> None:
    R = torch.eye(3)
    with pytest.raises(ShapeError, match=r"^R: expected rotation matrices"):
        make_transform(2 * R, torch.zeros(3))
    with pytest.raises(ShapeError, match=r"^t: expected shape \(\.\.\., 3\), got \(4,\)"):
        make_transform(R, torch.zeros(4))
    bad = torch.eye(4)
    bad[3, 0] = 1.0
    with pytest.raises(ShapeError, match=r"^T: expected rigid transforms with last row"):
        invert_transform(bad)
    with pytest.raises(ShapeError, match=r"^rest\[0\]: expected shape \(\.\.\., 4, 4\)"):
        compose(torch.eye(4), torch.eye(3))
    with pytest.raises(ShapeError, match=r"^points: expected shape \(\.\.\., \*, 3\)"):
        transform_points(torch.zeros(5, 2), R, torch.zeros(3))
    with pytest.raises(ShapeError, match=r"^reference_distance: expected a positive finite distance"):
        euler_pose_to_camera(torch.zeros(3), torch.zeros(3), 0.0)
    with pytest.raises(ShapeError, match=r"^reference_distance"):
        camera_to_euler_pose(R, torch.zeros(3), float("nan"))
    with pytest.raises(ShapeError, match=r"^R_cam: expected rotation matrices"):
        camera_to_euler_pose(torch.diag(torch.tensor([1.0, 1.0, -1.0])), torch.zeros(3), 0.7)
    # identity camera pose = the face moved d along model +z (towards the camera) onto the optical centre
    assert camera_to_euler_pose(R, torch.zeros(3), 0.7)[1].tolist() == pytest.approx([0.0, 0.0, 0.7])
