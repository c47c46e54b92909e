"""Face landmark detection: the 68 iBUG landmarks of the largest face in an RGB image.

:class:`MediaPipeLandmarkDetector` runs MediaPipe's legacy FaceMesh solution (``mediapipe.solutions.face_mesh``;
BlazeFace short-range detector + 468-point mesh, TFLite on the CPU; the models ship inside the ``mediapipe``
wheel, nothing is downloaded) and maps its points to iBUG-68 with
:data:`~dfmvr_core.preprocess.landmarks68.MEDIAPIPE_TO_IBUG68`. ``mediapipe`` is the optional ``landmarks``
extra (``pip install -c constraints.txt -e .[landmarks]``), imported only when a detector is built.

Anything with ``detect(image) -> FaceLandmarks | None`` is a :class:`LandmarkDetector` (tests use fakes).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dfmvr_core.errors import ConfigError
from dfmvr_core.preprocess.images import check_rgb_image
from dfmvr_core.preprocess.landmarks68 import ibug68_from_mediapipe
from dfmvr_core.validation import check_finite, check_shape

__all__ = [
    "DETECTOR_NAMES",
    "FaceLandmarks",
    "LandmarkDetector",
    "MediaPipeLandmarkDetector",
    "build_detector",
    "import_mediapipe",
]

DETECTOR_NAMES = ("mediapipe", "none")
"""Names :func:`build_detector` accepts."""


@dataclass(frozen=True)
class FaceLandmarks:
    """One detected face.

    Attributes:
        points68: ``(68, 2)`` float32 image pixels (OpenCV convention: integer = pixel centre), iBUG order.
        confidence: detector score in [0, 1] (MediaPipe: the face detector's score), NaN when unknown.
        box: ``(4,)`` float32 ``(x0, y0, x1, y1)`` pixels, the bounding box of ``points68`` (a face ROI as
            :func:`~dfmvr_core.geometry.face_crop.face_box_from_roi` expects it).
    """

    points68: np.ndarray
    confidence: float
    box: np.ndarray

    def __post_init__(self) -> None:
        points = np.asarray(self.points68, dtype=np.float32)
        check_shape("points68", points, (68, 2))
        check_finite("points68", points)
        box = np.asarray(self.box, dtype=np.float32)
        check_shape("box", box, (4,))
        check_finite("box", box)
        object.__setattr__(self, "points68", points)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "confidence", float(self.confidence))

    @classmethod
    def from_points(cls, points68: np.ndarray, confidence: float = float("nan")) -> FaceLandmarks:
        """Build from ``(68, 2)`` pixels; ``box`` is their bounding box."""
        points = np.asarray(points68, dtype=np.float32)
        check_shape("points68", points, (68, 2))
        check_finite("points68", points)
        return cls(points, confidence, np.concatenate([points.min(axis=0), points.max(axis=0)]))


@runtime_checkable
class LandmarkDetector(Protocol):
    """Finds the main face of an image."""

    def detect(self, image: np.ndarray) -> FaceLandmarks | None:
        """``image``: ``(H, W, 3)`` uint8 RGB. Returns the face's landmarks, or None when there is no face."""
        ...


_INSTALL_HINT = "pip install -c constraints.txt -e .[landmarks]"


def import_mediapipe() -> ModuleType:
    """Import ``mediapipe`` or raise :class:`~dfmvr_core.inference.MissingDependencyError` saying how to get it."""
    try:
        return importlib.import_module("mediapipe")
    except ImportError as exc:
        # Imported here: dfmvr_core.inference imports this package (no import cycle at module load).
        from dfmvr_core.inference._common import MissingDependencyError

        raise MissingDependencyError(
            f"mediapipe is not installed ({exc}); the MediaPipe landmark detector is dfmvr's 'landmarks' extra: "
            f"{_INSTALL_HINT} (or give face ROIs / landmarks and use detector 'none')"
        ) from None


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class MediaPipeLandmarkDetector:
    """68 iBUG landmarks of the largest face, from MediaPipe FaceMesh (legacy ``solutions`` API, CPU).

    Two MediaPipe graphs run per image: FaceMesh (the 468 points) and FaceDetection with the same short-range
    BlazeFace model FaceMesh uses internally, only to report a ``confidence`` (the legacy FaceMesh does not output
    its detection score); the detection whose box overlaps the chosen mesh most gives it (IoU ≥ 0.3, else NaN).
    Measured on a 640×480 image (2-core CPU): ≈ 12 ms FaceMesh + 3 ms FaceDetection alone, 15-25 ms per ``detect``.

    MediaPipe reports coordinates normalised by the image size, edge to edge; pixels here follow OpenCV
    (integer = pixel centre): ``u = x·W − 0.5``, ``v = y·H − 0.5``.

    Not thread-safe (one MediaPipe graph). With ``static_image_mode=False`` FaceMesh tracks the face from the
    previous call: then use one detector per camera.

    Args:
        min_detection_confidence: face detector score threshold in [0, 1].
        static_image_mode: True: detect in every image (unrelated images, several cameras); False: video tracking.
        max_num_faces: faces FaceMesh looks for; the one with the largest mesh bounding box wins.
        min_tracking_confidence: FaceMesh's landmark-presence threshold in [0, 1] (tracking mode).

    Raises:
        ConfigError: a value out of range.
        MissingDependencyError: ``mediapipe`` is not installed.
    """

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        static_image_mode: bool = True,
        max_num_faces: int = 4,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name}: expected a number in [0, 1], got {value!r}")
        if isinstance(max_num_faces, bool) or not isinstance(max_num_faces, int) or not 1 <= max_num_faces <= 32:
            raise ConfigError(f"max_num_faces: expected an integer in [1, 32], got {max_num_faces!r}")
        if not isinstance(static_image_mode, bool):
            raise ConfigError(f"static_image_mode: expected true or false, got {static_image_mode!r}")
        mp = import_mediapipe()
        self.min_detection_confidence = float(min_detection_confidence)
        self.static_image_mode = static_image_mode
        self._mesh: Any = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=max_num_faces,
            refine_landmarks=False,
            min_detection_confidence=float(min_detection_confidence),
            min_tracking_confidence=float(min_tracking_confidence),
        )
        self._detection: Any = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=float(min_detection_confidence)
        )

    def detect(self, image: np.ndarray) -> FaceLandmarks | None:
        """The largest face of ``image`` (``(H, W, 3)`` uint8 RGB), or None when MediaPipe finds none.

        Raises:
            ShapeError: ``image`` is not ``(H, W, 3)`` uint8.
        """
        image = check_rgb_image("image", image)
        h, w = image.shape[:2]
        with warnings.catch_warnings():
            # mediapipe 0.10.14 calls a protobuf 4.25 API deprecated there; harmless, once per image otherwise.
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
            result = self._mesh.process(image)
        faces = result.multi_face_landmarks or []
        if not faces:
            return None
        scale = np.array((w, h), dtype=np.float64)
        meshes = [np.array([(p.x, p.y) for p in face.landmark], dtype=np.float64) * scale - 0.5 for face in faces]
        meshes = [m for m in meshes if np.isfinite(m).all()]
        if not meshes:
            return None
        areas = [float(np.prod(m.max(axis=0) - m.min(axis=0))) for m in meshes]
        mesh = meshes[int(np.argmax(areas))]
        mesh_box = np.concatenate([mesh.min(axis=0), mesh.max(axis=0)])
        return FaceLandmarks.from_points(ibug68_from_mediapipe(mesh), self._confidence(image, mesh_box))

    def _confidence(self, image: np.ndarray, mesh_box: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
            detections = self._detection.process(image).detections or []
        h, w = image.shape[:2]
        best_iou, best_score = 0.0, float("nan")
        for det in detections:
            rel = det.location_data.relative_bounding_box
            box = np.array((rel.xmin * w, rel.ymin * h, (rel.xmin + rel.width) * w, (rel.ymin + rel.height) * h))
            iou = _box_iou(box, mesh_box)
            if iou > best_iou:
                best_iou, best_score = iou, float(det.score[0])
        return best_score if best_iou >= 0.3 else float("nan")

    def close(self) -> None:
        """Release the MediaPipe graphs (also done by ``with`` and on garbage collection)."""
        for graph in (self._mesh, self._detection):
            graph.close()

    def __enter__(self) -> MediaPipeLandmarkDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_detector(name: str, **options: Any) -> LandmarkDetector | None:
    """The detector a configuration names.

    Args:
        name: ``"mediapipe"`` (:class:`MediaPipeLandmarkDetector`) or ``"none"`` (no detector: ROIs or landmarks
            must then be given per view).
        **options: keyword arguments of the detector class.

    Raises:
        ConfigError: unknown name.
        MissingDependencyError: ``mediapipe`` is not installed.
    """
    if name == "mediapipe":
        return MediaPipeLandmarkDetector(**options)
    if name == "none":
        if options:
            raise ConfigError(f"detector 'none' takes no options, got {sorted(options)}")
        return None
    raise ConfigError(f"detector: expected one of {list(DETECTOR_NAMES)}, got {name!r}")
