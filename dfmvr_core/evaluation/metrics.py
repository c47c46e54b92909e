"""The paper's reconstruction metric and the NoW-style scan-to-mesh distance (numpy, metres in, mm out).

Protocol (paper section V-A, "Evaluation Metric", which follows Deep3DFace [10] and MGCNet [11]; Tables I-V
report its mean and standard deviation in mm):

1. **Initial alignment** (optional): when corresponding 3D landmarks of both meshes are given (e.g. the
   morphable model's 68 iBUG landmark vertices), the prediction is mapped onto the ground truth by the
   least-squares rigid transform of the landmarks (:func:`~dfmvr_core.evaluation.registration.landmark_alignment`),
   as the NoW benchmark code that the authors' repository ships does (NoW also fits a scale there).
2. **Crop**: the ground truth is cut to the front face region, the vertices within ``crop_radius_m`` = 95 mm
   of its nose tip (iBUG landmark 30) (:func:`crop_face_region`), as Deep3DFace and NoW do.
3. **ICP**: the cropped ground-truth points are registered to the (whole) predicted surface by rigid
   point-to-plane ICP (:func:`~dfmvr_core.evaluation.registration.icp_align`), which minimises the very
   distance of ``rmse_mm`` below (``icp_method="point_to_point"`` gives Besl & McKay's variant, closest
   points on the surface); the prediction is moved by the inverse, so every distance is measured in the
   ground truth's frame. ``with_scale=True`` lets both steps also fit one isotropic scale (as NoW's
   landmark step and Genova et al.'s MICC protocol, which Deep3DFace follows, do); the default is rigid
   because dfmvr's reconstructions are metric, so a wrong face size counts as error.
4. **Distances**, both from the ground truth to the prediction (every cropped ground-truth vertex ``g_i``):

   * ``rmse_mm``, the paper's **point-to-plane RMSE**: ``d_i = (g_i − p_j)·n_j`` where ``p_j`` is the
     predicted vertex nearest to ``g_i`` and ``n_j`` its unit (area-weighted) vertex normal, i.e. the
     distance from ``g_i`` to the prediction's tangent plane at its nearest vertex;
     ``RMSE = sqrt(mean_i d_i²)``. It ignores tangential (in-surface) offsets.
   * ``scan_to_mesh_mm``, the **mean scan-to-mesh distance** of the NoW benchmark, which the authors' code
     (``lib/now_evaluation``) reports under the name "rmse": ``s_i = min over the predicted surface of
     ‖g_i − q‖`` (the closest point on a triangle, not a vertex), averaged (not squared).

The two agree for a prediction displaced along the surface normal and differ for tangential offsets
(only ``s_i`` sees a gap at the mesh boundary) and for sparse meshes (planes vs. flat triangles).
Standard deviations in :func:`summarize` are population standard deviations (``ddof = 0``) over samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.evaluation.registration import ICP_METHODS, apply_transform, icp_align, landmark_alignment
from dfmvr_core.evaluation.surface import MeshSurface
from dfmvr_core.validation import check_finite, check_shape

__all__ = [
    "IBUG_NOSE_TIP",
    "METRIC_DEFINITIONS",
    "RIG_SCALE_RMSE_DEFINITION",
    "RIG_SCALE_RMSE_KEY",
    "SCALED_RMSE_DEFINITION",
    "SCALED_RMSE_KEY",
    "EvalConfig",
    "FaceRegion",
    "PairMetrics",
    "crop_face_region",
    "evaluate_pair",
    "point_to_plane_distances",
    "point_to_plane_rmse",
    "scan_to_mesh_distance",
    "statistics",
    "summarize",
]

IBUG_NOSE_TIP = 30
"""Index of the nose tip among the 68 iBUG landmarks (0-based; point 31 in the 1-based iBUG chart)."""

METRIC_DEFINITIONS = {
    "rmse_mm": (
        "point-to-plane RMSE (the paper's metric, Deep3DFace protocol), mm: ground-truth vertices within "
        "crop_radius_m of the ground-truth nose tip, after landmark alignment and rigid point-to-plane ICP of "
        "the prediction; d_i = (g_i - p_j).n_j with p_j the nearest predicted vertex and n_j its vertex normal; "
        "sqrt(mean d_i^2)"
    ),
    "scan_to_mesh_mm": (
        "mean scan-to-mesh distance (NoW benchmark; what the DF-MVR authors' code reports as 'rmse'), mm: same "
        "region and alignment; mean over ground-truth vertices of the distance to the closest point on the "
        "predicted surface"
    ),
}
"""One-line definitions, written into evaluation summaries."""

SCALED_RMSE_KEY = "rmse_mm_with_scale"
SCALED_RMSE_DEFINITION = (
    "rmse_mm after a similarity instead of a rigid alignment (the landmark alignment and the ICP also fit one "
    "isotropic scale, as NoW's landmark step and Genova et al.'s MICC protocol followed by Deep3DFace do), mm: the "
    "shape error without the face's overall size, which crops normalised to the face (DF-MVR's input) do not show"
)
"""Definition of the scale-aligned companion of ``rmse_mm`` that benchmark evaluations report beside it."""

RIG_SCALE_RMSE_KEY = "rmse_mm_rig_scale"
RIG_SCALE_RMSE_DEFINITION = (
    "rmse_mm (rigid) of the prediction brought to the face size the calibrated rig measures, as the reconstructor "
    "does with two or more views (reconstructor.metric_pose: the views' landmarks triangulated, the inner 51 fitted "
    "by a similarity); equal to rmse_mm where fewer than two views are given, mm"
)
"""Definition of the rig-scaled RMSE: what the full reconstructor's metric mesh scores."""


