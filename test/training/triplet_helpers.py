"""Rendered faces for the real-data dataset tests (imported by test_train_data_triplets / _layouts in this folder).

The ICT mean face posed at the default rig's subject point, rendered with :func:`dfmvr_core.preview.render_rig_views`
into left / front / right cameras of 320×240 (fx = fy = 300 px): faces ≈ 70 px wide that MediaPipe detects. Rendered
once per model object (the ``ict_model`` fixture is session-scoped).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from dfmvr_core.geometry import MODEL_TO_OPTICAL, CameraRig, PinholeIntrinsics, RigConfig, make_transform
from dfmvr_core.geometry.rig import CameraPlacement
from dfmvr_core.preprocess import FaceLandmarks
from dfmvr_core.preview import PreviewOptions, render_rig_views, sample_face

INTRINSICS = PinholeIntrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=320, height=240)
CAMERAS = ("left", "front", "right")


@dataclass(frozen=True)
class Face:
    image: np.ndarray  # (240, 320, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) float pixels, projected model landmarks


_CACHE: dict[int, tuple[object, dict[str, Face]]] = {}


def rendered_faces(model) -> dict[str, Face]:
    """``{camera: Face}`` for the three cameras (cached per model object)."""
    cached = _CACHE.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    rig = CameraRig(RigConfig(cameras=tuple(CameraPlacement(n, a, intrinsics=INTRINSICS) for n, a in
                                            zip(CAMERAS, (-45.0, 0.0, 45.0), strict=True))))  # fmt: skip
    vertices, albedo = sample_face(model, PreviewOptions())
    T = make_transform(torch.tensor(MODEL_TO_OPTICAL, dtype=vertices.dtype), rig.subject_center_rig.to(vertices.dtype))
    vertices_rig = vertices[0] @ T[:3, :3].T + T[:3, 3]
    images, landmarks = render_rig_views(model, vertices_rig, albedo, rig)
    faces = {n: Face(np.ascontiguousarray(im), np.asarray(lm, np.float64)) for n, im, lm in
             zip(CAMERAS, images, landmarks, strict=True)}  # fmt: skip
    _CACHE[id(model)] = (model, faces)
    return faces


def write_rgb(path: Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image (PNG/JPEG by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


class TableDetector:
    """A fake landmark detector: returns the landmarks registered for an image's exact pixels (None otherwise) and
    counts its calls."""

    name = "table"

    def __init__(self) -> None:
        self.table: dict[bytes, np.ndarray] = {}
        self.calls = 0

    def add(self, image: np.ndarray, landmarks: np.ndarray) -> None:
        self.table[np.ascontiguousarray(image).tobytes()] = np.asarray(landmarks, np.float32)

    def detect(self, image: np.ndarray) -> FaceLandmarks | None:
        self.calls += 1
        points = self.table.get(np.ascontiguousarray(image).tobytes())
        return None if points is None else FaceLandmarks.from_points(points, 0.9)
