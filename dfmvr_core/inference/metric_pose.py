"""Metric head pose and face size from the calibrated rig: triangulated landmarks ↔ the reconstructed shape.

DF-MVR regresses each view's pose in the canonical camera of a crop normalised to the face's box, so the face's
overall size is not in its input: a 5 % larger face 5 % farther away gives the same crops, and the network answers
with the training faces' average size at the matching distance (ICT identities vary by 5.7 % in size, std). A rig
is calibrated, though: a landmark seen by two or more cameras has one metric position (:mod:`~dfmvr_core.geometry.
triangulation`). Fitting the best similarity (Umeyama) from the reconstructed shape's landmarks to the triangulated
ones gives the head pose in metres and the factor that brings the shape to the face's real size.

Only the inner 51 iBUG landmarks (17-67: brows, nose, eyes, mouth) are used: the jaw line (0-16) follows the
silhouette in turned views, so the same index is not the same surface point in two cameras.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dfmvr_core.geometry.alignment import similarity_align
from dfmvr_core.geometry.triangulation import projection_matrices, reprojection_errors, triangulate_points

__all__ = ["METRIC_LANDMARKS", "MetricPose", "metric_pose_from_landmarks"]

METRIC_LANDMARKS = np.arange(17, 68)
"""iBUG landmarks triangulated for the metric pose: brows, nose, eyes and mouth (not the jaw line 0-16)."""


@dataclass(frozen=True)
class MetricPose:
    """The similarity that maps the reconstructed shape onto the triangulated landmarks.

    Attributes:
        T_rig_from_model: ``(4, 4)`` float64 rigid head pose, metres (rotation and translation of the similarity).
        scale: the factor that brings the reconstructed shape to the face's metric size (apply it in the model
            frame: ``vertices_rig = R · (scale · vertices_model) + t``).
        points: how many landmarks were triangulated and used.
        residual_mm: RMS distance between the triangulated landmarks and the fitted shape's, mm.
        reprojection_px: median reprojection error of the triangulated landmarks, pixels.
    """

    T_rig_from_model: np.ndarray
    scale: float
    points: int
    residual_mm: float
    reprojection_px: float


def metric_pose_from_landmarks(
    landmarks: np.ndarray,
    views: np.ndarray,
    K: np.ndarray,
    T_camera_from_rig: np.ndarray,
    model_landmarks: np.ndarray,
    *,
    indices: np.ndarray = METRIC_LANDMARKS,
    min_points: int = 12,
    scale_range: tuple[float, float] = (0.75, 1.33),
    max_reprojection_px: float = 20.0,
) -> tuple[MetricPose | None, str]:
    """Metric head pose and scale from the views' 68 landmarks (see the module docstring).

    Args:
        landmarks: ``(V, 68, 2)`` float pixels of each view's landmarks in its full image (NaN rows allowed for
            views not in ``views``).
        views: ``(V,)`` bool, the views whose landmarks to use (at least two for a triangulation).
        K: ``(V, 3, 3)`` intrinsics of the full images.
        T_camera_from_rig: ``(V, 4, 4)`` extrinsics, metres.
        model_landmarks: ``(68, 3)`` the reconstructed shape's landmark vertices, model frame, metres.
        indices: landmarks to use (default :data:`METRIC_LANDMARKS`).
        min_points: fewer triangulated landmarks than this give no result.
        scale_range: a fitted scale outside it is refused (detector failure or a mismatched calibration, not a face
            size).
        max_reprojection_px: a median reprojection error above it is refused (inconsistent views).

    Returns:
        ``(MetricPose, "")``, or ``(None, reason)`` when it cannot be trusted; the caller keeps the network's pose.
    """
    views = np.asarray(views, dtype=bool)
    if views.sum() < 2:
        return None, f"{int(views.sum())} view(s) with landmarks; triangulation needs two"
    idx = np.asarray(indices, dtype=np.int64)
    P = projection_matrices(np.asarray(K)[views], np.asarray(T_camera_from_rig)[views])
    points = np.asarray(landmarks, dtype=np.float64)[views][:, idx]
    X, ok = triangulate_points(points, P)
    if ok.sum() < min_points:
        return None, f"{int(ok.sum())} landmarks triangulated, fewer than {min_points}"
    reprojection = float(np.median(reprojection_errors(X[ok], points[:, ok], P)))
    if reprojection > max_reprojection_px:
        return None, f"median reprojection error {reprojection:.1f} px > {max_reprojection_px} px (views disagree)"
    source = torch.as_tensor(np.asarray(model_landmarks, dtype=np.float64)[idx][ok])[None]
    target = torch.as_tensor(X[ok])[None]
    scale, R, t = (v[0].numpy() for v in similarity_align(source, target))
    scale = float(scale)
    if not scale_range[0] <= scale <= scale_range[1]:
        return None, f"fitted scale {scale:.3f} outside {scale_range} (not a plausible face size)"
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    fitted = scale * source[0].numpy() @ R.T + t
    residual = float(np.sqrt(np.mean(np.sum((fitted - X[ok]) ** 2, axis=1))) * 1000.0)
    return MetricPose(T, scale, int(ok.sum()), residual, reprojection), ""