@dataclass(frozen=True)
class EvalConfig:
    """Settings of the metric (defaults: the paper's protocol).

    Attributes:
        crop_radius_m: radius of the front-face region around the ground-truth nose tip, metres (95 mm).
        use_landmarks: use the landmarks for the initial alignment when they are given.
        use_icp: refine the alignment with ICP (disable only to measure a fixed alignment).
        with_scale: fit one isotropic scale in the landmark alignment and ICP (default rigid).
        icp_method: ``"point_to_plane"`` (default; minimises the reported RMSE) or ``"point_to_point"``
            (Besl & McKay on the surface); see :func:`~dfmvr_core.evaluation.registration.icp_align`.
        icp_max_iterations: ICP iteration limit.
        icp_tolerance_m: ICP stops when an update moves no point by more than this, metres.
        icp_max_points: random subset of region points driving the ICP (speed); None: all.
        closest_point_candidates: nearest vertices whose triangles are searched for the scan-to-mesh distance.
    """

    crop_radius_m: float = 0.095
    use_landmarks: bool = True
    use_icp: bool = True
    with_scale: bool = False
    icp_method: str = "point_to_plane"
    icp_max_iterations: int = 50
    icp_tolerance_m: float = 1e-6
    icp_max_points: int | None = 2000
    closest_point_candidates: int = 8

    def __post_init__(self) -> None:
        if not (math.isfinite(self.crop_radius_m) and self.crop_radius_m > 0):
            raise ConfigError(f"crop_radius_m: expected a positive number of metres, got {self.crop_radius_m!r}")
        if self.crop_radius_m > 1.0:
            raise ConfigError(f"crop_radius_m: {self.crop_radius_m} m is not a face region; the value is in metres")
        if self.icp_method not in ICP_METHODS:
            raise ConfigError(f"icp_method: expected one of {list(ICP_METHODS)}, got {self.icp_method!r}")
        if self.icp_max_iterations < 1:
            raise ConfigError(f"icp_max_iterations: expected >= 1, got {self.icp_max_iterations}")
        if not (math.isfinite(self.icp_tolerance_m) and self.icp_tolerance_m >= 0):
            raise ConfigError(f"icp_tolerance_m: expected a non-negative number, got {self.icp_tolerance_m!r}")
        if self.icp_max_points is not None and self.icp_max_points < 3:
            raise ConfigError(f"icp_max_points: expected None or >= 3, got {self.icp_max_points}")
        if self.closest_point_candidates < 1:
            raise ConfigError(f"closest_point_candidates: expected >= 1, got {self.closest_point_candidates}")


