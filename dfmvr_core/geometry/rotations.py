"""Rotation parameterisations as batched, differentiable torch functions.

Every rotation is a 3×3 matrix ``R`` of shape ``(..., 3, 3)`` acting on COLUMN vectors (``x' = R @ x``).
All functions keep the input's dtype and device, broadcast over leading dims and are differentiable.

Why hand-written although ``scipy.spatial.transform.Rotation`` does the same: these run batched on any
torch device inside autograd graphs (network pose heads, losses); scipy is numpy/CPU only and not
differentiable. The tests compare every function with scipy.

Conventions:
    * Euler angles (``euler_to_matrix``): ``(x, y, z) = (pitch, yaw, roll)`` in radians and
      ``R = Rz(z) @ Ry(y) @ Rx(x)``, i.e. rotate about x first, then y, then z, all about FIXED axes
      (scipy's extrinsic ``from_euler("xyz", ...)``). This is the convention DF-MVR inherits from
      Deep3DFace's ``compute_rotation`` (which builds ``rot_z @ rot_y @ rot_x`` and applies its transpose to
      row vectors: the same rotation).
    * Axis-angle: ``rotvec = angle * unit_axis`` (radians), right-hand rule.
    * Quaternions: ROS / ``geometry_msgs/Quaternion`` order ``(x, y, z, w)``, unit norm, returned with
      ``w >= 0``.
"""

from __future__ import annotations

import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_shape

__all__ = [
    "axis_angle_to_matrix",
    "check_rotation_matrix",
    "euler_to_matrix",
    "is_rotation_matrix",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
]


def _default_atol(dtype: torch.dtype) -> float:
    return max(1e-4, 10.0 * torch.finfo(dtype).eps)


def is_rotation_matrix(R: torch.Tensor, atol: float | None = None) -> torch.Tensor:
    """Per-matrix test for a proper rotation: ``RᵀR = I`` and ``det R = +1`` within ``atol``.

    Args:
        R: ``(..., 3, 3)`` float tensor.
        atol: absolute tolerance on every entry of ``RᵀR − I`` and on ``det R − 1``; default
            ``max(1e-4, 10·eps(dtype))``.

    Returns:
        ``(...)`` bool tensor, False also for non-finite matrices.
    """
    check_shape("R", R, (..., 3, 3))
    if not R.is_floating_point():
        R = R.to(torch.get_default_dtype())
    tol = _default_atol(R.dtype) if atol is None else atol
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    ortho_err = (R.transpose(-1, -2) @ R - eye).abs().amax(dim=(-1, -2))
    det_err = (torch.linalg.det(R) - 1.0).abs()
    return (ortho_err <= tol) & (det_err <= tol) & torch.isfinite(R).all(dim=-1).all(dim=-1)


def check_rotation_matrix(name: str, R: torch.Tensor, atol: float | None = None) -> None:
    """Raise :class:`ShapeError` unless ``R`` is ``(..., 3, 3)`` and every matrix is a proper rotation.

    The message names ``name``, how many matrices fail and the worst orthonormality / determinant error.
    Note: this reads values back to the host (one device sync).
    """
    check_shape(name, R, (..., 3, 3))
    ok = is_rotation_matrix(R, atol)
    if bool(ok.all()):
        return
    Rf = R.to(torch.float64)
    eye = torch.eye(3, dtype=torch.float64, device=R.device)
    ortho_err = float((Rf.transpose(-1, -2) @ Rf - eye).abs().amax())
    dets = torch.linalg.det(Rf)
    tol = _default_atol(R.dtype) if atol is None else atol
    bad = int((~ok).sum())
    raise ShapeError(
        f"{name}: expected rotation matrices (orthonormal, det +1, tolerance {tol:g}) of shape (..., 3, 3); "
        f"{bad} of {ok.numel()} fail (max |RᵀR − I| = {ortho_err:.3g}, det range "
        f"[{float(dets.min()):.4g}, {float(dets.max()):.4g}])"
    )


