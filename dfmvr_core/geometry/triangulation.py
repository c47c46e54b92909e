"""Multi-view triangulation of corresponding image points with calibrated cameras (numpy, metres, pixels).

The rig's cameras are calibrated (intrinsics + extrinsics), so a landmark seen by two or more of them has one metric
3D position. The reconstructor uses it to place and size the face in metres (:mod:`dfmvr_core.inference.metric_pose`):
the network sees face-normalised crops, in which a face's overall size (and hence its distance) is not visible.

Hand-written because OpenCV's ``cv2.triangulatePoints`` takes exactly two views and has no visibility mask; this is
the standard linear (DLT) method over any number of views (Hartley & Zisserman, *Multiple View Geometry*, 2nd ed.,
section 12.2), with each view's rows scaled to unit norm so that no view dominates by the size of its numbers.
"""

from __future__ import annotations

import numpy as np

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_finite

__all__ = ["projection_matrices", "reprojection_errors", "triangulate_points"]


def projection_matrices(K: np.ndarray, T_camera_from_world: np.ndarray) -> np.ndarray:
    """``(V, 3, 4)`` pinhole projections ``P_v = K_v · [R_v | t_v]`` from ``K (V, 3, 3)`` and ``(V, 4, 4)`` poses."""
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_camera_from_world, dtype=np.float64)
    if K.ndim != 3 or K.shape[1:] != (3, 3) or T.shape != (len(K), 4, 4):
        raise ShapeError(f"K / T_camera_from_world: expected (V, 3, 3) and (V, 4, 4), got {K.shape} and {T.shape}")
    return K @ T[:, :3, :]


def triangulate_points(
    points: np.ndarray, P: np.ndarray, visible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Linear N-view triangulation: each point from the views that see it.

    Args:
        points: ``(V, N, 2)`` float pixel coordinates of N corresponding points in V views.
        P: ``(V, 3, 4)`` float projection matrices (:func:`projection_matrices`), world → pixels.
        visible: ``(V, N)`` bool, which views see which points (default: all).

    Returns:
        ``(X (N, 3) float64 world points, ok (N,) bool)``: ``ok`` is False (and ``X`` NaN) for a point seen by
        fewer than two views or whose solution lies at infinity or behind a camera that sees it.

    Raises:
        ShapeError: shapes disagree or non-finite coordinates of a visible point.
    """
    points = np.asarray(points, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ShapeError(f"points: expected (V, N, 2) pixel coordinates, got {points.shape}")
    views, count = points.shape[:2]
    if P.shape != (views, 3, 4):
        raise ShapeError(f"P: expected ({views}, 3, 4) projection matrices, got {P.shape}")
    check_finite("P", P)
    visible = np.ones((views, count), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    if visible.shape != (views, count):
        raise ShapeError(f"visible: expected ({views}, {count}) bools, got {visible.shape}")
    check_finite("points (visible)", points[visible])

    # Rows u·P[2] − P[0] and v·P[2] − P[1] of every (view, point): (V, N, 2, 4), unit-normalised, zero if unseen.
    rows = points[..., None] * P[:, None, 2:3, :] - P[:, None, :2, :]
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    rows = np.where(norms > 0, rows / np.where(norms > 0, norms, 1.0), 0.0) * visible[..., None, None]
    A = rows.transpose(1, 0, 2, 3).reshape(count, 2 * views, 4)
    _, _, vh = np.linalg.svd(A)
    homogeneous = vh[:, -1, :]  # (N, 4): the right singular vector of the smallest singular value
    w = homogeneous[:, 3]
    ok = (visible.sum(0) >= 2) & (np.abs(w) > 1e-12)
    X = np.full((count, 3), np.nan)
    X[ok] = homogeneous[ok, :3] / w[ok, None]
    depth = np.einsum("vij,nj->vni", P[:, 2:3, :3], np.nan_to_num(X))[..., 0] + P[:, None, 2, 3]
    ok &= ~np.any(visible & (depth <= 0), axis=0)  # behind a camera that sees it: not a real intersection
    X[~ok] = np.nan
    return X, ok


def reprojection_errors(X: np.ndarray, points: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``(V, N)`` pixel distances between ``points (V, N, 2)`` and the projections of ``X (N, 3)`` by ``P``."""
    X = np.asarray(X, dtype=np.float64)
    homogeneous = np.concatenate([X, np.ones((len(X), 1))], axis=1)
    projected = np.einsum("vij,nj->vni", np.asarray(P, dtype=np.float64), homogeneous)
    uv = projected[..., :2] / projected[..., 2:3]
    return np.linalg.norm(uv - np.asarray(points, dtype=np.float64), axis=-1)
