"""Rotation parameterisations: round trips, agreement with scipy, edge cases, bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry import (
    axis_angle_to_matrix,
    check_rotation_matrix,
    euler_to_matrix,
    is_rotation_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_to_matrix,
)

FAST = settings(max_examples=50, deadline=None)
angle = st.floats(-math.pi, math.pi, allow_nan=False)
seeds = st.integers(0, 2**32 - 1)


def _t(x: np.ndarray | list) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    n = np.linalg.norm(a)
    return a / n if n > 1e-3 else np.array([0.0, 0.0, 1.0])


unit_vectors = st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 3).map(_unit)


# ---------------------------------------------------------------- Euler


def test_scipy_extrinsic_xyz_equals_rz_ry_rx() -> None:
    """The claim in the docstring: scipy 'xyz' (extrinsic) is Rz(z) @ Ry(y) @ Rx(x)."""
    x, y, z = 0.3, -0.7, 1.1
    composed = (
        Rotation.from_euler("z", z).as_matrix()
        @ Rotation.from_euler("y", y).as_matrix()
        @ Rotation.from_euler("x", x).as_matrix()
    )
    np.testing.assert_allclose(Rotation.from_euler("xyz", [x, y, z]).as_matrix(), composed, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(_t([x, y, z])).numpy(), composed, atol=1e-12)


@FAST
@given(st.tuples(angle, angle, angle))
def test_euler_to_matrix_matches_scipy(angles: tuple[float, float, float]) -> None:
    expected = Rotation.from_euler("xyz", angles).as_matrix()
    np.testing.assert_allclose(euler_to_matrix(_t(angles)).numpy(), expected, atol=1e-12)


def test_euler_yaw_turns_model_z_towards_model_x() -> None:
    R = euler_to_matrix(_t([0.0, math.pi / 2, 0.0]))
    np.testing.assert_allclose((R @ _t([0.0, 0.0, 1.0])).numpy(), [1.0, 0.0, 0.0], atol=1e-12)


@FAST
@given(
    st.floats(-math.pi + 1e-6, math.pi, allow_nan=False),
    st.floats(-math.pi / 2 + 0.05, math.pi / 2 - 0.05, allow_nan=False),
    st.floats(-math.pi + 1e-6, math.pi, allow_nan=False),
)
def test_euler_round_trip_away_from_gimbal_lock(x: float, y: float, z: float) -> None:
    recovered = matrix_to_euler(euler_to_matrix(_t([x, y, z])))
    np.testing.assert_allclose(recovered.numpy(), [x, y, z], atol=1e-9)


@FAST
@given(seeds)
def test_matrix_to_euler_matches_scipy(seed: int) -> None:
    rot = Rotation.random(random_state=seed)
    ours = matrix_to_euler(_t(rot.as_matrix())).numpy()
    np.testing.assert_allclose(ours, rot.as_euler("xyz"), atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_matrix_to_euler_gimbal_lock_is_finite_and_reconstructs(dtype: torch.dtype, sign: float) -> None:
    angles = torch.tensor([[0.4, sign * math.pi / 2, -1.2], [-2.0, sign * math.pi / 2, 0.7]], dtype=dtype)
    R = euler_to_matrix(angles).requires_grad_(True)
    recovered = matrix_to_euler(R)
    assert recovered.dtype == dtype
    assert torch.isfinite(recovered).all()
    assert torch.allclose(recovered[:, 2], torch.zeros(2, dtype=dtype))  # documented choice z = 0
    tol = 1e-3 if dtype == torch.float32 else 1e-7
    assert torch.allclose(euler_to_matrix(recovered), R, atol=tol)
    recovered.sum().backward()
    assert torch.isfinite(R.grad).all()


def test_matrix_to_euler_gradient_matches_finite_difference() -> None:
    angles = torch.tensor([0.3, -0.4, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: matrix_to_euler(euler_to_matrix(a)), (angles,))


# ---------------------------------------------------------------- axis-angle


@FAST
@given(unit_vectors, st.floats(0.0, math.pi, allow_nan=False))
def test_axis_angle_to_matrix_matches_scipy(axis: np.ndarray, theta: float) -> None:
    rotvec = axis * theta
    np.testing.assert_allclose(
        axis_angle_to_matrix(_t(rotvec)).numpy(), Rotation.from_rotvec(rotvec).as_matrix(), atol=1e-12
    )


@FAST
@given(unit_vectors, st.floats(0.0, math.pi - 1e-3, allow_nan=False))
def test_axis_angle_round_trip(axis: np.ndarray, theta: float) -> None:
    rotvec = axis * theta
    recovered = matrix_to_axis_angle(axis_angle_to_matrix(_t(rotvec)))
    np.testing.assert_allclose(recovered.numpy(), rotvec, atol=1e-9)
    np.testing.assert_allclose(recovered.numpy(), Rotation.from_rotvec(rotvec).as_rotvec(), atol=1e-9)


@FAST
@given(unit_vectors)
def test_axis_angle_at_180_degrees_reconstructs(axis: np.ndarray) -> None:
    R = axis_angle_to_matrix(_t(axis * math.pi))
    rotvec = matrix_to_axis_angle(R)
    assert torch.isfinite(rotvec).all()
    assert abs(float(torch.linalg.vector_norm(rotvec)) - math.pi) < 1e-7
    np.testing.assert_allclose(axis_angle_to_matrix(rotvec).numpy(), R.numpy(), atol=1e-9)


@pytest.mark.parametrize("theta", [0.0, 1e-9, 1e-5, 1e-3, 0.1])
def test_axis_angle_small_angles_are_accurate(theta: float) -> None:
    rotvec = np.array([0.6, -0.8, 0.0]) * theta
    R = axis_angle_to_matrix(_t(rotvec))
    np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(rotvec).as_matrix(), atol=1e-15, rtol=0)
    np.testing.assert_allclose(matrix_to_axis_angle(R).numpy(), rotvec, atol=1e-12 * max(theta, 1e-3))


def test_axis_angle_gradients_finite_at_zero() -> None:
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(axis_angle_to_matrix, v)  # (3, 3, 3)
    # dR/dv at 0 is hat(e_i): e.g. ∂R[2, 1]/∂v_x = 1, ∂R[1, 2]/∂v_x = -1.
    assert torch.isfinite(jac).all()
    assert jac[2, 1, 0] == pytest.approx(1.0) and jac[1, 2, 0] == pytest.approx(-1.0)
    R = torch.eye(3, dtype=torch.float64, requires_grad=True)
    matrix_to_axis_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()
    assert torch.autograd.gradcheck(
        axis_angle_to_matrix, (torch.tensor([1e-5, -2e-5, 3e-5], dtype=torch.float64, requires_grad=True),)
    )


# ---------------------------------------------------------------- quaternions


@FAST
@given(seeds)
def test_quaternion_matches_scipy_xyzw(seed: int) -> None:
    rot = Rotation.random(random_state=seed)
    expected = rot.as_quat()  # scipy default is scalar-last (x, y, z, w), like ROS
    expected = expected if expected[3] >= 0 else -expected
    q = matrix_to_quaternion(_t(rot.as_matrix()))
    np.testing.assert_allclose(q.numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(quaternion_to_matrix(_t(expected)).numpy(), rot.as_matrix(), atol=1e-12)


@FAST
@given(
    st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 4).filter(lambda q: sum(c * c for c in q) > 1e-2),
    st.booleans(),
)
def test_quaternion_round_trip_including_180_degrees(q: tuple[float, ...], half_turn: bool) -> None:
    q_arr = np.asarray(q)
    if half_turn:  # w = 0: a 180° rotation
        q_arr[3] = 0.0
        if np.linalg.norm(q_arr) < 1e-3:
            q_arr[0] = 1.0
    q_arr /= np.linalg.norm(q_arr)
    R = quaternion_to_matrix(_t(q_arr))
    assert bool(is_rotation_matrix(R, atol=1e-10))
    back = matrix_to_quaternion(R).numpy()
    assert np.isfinite(back).all() and back[3] >= 0
    assert abs(np.linalg.norm(back) - 1.0) < 1e-12
    assert min(np.abs(back - q_arr).max(), np.abs(back + q_arr).max()) < 1e-9  # q and -q are the same rotation


@pytest.mark.parametrize("diag", [(1, -1, -1), (-1, 1, -1), (-1, -1, 1)])
def test_matrix_to_quaternion_exact_half_turns(diag: tuple[int, int, int]) -> None:
    R = torch.diag(torch.tensor(diag, dtype=torch.float32)).requires_grad_(True)
    q = matrix_to_quaternion(R)
    expected = torch.zeros(4)
    expected[diag.index(1)] = 1.0
    assert torch.allclose(q.abs(), expected)
    q.sum().backward()
    assert torch.isfinite(R.grad).all()


def test_quaternion_to_matrix_normalises_and_preserves_dtype_and_batch() -> None:
    q = torch.tensor([[0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 3.0]], dtype=torch.float64)
    R = quaternion_to_matrix(q)
    assert R.shape == (2, 3, 3) and R.dtype == torch.float64
    assert torch.allclose(R[0], torch.eye(3, dtype=torch.float64))
    assert torch.allclose(R[1], euler_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64)))


def test_float32_batched_outputs_keep_dtype() -> None:
    angles = torch.rand(4, 5, 3) * 2 - 1
    R = euler_to_matrix(angles)
    assert R.shape == (4, 5, 3, 3) and R.dtype == torch.float32
    for out, shape in (
        (matrix_to_euler(R), (4, 5, 3)),
        (matrix_to_quaternion(R), (4, 5, 4)),
        (matrix_to_axis_angle(R), (4, 5, 3)),
    ):
        assert out.shape == shape and out.dtype == torch.float32
    assert torch.allclose(matrix_to_euler(R), angles, atol=1e-5)


# ---------------------------------------------------------------- validation


def test_is_rotation_matrix_rejects_scale_and_reflection() -> None:
    R = euler_to_matrix(torch.tensor([0.1, 0.2, 0.3]))
    batch = torch.stack((R, 1.01 * R, R @ torch.diag(torch.tensor([1.0, 1.0, -1.0])), torch.full((3, 3), float("nan"))))
    assert is_rotation_matrix(batch).tolist() == [True, False, False, False]


def test_check_rotation_matrix_message_names_argument() -> None:
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0]))
    with pytest.raises(ShapeError, match=r"R_cam: expected rotation matrices.*det range \[-1"):
        check_rotation_matrix("R_cam", reflection)
    with pytest.raises(ShapeError, match=r"^R: expected rotation matrices"):
        matrix_to_quaternion(reflection)
    with pytest.raises(ShapeError, match=r"^R: expected rotation matrices"):
        matrix_to_euler(2.0 * torch.eye(3))


@pytest.mark.parametrize(
    ("func", "arg", "pattern"),
    [
        (euler_to_matrix, torch.zeros(2, 4), r"angles: expected shape \(\.\.\., 3\), got \(2, 4\)"),
        (axis_angle_to_matrix, torch.zeros(3, 2), r"rotvec: expected shape \(\.\.\., 3\)"),
        (quaternion_to_matrix, torch.zeros(3), r"q: expected shape \(\.\.\., 4\)"),
        (matrix_to_axis_angle, torch.zeros(3, 4), r"R: expected shape \(\.\.\., 3, 3\)"),
        (euler_to_matrix, torch.zeros(3, dtype=torch.int64), r"angles: expected a floating-point tensor"),
    ],
)
def test_bad_shapes_name_the_argument(
    func: Callable[[torch.Tensor], torch.Tensor], arg: torch.Tensor, pattern: str
) -> None:
    with pytest.raises(ShapeError, match=pattern):
        func(arg)


def test_zero_quaternion_raises() -> None:
    with pytest.raises(ShapeError, match=r"q: expected non-zero quaternions"):
        quaternion_to_matrix(torch.zeros(2, 4))
