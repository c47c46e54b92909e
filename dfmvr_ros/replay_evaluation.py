# Copyright 2026 dfmvr maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Replay evaluation against a bag's ground truth (:mod:`dfmvr_ros.replay_ground_truth`), without ROS.

Per synchronized set: the paper's point-to-plane RMSE and the NoW scan-to-mesh distance
(:func:`dfmvr_core.evaluation.evaluate_pair`: landmark alignment, crop to 95 mm around the ground-truth nose tip =
iBUG landmark 30, rigid ICP; paper section V-A), and the head-pose error of the fused pose ``T_rig_from_model``
against the ground-truth pose: the distance between the two model origins (mm) and the angle of the relative
rotation (degrees). Both meshes are in the rig frame, metres.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from dfmvr_core.evaluation import METRIC_DEFINITIONS, evaluate_pair

__all__ = [
    "POSE_METRIC_DEFINITIONS",
    "REFERENCE_METRIC_DEFINITIONS",
    "GroundTruthBuffer",
    "SetEvaluation",
    "evaluate_set",
    "pose_errors",
    "summary",
]

POSE_METRIC_DEFINITIONS = {
    "position_error_mm": "distance between the predicted and ground-truth model origins in the rig frame, mm",
    "rotation_error_deg": "angle of R_pred · R_gt^T (the relative rotation of the fused head pose), degrees",
}
REFERENCE_METRIC_DEFINITIONS = {
    "mean_face_rmse_mm": "rmse_mm of the morphable model's mean face against the same ground truth (same alignment, "
    "crop and ICP): the score a reconstruction must beat, mm",
}


def pose_errors(T_pred: np.ndarray, T_gt: np.ndarray) -> tuple[float, float]:
    """``(position error mm, rotation error degrees)`` of two ``(4, 4)`` rigid transforms (metres)."""
    T_pred = np.asarray(T_pred, dtype=np.float64)
    T_gt = np.asarray(T_gt, dtype=np.float64)
    position = float(np.linalg.norm(T_pred[:3, 3] - T_gt[:3, 3]) * 1000.0)
    relative = Rotation.from_matrix(T_pred[:3, :3] @ T_gt[:3, :3].T)
    return position, float(np.degrees(relative.magnitude()))