class FaceRegion(NamedTuple):
    """The cropped front-face sub-mesh.

    Attributes:
        vertices: ``(M, 3)`` float64, the kept vertices (same frame and units as the input).
        faces: ``(F_r, 3)`` int64, the triangles with all three vertices inside, indexing ``vertices``.
        indices: ``(M,)`` int64, index of each kept vertex in the input mesh (ascending).
    """

    vertices: np.ndarray
    faces: np.ndarray
    indices: np.ndarray


def _as_points(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    check_shape(name, array, (None, 3))
    check_finite(name, array)
    return array


def _as_faces(name: str, value: Any, n_vertices: int) -> np.ndarray:
    faces = np.asarray(value)
    check_shape(name, faces, (None, 3))
    if faces.size and faces.dtype.kind not in "iu":
        raise ShapeError(f"{name}: expected integer vertex indices, got dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        raise ShapeError(f"{name}: indices must lie in [0, {n_vertices}), got [{faces.min()}, {faces.max()}]")
    return faces


def crop_face_region(
    vertices: np.ndarray, faces: np.ndarray, nose_tip: np.ndarray, radius_m: float = 0.095
) -> FaceRegion:
    """The front face region: the sub-mesh within ``radius_m`` of the nose tip.

    Faces are kept when all three vertices lie inside the sphere (``‖v − nose_tip‖ <= radius_m``); the kept
    vertices are those of the kept faces (all vertices inside the sphere when ``faces`` is empty, i.e. a
    point cloud).

    Args:
        vertices: ``(N, 3)`` float, metres.
        faces: ``(F, 3)`` int (may be ``(0, 3)``).
        nose_tip: ``(3,)`` float, metres, same frame.
        radius_m: sphere radius, metres (95 mm in the paper's protocol).

    Returns:
        :class:`FaceRegion` (``vertices``, ``faces`` re-indexed, ``indices`` into the input).

    Raises:
        ShapeError: bad shapes or values, or fewer than 3 vertices in the region (wrong units or nose tip?).
    """
    vertices = _as_points("vertices", vertices)
    faces = _as_faces("faces", faces, len(vertices))
    nose = np.asarray(nose_tip, dtype=np.float64)
    check_shape("nose_tip", nose, (3,))
    check_finite("nose_tip", nose)
    if not (math.isfinite(radius_m) and radius_m > 0):
        raise ShapeError(f"radius_m: expected a positive number of metres, got {radius_m!r}")
    inside = np.linalg.norm(vertices - nose, axis=1) <= radius_m
    if len(faces):
        kept_faces = faces[inside[faces].all(axis=1)]
        indices = np.unique(kept_faces)
    else:
        kept_faces = faces
        indices = np.flatnonzero(inside)
    if len(indices) < 3:
        raise ShapeError(
            f"the region within {radius_m * 1000:.0f} mm of the nose tip {nose.tolist()} holds {len(indices)} "
            "vertices; expected a face region (are the vertices in metres and the nose tip right?)"
        )
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[indices] = np.arange(len(indices))
    return FaceRegion(vertices[indices], remap[kept_faces], indices.astype(np.int64))


def point_to_plane_distances(points: np.ndarray, surface: MeshSurface) -> np.ndarray:
    """Signed distance of each point to the tangent plane of its nearest surface vertex.

    ``d_i = (x_i − p_j)·n_j``, ``p_j`` the nearest vertex of ``surface`` (among those on a triangle), ``n_j``
    its unit area-weighted normal (positive: the point lies outside / in front of the surface).

    Args:
        points: ``(M, 3)`` float, same units and frame as the surface.

    Returns:
        ``(M,)`` float64 signed distances, same units.
    """
    points = _as_points("points", points)
    nearest, _ = surface.nearest_vertices(points)
    return np.einsum("ij,ij->i", points - surface.vertices[nearest], surface.normals[nearest])


@dataclass(frozen=True)
class PairMetrics:
    """Metrics of one predicted mesh against its ground truth (see the module docstring).

    Attributes:
        rmse_mm: point-to-plane RMSE, mm (the paper's metric).
        scan_to_mesh_mm: mean scan-to-mesh distance, mm (NoW; the authors' code).
        region_indices: ``(M,)`` int64 ground-truth vertices of the cropped region.
        region_faces: ``(F_r, 3)`` int64 triangles of the region, indexing ``region_indices``.
        point_to_plane_mm: ``(M,)`` float64 ``|d_i|`` per region vertex, mm.
        scan_to_mesh_per_vertex_mm: ``(M,)`` float64 ``s_i`` per region vertex, mm.
        transform: ``(4, 4)`` float64 prediction-to-ground-truth transform found (landmarks then ICP).
        num_gt_vertices: vertex count of the ground-truth mesh.
        icp_iterations: ICP iterations run (0 without ICP).
        icp_converged: ICP met its tolerance (True without ICP).
    """

    rmse_mm: float
    scan_to_mesh_mm: float
    region_indices: np.ndarray
    region_faces: np.ndarray
    point_to_plane_mm: np.ndarray
    scan_to_mesh_per_vertex_mm: np.ndarray
    transform: np.ndarray
    num_gt_vertices: int
    icp_iterations: int = 0
    icp_converged: bool = True

    @property
    def per_vertex_error_mm(self) -> np.ndarray:
        """``(N_gt,)`` float64 point-to-plane error ``|d_i|`` per ground-truth vertex, mm; NaN outside the region."""
        errors = np.full(self.num_gt_vertices, np.nan)
        errors[self.region_indices] = self.point_to_plane_mm
        return errors

    @property
    def scale(self) -> float:
        """Isotropic scale of :attr:`transform` (1 for a rigid alignment)."""
        return float(np.cbrt(np.linalg.det(self.transform[:3, :3])))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scalars: the two metrics (mm), region size, alignment and ICP outcome."""
        return {
            "rmse_mm": float(self.rmse_mm),
            "scan_to_mesh_mm": float(self.scan_to_mesh_mm),
            "max_point_to_plane_mm": float(self.point_to_plane_mm.max()),
            "region_vertices": len(self.region_indices),
            "icp_iterations": int(self.icp_iterations),
            "icp_converged": bool(self.icp_converged),
            "scale": self.scale,
            "transform_pred_to_gt": np.round(self.transform, 9).tolist(),
        }


def evaluate_pair(
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    *,
    nose_tip: np.ndarray | None = None,
    pred_landmarks: np.ndarray | None = None,
    gt_landmarks: np.ndarray | None = None,
    config: EvalConfig | None = None,
) -> PairMetrics:
    """Align a predicted mesh to its ground truth and measure both metrics on the front face region.

    Args:
        pred_vertices: ``(N_p, 3)`` float, metres (any frame: the alignment removes the pose).
        pred_faces: ``(F_p, 3)`` int, at least one triangle.
        gt_vertices: ``(N_g, 3)`` float, metres.
        gt_faces: ``(F_g, 3)`` int (``(0, 3)`` for a point-cloud scan).
        nose_tip: ``(3,)`` ground-truth nose tip, metres; default ``gt_landmarks[30]`` when 68 are given.
        pred_landmarks: ``(K, 3)`` predicted landmark points for the initial alignment (e.g.
            ``pred_vertices[model.landmarks68]``), or None.
        gt_landmarks: ``(K, 3)`` corresponding ground-truth landmark points, or None.
        config: :class:`EvalConfig` (default: the paper's protocol).

    Returns:
        :class:`PairMetrics`.

    Raises:
        ShapeError: bad shapes, non-finite values, a missing nose tip, landmark sets of different sizes or
            an empty region.
    """
    cfg = config or EvalConfig()
    pred_v = _as_points("pred_vertices", pred_vertices)
    pred_f = _as_faces("pred_faces", pred_faces, len(pred_v))
    gt_v = _as_points("gt_vertices", gt_vertices)
    gt_f = _as_faces("gt_faces", gt_faces, len(gt_v))
    if (pred_landmarks is None) != (gt_landmarks is None):
        raise ShapeError("pred_landmarks / gt_landmarks: give both (corresponding points) or neither")
    if nose_tip is None:
        if gt_landmarks is None or len(gt_landmarks) != 68:
            raise ShapeError("nose_tip: required unless the 68 iBUG gt_landmarks are given (landmark 30 is used)")
        nose_tip = np.asarray(gt_landmarks, dtype=np.float64)[IBUG_NOSE_TIP]

    initial = np.eye(4)
    if cfg.use_landmarks and pred_landmarks is not None:
        initial = landmark_alignment(pred_landmarks, gt_landmarks, with_scale=cfg.with_scale)
    region = crop_face_region(gt_v, gt_f, nose_tip, cfg.crop_radius_m)

    transform, iterations, converged = initial, 0, True
    if cfg.use_icp:
        moved = MeshSurface(apply_transform(pred_v, initial), pred_f)
        result = icp_align(
            region.vertices,
            moved,
            method=cfg.icp_method,
            with_scale=cfg.with_scale,
            max_iterations=cfg.icp_max_iterations,
            tolerance=cfg.icp_tolerance_m,
            max_points=cfg.icp_max_points,
        )
        transform = np.linalg.inv(result.matrix) @ initial  # ICP maps gt -> moved prediction: invert it
        iterations, converged = result.iterations, result.converged

    surface = MeshSurface(apply_transform(pred_v, transform), pred_f)
    plane = np.abs(point_to_plane_distances(region.vertices, surface)) * 1000.0
    scan = surface.closest_points(region.vertices, k=cfg.closest_point_candidates).distances * 1000.0
    return PairMetrics(
        rmse_mm=float(np.sqrt(np.mean(plane**2))),
        scan_to_mesh_mm=float(scan.mean()),
        region_indices=region.indices,
        region_faces=region.faces,
        point_to_plane_mm=plane,
        scan_to_mesh_per_vertex_mm=scan,
        transform=transform,
        num_gt_vertices=len(gt_v),
        icp_iterations=iterations,
        icp_converged=converged,
    )


def point_to_plane_rmse(
    pred_vertices: np.ndarray, pred_faces: np.ndarray, gt_vertices: np.ndarray, gt_faces: np.ndarray, **kwargs: Any
) -> float:
    """The paper's metric in **metres**: point-to-plane RMSE, ground truth to prediction, after alignment.

    Same arguments as :func:`evaluate_pair` (``nose_tip``, landmarks, ``config`` as keywords).
    """
    return evaluate_pair(pred_vertices, pred_faces, gt_vertices, gt_faces, **kwargs).rmse_mm / 1000.0


def scan_to_mesh_distance(
    pred_vertices: np.ndarray, pred_faces: np.ndarray, gt_vertices: np.ndarray, gt_faces: np.ndarray, **kwargs: Any
) -> float:
    """The NoW / authors'-code metric in **metres**: mean distance of the cropped ground-truth vertices to the
    aligned predicted surface. Same arguments as :func:`evaluate_pair`."""
    return evaluate_pair(pred_vertices, pred_faces, gt_vertices, gt_faces, **kwargs).scan_to_mesh_mm / 1000.0


def statistics(values: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """Mean, population std, median, min and max of per-sample values (all None when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return {"mean": None, "std": None, "median": None, "min": None, "max": None}
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def summarize(samples: Sequence[PairMetrics | Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation (population, ``ddof = 0``), median, min and max of each metric, in mm.

    Like the paper's Tables I-V (mean and std of the RMSE over the test samples).

    Args:
        samples: :class:`PairMetrics`, or mappings holding ``rmse_mm`` and ``scan_to_mesh_mm`` (e.g. read back
            from per-sample JSON files).

    Returns:
        ``{"count": n, "rmse_mm": {...}, "scan_to_mesh_mm": {...}}`` (statistics None when ``n == 0``).
    """
    rows = [s.to_dict() if isinstance(s, PairMetrics) else s for s in samples]
    summary: dict[str, Any] = {"count": len(rows)}
    for key in METRIC_DEFINITIONS:
        try:
            values = np.array([float(row[key]) for row in rows], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ShapeError(f"samples: every sample needs a numeric {key!r} ({exc})") from None
        summary[key] = statistics(values)
    return summary
