"""Evaluation of reconstructed meshes (paper section V-A).

* :mod:`~dfmvr_core.evaluation.metrics`: the paper's point-to-plane RMSE after ICP on the 95 mm front-face
  region (Deep3DFace protocol) and the NoW mean scan-to-mesh distance, per pair and summarised.
* :mod:`~dfmvr_core.evaluation.registration`: landmark alignment and ICP.
* :mod:`~dfmvr_core.evaluation.surface`: nearest-vertex and closest-surface-point queries.
* :mod:`~dfmvr_core.evaluation.error_map`: error-map pictures (paper Fig. 13) and PNG output.
"""

from dfmvr_core.evaluation.error_map import error_colors, error_map_image, save_png
from dfmvr_core.evaluation.metrics import (
    IBUG_NOSE_TIP,
    METRIC_DEFINITIONS,
    RIG_SCALE_RMSE_DEFINITION,
    RIG_SCALE_RMSE_KEY,
    SCALED_RMSE_DEFINITION,
    SCALED_RMSE_KEY,
    EvalConfig,
    FaceRegion,
    PairMetrics,
    crop_face_region,
    evaluate_pair,
    point_to_plane_distances,
    point_to_plane_rmse,
    scan_to_mesh_distance,
    statistics,
    summarize,
)
from dfmvr_core.evaluation.registration import ICP_METHODS, IcpResult, apply_transform, icp_align, landmark_alignment
from dfmvr_core.evaluation.surface import MeshSurface, vertex_normals

__all__ = [
    "IBUG_NOSE_TIP",
    "ICP_METHODS",
    "METRIC_DEFINITIONS",
    "RIG_SCALE_RMSE_DEFINITION",
    "RIG_SCALE_RMSE_KEY",
    "SCALED_RMSE_DEFINITION",
    "SCALED_RMSE_KEY",
    "EvalConfig",
    "FaceRegion",
    "IcpResult",
    "MeshSurface",
    "PairMetrics",
    "apply_transform",
    "crop_face_region",
    "error_colors",
    "error_map_image",
    "evaluate_pair",
    "icp_align",
    "landmark_alignment",
    "point_to_plane_distances",
    "point_to_plane_rmse",
    "save_png",
    "scan_to_mesh_distance",
    "statistics",
    "summarize",
    "vertex_normals",
]