def _check_float(name: str, value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ShapeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Euler angles → rotation matrix, ``R = Rz(z) @ Ry(y) @ Rx(x)``.

    Args:
        angles: ``(..., 3)`` float, radians, ``(x, y, z) = (pitch, yaw, roll)``.

    Returns:
        ``(..., 3, 3)`` rotation matrices (same dtype/device), acting on column vectors. Equals
        ``scipy.spatial.transform.Rotation.from_euler("xyz", angles).as_matrix()`` (extrinsic xyz).
    """
    _check_float("angles", angles)
    check_shape("angles", angles, (..., 3))
    sx, sy, sz = torch.sin(angles).unbind(-1)
    cx, cy, cz = torch.cos(angles).unbind(-1)
    # fmt: off
    rows = (
        cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx,
        sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx,
        -sy, cy * sx, cy * cx,
    )
    # fmt: on
    return torch.stack(rows, dim=-1).reshape(*angles.shape[:-1], 3, 3)


def matrix_to_euler(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix → Euler angles, the inverse of :func:`euler_to_matrix`.

    Principal range: ``x, z ∈ (−π, π]``, ``y ∈ [−π/2, π/2]``. At gimbal lock (``|y| ≈ π/2``, where only
    ``x − z`` or ``x + z`` is determined) it returns ``z = 0`` and puts the whole in-plane angle in ``x``;
    the returned angles still reproduce ``R``. The branch switch happens at ``cos y < sqrt(eps(dtype))``,
    which balances the error of both branches (≈ sqrt(eps) in the matrix). Outputs and gradients are
    finite everywhere (gradients w.r.t. the unused branch are zero).

    Args:
        R: ``(..., 3, 3)`` float rotation matrices (validated: raises :class:`ShapeError` otherwise).

    Returns:
        ``(..., 3)`` float, radians, ``(x, y, z) = (pitch, yaw, roll)``.
    """
    _check_float("R", R)
    check_rotation_matrix("R", R)
    r00, r10, r20 = R[..., 0, 0], R[..., 1, 0], R[..., 2, 0]
    r21, r22 = R[..., 2, 1], R[..., 2, 2]
    r11, r12 = R[..., 1, 1], R[..., 1, 2]
    tiny = torch.finfo(R.dtype).tiny
    cos_y = torch.sqrt((r00 * r00 + r10 * r10).clamp_min(tiny))
    y = torch.atan2(-r20, cos_y)
    gimbal = cos_y < torch.finfo(R.dtype).eps ** 0.5
    one = torch.ones_like(r00)
    zero = torch.zeros_like(r00)
    # Regular branch; at gimbal lock its atan2 inputs are replaced so no 0/0 reaches autograd.
    x_reg = torch.atan2(torch.where(gimbal, zero, r21), torch.where(gimbal, one, r22))
    z_reg = torch.atan2(torch.where(gimbal, zero, r10), torch.where(gimbal, one, r00))
    # Gimbal lock with z = 0: R11 = cos(x ∓ z), R12 = −sin(x ∓ z) for sin y = ±1.
    x_gim = torch.atan2(torch.where(gimbal, -r12, zero), torch.where(gimbal, r11, one))
    x = torch.where(gimbal, x_gim, x_reg)
    z = torch.where(gimbal, zero, z_reg)
    return torch.stack((x, y, z), dim=-1)


def _hat(v: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` → skew-symmetric ``(..., 3, 3)`` with ``hat(v) @ w = v × w``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle (rotation vector) → rotation matrix (Rodrigues).

    ``R = I + A·K + B·K²`` with ``K = hat(rotvec)``, ``A = sin θ / θ``, ``B = (1 − cos θ)/θ²`` written as
    ``2 sin²(θ/2)/θ²`` (no cancellation). For ``θ² < 1e-6`` a Taylor series is used, so the value and the
    gradient are exact and finite at ``rotvec = 0``.

    Args:
        rotvec: ``(..., 3)`` float, radians (angle = norm, axis = direction).

    Returns:
        ``(..., 3, 3)`` rotation matrices, same dtype/device.
    """
    _check_float("rotvec", rotvec)
    check_shape("rotvec", rotvec, (..., 3))
    theta2 = (rotvec * rotvec).sum(-1)
    small = theta2 < 1e-6
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(theta2_safe)
    a = torch.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, torch.sin(theta) / theta)
    half_sin = torch.sin(0.5 * theta)
    b = torch.where(small, 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0, 2.0 * half_sin * half_sin / theta2_safe)
    K = _hat(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix → axis-angle (rotation vector), angle in ``[0, π]``.

    Goes through :func:`matrix_to_quaternion` (branch-selected, so stable near 180°) and
    ``θ = 2·atan2(|v|, w)``; near ``θ = 0`` a series replaces ``θ/|v|`` so the gradient stays finite at
    the identity. At exactly ``θ = π`` both ``±rotvec`` describe ``R``; either may be returned.

    Args:
        R: ``(..., 3, 3)`` float rotation matrices (validated).

    Returns:
        ``(..., 3)`` float, radians.
    """
    q = matrix_to_quaternion(R)
    v, w = q[..., :3], q[..., 3]
    s2 = (v * v).sum(-1)
    small = s2 < 1e-8
    s = torch.sqrt(torch.where(small, torch.ones_like(s2), s2))
    # 2·atan2(s, w)/s; for small s (w ≈ 1): 2/w − 2 s²/(3 w³).
    w_safe = torch.where(small, w, torch.ones_like(w))
    factor = torch.where(small, 2.0 / w_safe - 2.0 * s2 / (3.0 * w_safe**3), 2.0 * torch.atan2(s, w) / s)
    return v * factor[..., None]


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(x, y, z, w)`` (ROS order) → rotation matrix.

    The quaternion is normalised first, so any non-zero scaling of a unit quaternion gives the same
    rotation; ``q`` and ``−q`` give the same matrix.

    Args:
        q: ``(..., 4)`` float, ``(x, y, z, w)``.

    Returns:
        ``(..., 3, 3)`` rotation matrices.

    Raises:
        ShapeError: wrong shape, or a quaternion with (near-)zero norm.
    """
    _check_float("q", q)
    check_shape("q", q, (..., 4))
    norm2 = (q * q).sum(-1, keepdim=True)
    if bool((norm2 < torch.finfo(q.dtype).eps).any()):
        raise ShapeError("q: expected non-zero quaternions (x, y, z, w); got a (near-)zero norm")
    q = q / torch.sqrt(norm2)
    x, y, z, w = q.unbind(-1)
    # fmt: off
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    )
    # fmt: on
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix → unit quaternion ``(x, y, z, w)`` (ROS order) with ``w >= 0``.

    Shepperd's method: of ``4w², 4x², 4y², 4z²`` (``1 + tr R``, ``1 + 2R₀₀ − tr R``, …) the largest is
    used to take the square root, and the other components come from off-diagonal sums/differences
    divided by it (≥ 1 by construction), so 180° rotations (``w = 0``) are exact and NaN-free. For
    ``w = 0`` exactly, ``q`` and ``−q`` are both canonical; the branch's sign is returned.

    Args:
        R: ``(..., 3, 3)`` float rotation matrices (validated).

    Returns:
        ``(..., 4)`` float, unit norm, ``w >= 0``.
    """
    _check_float("R", R)
    check_rotation_matrix("R", R)
    r00, r01, r02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    r10, r11, r12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    r20, r21, r22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    trace = r00 + r11 + r22
    # 4·(component)² for w, x, y, z.
    diag = torch.stack((1 + trace, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22), dim=-1)
    # The selected entry is >= 1; clamping keeps the unselected branches finite (and their grads zero).
    root = torch.sqrt(diag.clamp_min(0.1))  # = 2·|component| on the selected branch
    rw, rx, ry, rz = root.unbind(-1)
    # Each candidate is 4·c·q for its own component c, i.e. a scaled quaternion (x, y, z, w).
    cand_w = torch.stack((r21 - r12, r02 - r20, r10 - r01, rw * rw), dim=-1) / (2 * rw)[..., None]
    cand_x = torch.stack((rx * rx, r01 + r10, r02 + r20, r21 - r12), dim=-1) / (2 * rx)[..., None]
    cand_y = torch.stack((r01 + r10, ry * ry, r12 + r21, r02 - r20), dim=-1) / (2 * ry)[..., None]
    cand_z = torch.stack((r02 + r20, r12 + r21, rz * rz, r10 - r01), dim=-1) / (2 * rz)[..., None]
    cands = torch.stack((cand_w, cand_x, cand_y, cand_z), dim=-2)  # (..., 4 branches, 4)
    best = diag.argmax(dim=-1)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(cands, -2, index).squeeze(-2)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., 3:] < 0, -q, q)
