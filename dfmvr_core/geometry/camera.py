"""Pinhole camera intrinsics, projection and unprojection (no lens distortion).

Frames and units: 3D points are in metres in the camera's OPTICAL frame (x right, y down, z forward, as
OpenCV and ROS ``*_optical_frame``). Pixel coordinates follow OpenCV: integer coordinates are pixel
centres, so a W×H image spans ``[−0.5, W − 0.5] × [−0.5, H − 0.5]``.

Why hand-written although ``cv2.projectPoints`` exists: these are batched torch functions that run on any
device and are differentiable (renderer and landmark losses); the tests compare with OpenCV.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.validation import check_shape

__all__ = ["PinholeIntrinsics", "points_in_front", "project_points", "unproject_pixels"]


def _require_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class PinholeIntrinsics:
    """Intrinsics of an undistorted pinhole camera (OpenCV pixel convention, pixel centres at integers).

    Attributes:
        fx, fy: focal lengths in pixels, positive and finite.
        cx, cy: principal point in pixels, finite (not required to lie inside the image).
        width, height: image size in pixels, positive ints.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            value = _require_real(name, getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}: expected a positive finite focal length in pixels, got {value!r}")
        for name in ("cx", "cy"):
            value = _require_real(name, getattr(self, name))
            if not math.isfinite(value):
                raise ConfigError(f"{name}: expected a finite principal point coordinate in pixels, got {value!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ConfigError(f"{name}: expected a positive integer image size in pixels, got {value!r}")
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("width", "height"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def matrix(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """The camera matrix ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``, ``(3, 3)`` tensor, pixels."""
        return torch.tensor(
            ((self.fx, 0.0, self.cx), (0.0, self.fy, self.cy), (0.0, 0.0, 1.0)), dtype=dtype, device=device
        )

    @classmethod
    def from_matrix(cls, K: torch.Tensor | np.ndarray, width: int, height: int) -> PinholeIntrinsics:
        """Build from a ``(3, 3)`` camera matrix (zero skew, last row ``(0, 0, 1)``).

        Raises:
            ShapeError: ``K`` is not ``(3, 3)``, has skew or a different last row.
            ConfigError: invalid focal lengths / principal point / sizes (named field).
        """
        check_shape("K", K, (3, 3))
        k = K.detach().cpu().double().numpy() if isinstance(K, torch.Tensor) else np.asarray(K, dtype=np.float64)
        if k[0, 1] != 0.0 or k[1, 0] != 0.0 or tuple(k[2]) != (0.0, 0.0, 1.0):
            raise ShapeError(
                f"K: expected a pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] without skew, got {k.tolist()}"
            )
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), width, height)

    @classmethod
    def from_ros_camera_info(cls, k: Sequence[float], width: int, height: int) -> PinholeIntrinsics:
        """Build from ``sensor_msgs/CameraInfo``: ``k`` is the 9-element row-major ``K``, ``width``/``height``
        in pixels. The distortion model is NOT read: use rectified images (``image_rect``) or zero ``d``.

        Raises:
            ShapeError: ``k`` does not have 9 entries or describes a skewed matrix.
            ConfigError: e.g. an uncalibrated camera (all-zero ``k`` gives ``fx = 0``).
        """
        values = np.asarray(k, dtype=np.float64)
        if values.shape != (9,):
            raise ShapeError(f"k: expected 9 values (row-major 3×3 camera matrix), got shape {values.shape}")
        return cls.from_matrix(values.reshape(3, 3), width, height)


def project_points(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Project camera-frame points to pixels: ``uv = (K X)[:2] / (K X)[2]``.

    Behaviour for ``z <= 0``: like ``cv2.projectPoints`` the points are divided by their (negative) depth,
    i.e. mirrored through the optical centre; ``|z| < 1e-12`` m is replaced by ``+1e-12`` so outputs and
    gradients stay finite. Those values are meaningless: callers must mask them with
    :func:`points_in_front` (masking, not dropping, keeps batches rectangular).

    Args:
        points: ``(..., N, 3)`` float, metres, camera optical frame.
        K: ``(..., 3, 3)`` float camera matrices, pixels (leading dims broadcast with ``points``').

    Returns:
        ``(..., N, 2)`` float pixels ``(u, v)``, OpenCV convention.
    """
    check_shape("points", points, (..., None, 3))
    check_shape("K", K, (..., 3, 3))
    p = points @ K.transpose(-1, -2).to(points.dtype)
    z = p[..., 2:3]
    z = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    return p[..., :2] / z


def points_in_front(points: torch.Tensor, near: float = 1e-3) -> torch.Tensor:
    """Mask of points in front of the camera: ``z > near``.

    Args:
        points: ``(..., N, 3)`` float, metres, camera optical frame.
        near: metres.

    Returns:
        ``(..., N)`` bool.
    """
    check_shape("points", points, (..., None, 3))
    return points[..., 2] > near


def unproject_pixels(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Back-project pixels with known depth: ``X = depth · K⁻¹ (u, v, 1)``.

    ``depth`` is the z coordinate (distance along the optical axis, as in a ROS depth image), not the ray
    length. ``K`` must be upper triangular with last row ``(0, 0, 1)`` (skew allowed); it is inverted in
    closed form, so this is exact and differentiable.

    Args:
        uv: ``(..., N, 2)`` float pixels, OpenCV convention.
        depth: ``(..., N)`` float, metres.
        K: ``(..., 3, 3)`` float camera matrices.

    Returns:
        ``(..., N, 3)`` float, metres, camera optical frame.
    """
    check_shape("uv", uv, (..., None, 2))
    check_shape("depth", depth, (..., None))
    check_shape("K", K, (..., 3, 3))
    if depth.shape[-1] != uv.shape[-2]:
        raise ShapeError(f"depth: expected (..., N) with N = {uv.shape[-2]} (from uv), got {tuple(depth.shape)}")
    K = K.to(uv.dtype)
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    skew, cx, cy = K[..., 0, 1, None], K[..., 0, 2, None], K[..., 1, 2, None]
    y_n = (uv[..., 1] - cy) / fy
    x_n = (uv[..., 0] - cx - skew * y_n) / fx
    return torch.stack((x_n, y_n, torch.ones_like(x_n)), dim=-1) * depth[..., None]