@dataclasses.dataclass(frozen=True)
class SetEvaluation:
    """Errors of one reconstructed set (mm / degrees); ``gt_stamp_ns`` is the ground truth it was compared with;
    ``mean_face_rmse_mm`` the mean face's RMSE against it (None: not computed)."""

    gt_stamp_ns: int
    rmse_mm: float | None
    scan_to_mesh_mm: float | None
    position_error_mm: float
    rotation_error_deg: float
    mean_face_rmse_mm: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to µm / millidegrees."""
        return {
            "gt_stamp_ns": self.gt_stamp_ns,
            "rmse_mm": None if self.rmse_mm is None else round(self.rmse_mm, 4),
            "scan_to_mesh_mm": None if self.scan_to_mesh_mm is None else round(self.scan_to_mesh_mm, 4),
            "position_error_mm": round(self.position_error_mm, 4),
            "rotation_error_deg": round(self.rotation_error_deg, 4),
            "mean_face_rmse_mm": None if self.mean_face_rmse_mm is None else round(self.mean_face_rmse_mm, 4),
        }


class GroundTruthBuffer:
    """Ground-truth poses and meshes by stamp, looked up by the nearest stamp within a tolerance.

    Args:
        tolerance_ns: largest distance between a set's stamp and its ground truth's stamp, ns.
        horizon_ns: entries this much older than the newest are forgotten (bounded memory).
    """

    def __init__(self, tolerance_ns: int, horizon_ns: int = 5_000_000_000) -> None:
        self.tolerance_ns = int(tolerance_ns)
        self.horizon_ns = int(horizon_ns)
        self._poses: dict[int, np.ndarray] = {}
        self._meshes: dict[int, np.ndarray] = {}
        self.faces: np.ndarray | None = None
        self.poses_seen = 0
        self.meshes_seen = 0

    def add_pose(self, stamp_ns: int, T: np.ndarray) -> None:
        """A ground-truth ``T_rig_from_model`` (4, 4) at ``stamp_ns``."""
        self._poses[int(stamp_ns)] = np.asarray(T, dtype=np.float64)
        self.poses_seen += 1
        self._prune(self._poses)

    def add_mesh(self, stamp_ns: int, vertices: np.ndarray) -> None:
        """Ground-truth vertices (N, 3), rig frame, metres, at ``stamp_ns``."""
        self._meshes[int(stamp_ns)] = np.asarray(vertices, dtype=np.float64)
        self.meshes_seen += 1
        self._prune(self._meshes)

    def _prune(self, table: dict[int, np.ndarray]) -> None:
        newest = max(table)
        for stamp in [s for s in table if s < newest - self.horizon_ns]:
            del table[stamp]

    def lookup(self, stamp_ns: int) -> tuple[int, np.ndarray, np.ndarray] | None:
        """``(gt stamp, T_rig_from_model, vertices)`` nearest to ``stamp_ns`` having both, or None."""
        stamps = sorted(set(self._poses) & set(self._meshes))
        if not stamps:
            return None
        i = bisect.bisect_left(stamps, stamp_ns)
        candidates = [stamps[j] for j in (i - 1, i) if 0 <= j < len(stamps)]
        best = min(candidates, key=lambda s: abs(s - stamp_ns))
        if abs(best - stamp_ns) > self.tolerance_ns:
            return None
        return best, self._poses[best], self._meshes[best]


def evaluate_set(
    reconstruction: Any,
    faces: np.ndarray,
    gt_stamp_ns: int,
    T_gt: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray | None,
    landmark_indices: np.ndarray | None,
    mean_vertices: np.ndarray | None = None,
) -> SetEvaluation:
    """Errors of ``reconstruction`` (``vertices_rig``, ``T_rig_from_model``) against one ground-truth instant.

    The shape metrics need the ground truth to share the prediction's topology (same vertex count; the landmark
    vertices then correspond and give the initial alignment and the nose tip); otherwise they are None and only
    the pose errors are given.

    Args:
        reconstruction: an ``ok`` :class:`~dfmvr_core.inference.reconstructor.Reconstruction`.
        faces: ``(F, 3)`` triangles of the predicted mesh.
        gt_stamp_ns: stamp of the ground truth.
        T_gt: ``(4, 4)`` ground-truth ``T_rig_from_model``.
        gt_vertices: ``(N, 3)`` ground-truth vertices, rig frame, metres.
        gt_faces: ``(F, 3)`` ground-truth triangles (None: the prediction's, when the vertex counts agree).
        landmark_indices: ``(68,)`` iBUG landmark vertex indices of the model.
        mean_vertices: ``(N, 3)`` the model's mean face (any frame, metres): also scored against the ground truth
            (``mean_face_rmse_mm``), the reference a reconstruction must beat; None: not scored.
    """
    position, rotation = pose_errors(reconstruction.T_rig_from_model, T_gt)
    pred = np.asarray(reconstruction.vertices_rig, dtype=np.float64)
    gt = np.asarray(gt_vertices, dtype=np.float64)
    rmse = scan = reference = None
    if landmark_indices is not None and len(gt) == len(pred):
        idx = np.asarray(landmark_indices, dtype=np.int64)
        gt_f = faces if gt_faces is None else gt_faces
        metrics = evaluate_pair(pred, faces, gt, gt_f, pred_landmarks=pred[idx], gt_landmarks=gt[idx])
        rmse, scan = metrics.rmse_mm, metrics.scan_to_mesh_mm
        if mean_vertices is not None and len(mean_vertices) == len(pred):
            mean = np.asarray(mean_vertices, dtype=np.float64)
            reference = evaluate_pair(mean, faces, gt, gt_f, pred_landmarks=mean[idx], gt_landmarks=gt[idx]).rmse_mm
    return SetEvaluation(gt_stamp_ns, rmse, scan, position, rotation, reference)


def _stats(values: list[float]) -> dict[str, float | None]:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if arr.size == 0:
        return {"count": 0, "mean": None, "std": None, "median": None, "max": None}
    return {
        "count": int(arr.size),
        "mean": round(float(arr.mean()), 4),
        "std": round(float(arr.std()), 4),
        "median": round(float(np.median(arr)), 4),
        "max": round(float(arr.max()), 4),
    }


def summary(evaluations: list[SetEvaluation]) -> dict[str, Any]:
    """Mean, population std (as the paper's tables), median and max of each error over the evaluated sets."""
    return {
        "sets": len(evaluations),
        "rmse_mm": _stats([e.rmse_mm for e in evaluations]),
        "scan_to_mesh_mm": _stats([e.scan_to_mesh_mm for e in evaluations]),
        "position_error_mm": _stats([e.position_error_mm for e in evaluations]),
        "rotation_error_deg": _stats([e.rotation_error_deg for e in evaluations]),
        "mean_face_rmse_mm": _stats([e.mean_face_rmse_mm for e in evaluations]),
        "definitions": {**METRIC_DEFINITIONS, **POSE_METRIC_DEFINITIONS, **REFERENCE_METRIC_DEFINITIONS},
    }
