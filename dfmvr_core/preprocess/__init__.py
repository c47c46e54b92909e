"""Inference preprocessing: camera image → face landmarks → the network's 224×224 crop and its face-part mask.

* :func:`load_image` / :func:`check_rgb_image` — ``(H, W, 3)`` uint8 RGB images (:mod:`.images`).
* :class:`MediaPipeLandmarkDetector` / :func:`build_detector` — the 68 iBUG landmarks of the largest face, from
  MediaPipe FaceMesh (the optional ``landmarks`` extra) via :data:`MEDIAPIPE_TO_IBUG68` (:mod:`.detector`,
  :mod:`.landmarks68`).
* :func:`crop_view` → :class:`ViewCrop` — the square face crop, its affine ``A`` and ``K_crop`` (:mod:`.view_crop`).
* :func:`parts_from_landmarks` — the paper's 10-class face mask drawn from the landmarks (:mod:`.landmark_masks`).

Importing this package does not import ``mediapipe``.
"""

from dfmvr_core.preprocess.detector import (
    DETECTOR_NAMES,
    FaceLandmarks,
    LandmarkDetector,
    MediaPipeLandmarkDetector,
    build_detector,
    import_mediapipe,
)
from dfmvr_core.preprocess.images import check_rgb_image, load_image
from dfmvr_core.preprocess.landmark_masks import FOREHEAD_LIFT, parts_from_landmarks, parts_from_landmarks_batch
from dfmvr_core.preprocess.landmarks68 import MEDIAPIPE_NUM_POINTS, MEDIAPIPE_TO_IBUG68, ibug68_from_mediapipe
from dfmvr_core.preprocess.view_crop import (
    ANTIALIAS_MIN_DOWNSCALE,
    REASON_NO_FACE,
    REASON_NO_SOURCE,
    ViewCrop,
    crop_image,
    crop_view,
)

__all__ = [
    "ANTIALIAS_MIN_DOWNSCALE",
    "DETECTOR_NAMES",
    "FOREHEAD_LIFT",
    "MEDIAPIPE_NUM_POINTS",
    "MEDIAPIPE_TO_IBUG68",
    "REASON_NO_FACE",
    "REASON_NO_SOURCE",
    "FaceLandmarks",
    "LandmarkDetector",
    "MediaPipeLandmarkDetector",
    "ViewCrop",
    "build_detector",
    "check_rgb_image",
    "crop_image",
    "crop_view",
    "ibug68_from_mediapipe",
    "import_mediapipe",
    "load_image",
    "parts_from_landmarks",
    "parts_from_landmarks_batch",
]
