"""Rigid transforms (4×4 homogeneous) and the boundary between the network's Euler pose and cameras.

Naming: ``T_a_from_b`` maps coordinates of a point in frame ``b`` to frame ``a``
(``X_a = R X_b + t``). All functions are batched torch, differentiable and dtype/device-preserving;
translations are in metres.
"""

from __future__ import annotations

import math

import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry.rotations import check_rotation_matrix, euler_to_matrix, matrix_to_euler
from dfmvr_core.validation import check_shape

__all__ = [
    "MODEL_TO_OPTICAL",
    "camera_to_euler_pose",
    "compose",
    "euler_pose_to_camera",
    "invert_transform",
    "make_transform",
    "transform_points",
]

MODEL_TO_OPTICAL: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),
    (0.0, -1.0, 0.0),
    (0.0, 0.0, -1.0),
)
"""``F = diag(1, −1, −1)``: model frame (x viewer's right, y up, z towards the viewer) → optical frame
(x right, y down, z forward) of a camera looking at the face. ``F`` is its own inverse."""


def make_transform(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Build homogeneous rigid transforms ``[[R, t], [0, 1]]``.

    Args:
        R: ``(..., 3, 3)`` float rotation matrices (validated: orthonormal, det +1).
        t: ``(..., 3)`` float translations, metres. Leading dims broadcast with ``R``'s.

    Returns:
        ``(..., 4, 4)`` transforms in the dtype/device of ``R``.
    """
    check_shape("t", t, (..., 3))
    check_rotation_matrix("R", R)
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    top = torch.cat((R.expand(*batch, 3, 3), t.to(R.dtype).expand(*batch, 3)[..., None]), dim=-1)
    bottom = torch.tensor((0.0, 0.0, 0.0, 1.0), dtype=R.dtype, device=R.device).expand(*batch, 1, 4)
    return torch.cat((top, bottom), dim=-2)


def _check_rigid(name: str, T: torch.Tensor) -> None:
    check_shape(name, T, (..., 4, 4))
    check_rotation_matrix(f"{name}[..., :3, :3]", T[..., :3, :3])
    bottom = torch.tensor((0.0, 0.0, 0.0, 1.0), dtype=T.dtype, device=T.device)
    if not bool((T[..., 3, :] == bottom).all()):
        raise ShapeError(f"{name}: expected rigid transforms with last row (0, 0, 0, 1)")


def invert_transform(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms: ``[[Rᵀ, −Rᵀt], [0, 1]]`` (exact, no general matrix inverse).

    Args:
        T: ``(..., 4, 4)`` float rigid transforms (validated: rotation block, last row ``(0, 0, 0, 1)``).

    Returns:
        ``(..., 4, 4)`` inverses, same dtype/device.
    """
    _check_rigid("T", T)
    Rt = T[..., :3, :3].transpose(-1, -2)
    t_inv = -(Rt @ T[..., :3, 3:4])
    top = torch.cat((Rt, t_inv), dim=-1)
    return torch.cat((top, T[..., 3:4, :]), dim=-2)


def compose(first: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
    """Chain transforms: ``compose(T_a_from_b, T_b_from_c) = T_a_from_c`` (matrix product, left to right).

    Args:
        first, *rest: ``(..., 4, 4)`` float transforms; leading dims broadcast.

    Returns:
        ``(..., 4, 4)`` product ``first @ rest[0] @ rest[1] @ …``.
    """
    check_shape("first", first, (..., 4, 4))
    out = first
    for i, T in enumerate(rest):
        check_shape(f"rest[{i}]", T, (..., 4, 4))
        out = out @ T
    return out


def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Apply ``X' = R X + t`` to point sets.

    ``R`` is not validated here (hot path); pass rotations (or use :func:`make_transform` once).

    Args:
        points: ``(..., N, 3)`` float, metres, source frame.
        R: ``(..., 3, 3)`` float, target-from-source rotation.
        t: ``(..., 3)`` float, metres, target-from-source translation. Leading dims broadcast.

    Returns:
        ``(..., N, 3)`` points in the target frame.
    """
    check_shape("points", points, (..., None, 3))
    check_shape("R", R, (..., 3, 3))
    check_shape("t", t, (..., 3))
    return points @ R.transpose(-1, -2) + t[..., None, :]


def _check_distance(reference_distance: float) -> float:
    d = float(reference_distance)
    if not (math.isfinite(d) and d > 0):
        raise ShapeError(
            f"reference_distance: expected a positive finite distance in metres, got {reference_distance!r}"
        )
    return d


def _flip(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(MODEL_TO_OPTICAL, dtype=like.dtype, device=like.device)


def euler_pose_to_camera(
    angles: torch.Tensor, translation: torch.Tensor, reference_distance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network pose (Euler angles + translation in the model frame) → camera-from-model transform.

    ``X_cam = F · (Rz Ry Rx · X_model + translation) + (0, 0, d)`` with ``F = diag(1, −1, −1)``
    (:data:`MODEL_TO_OPTICAL`). Zero angles and translation therefore put the face frontal at distance
    ``d`` on the optical axis, facing the camera: the nose (model +z) is nearer than the face centre, model
    +y (up) appears up in the image (smaller v) and model +x at larger u. This mirrors Deep3DFace's camera
    at z = 10 looking down −z, but in metres and in optical axes.

    Args:
        angles: ``(..., 3)`` float, radians, (pitch, yaw, roll) as in :func:`euler_to_matrix`.
        translation: ``(..., 3)`` float, metres, model-frame axes (x right, y up, z towards the camera).
        reference_distance: ``d``, metres, > 0.

    Returns:
        ``(R_cam, t_cam)``: ``(..., 3, 3)`` and ``(..., 3)``, camera(optical)-from-model.
    """
    check_shape("translation", translation, (..., 3))
    d = _check_distance(reference_distance)
    F = _flip(angles)
    R_cam = F @ euler_to_matrix(angles)
    offset = torch.tensor((0.0, 0.0, d), dtype=translation.dtype, device=translation.device)
    t_cam = translation * torch.diagonal(F).to(translation.dtype) + offset
    return R_cam, t_cam


def camera_to_euler_pose(
    R_cam: torch.Tensor, t_cam: torch.Tensor, reference_distance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inverse of :func:`euler_pose_to_camera`.

    Args:
        R_cam: ``(..., 3, 3)`` float, camera(optical)-from-model rotation (validated).
        t_cam: ``(..., 3)`` float, metres, camera frame.
        reference_distance: ``d``, metres, > 0 (the same as used for the forward map).

    Returns:
        ``(angles, translation)``: ``(..., 3)`` radians (principal range of :func:`matrix_to_euler`) and
        ``(..., 3)`` metres in model-frame axes.
    """
    check_shape("t_cam", t_cam, (..., 3))
    check_rotation_matrix("R_cam", R_cam)
    d = _check_distance(reference_distance)
    F = _flip(R_cam)
    angles = matrix_to_euler(F @ R_cam)
    offset = torch.tensor((0.0, 0.0, d), dtype=t_cam.dtype, device=t_cam.device)
    translation = (t_cam - offset) * torch.diagonal(F).to(t_cam.dtype)
    return angles, translation
