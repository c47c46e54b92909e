"""Face-part masks drawn from the 68 landmarks: the cheap mask source (no parser network).

The paper's face mask has 10 classes (DF-MVR section III-B; :class:`~dfmvr_core.morphable.parts.FacePart`):
background, skin, left/right brow, left/right eye, nose, mouth interior, upper/lower lip. Here they are polygons of
the iBUG-68 landmarks filled with ``cv2.fillPoly`` (sub-pixel vertices, 4 fractional bits), drawn in this order, later
ones on top:

* SKIN — the face: the jaw line 0-16 closed over the forehead. The forehead's top is estimated, since no landmark
  reaches it: the brow points 17-26 lifted along the face's "up" direction (chin 8 → nasion 27) by
  :data:`FOREHEAD_LIFT` × the chin-to-nasion distance, and the jaw ends 0 / 16 lifted by half of that (the temples).
  0.45 approximates the facial-thirds proportions (hairline-to-brow ≈ half of nasion-to-chin) and matches the face
  region of the morphable models' part labels (skin IoU ≈ 0.9 on rendered faces).
* LEFT_BROW / RIGHT_BROW — a band along the brow points (iBUG's brow points run along the brow's upper edge): moved
  up by 10 % and down by 35 % of the brow-to-eye vector, as
  :func:`~dfmvr_core.morphable.parts.label_parts_from_landmarks` does.
* NOSE — the bridge 27-30 widened to a quarter of the nostril span 31→35, the nostrils with the alae extended by
  15 % of the span, as the part labels (vectors, so a rolled head works).
* LEFT_EYE / RIGHT_EYE — the eye contours 42-47 / 36-41.
* UPPER_LIP — outer 48-54 + inner 64..60; LOWER_LIP — outer 54-59, 48 + inner 60, 67..64.
* MOUTH — the inner lip contour 60-67, eroded by one pixel so that a closed mouth (a degenerate polygon) draws none.

"Left" is the subject's left, as in :mod:`dfmvr_core.morphable.parts`: iBUG 22-26 / 42-47 (on the image's right of a
frontal face). Landmarks outside the crop are fine (clipped). Hand-written because no library draws the paper's
10 classes from 68 points; the drawing itself is OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.morphable.parts import FacePart
from dfmvr_core.validation import check_finite, check_shape

__all__ = ["FOREHEAD_LIFT", "parts_from_landmarks", "parts_from_landmarks_batch"]

FOREHEAD_LIFT = 0.45
"""Forehead height above the brows as a fraction of the chin-to-nasion distance (see the module docstring)."""

_SHIFT = 4  # fractional bits of the polygon vertices given to cv2.fillPoly
_JAW = np.arange(0, 17)
_RIGHT_BROW = np.arange(17, 22)
_LEFT_BROW = np.arange(22, 27)
_RIGHT_EYE = np.arange(36, 42)
_LEFT_EYE = np.arange(42, 48)
_UPPER_LIP = np.array([48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60])
_LOWER_LIP = np.array([54, 55, 56, 57, 58, 59, 48, 60, 67, 66, 65, 64])
_MOUTH = np.arange(60, 68)


def _hull(points: np.ndarray) -> np.ndarray:
    return cv2.convexHull(points.astype(np.float32))[:, 0, :].astype(np.float64)


def _skin_polygon(lm: np.ndarray) -> np.ndarray:
    lift = FOREHEAD_LIFT * (lm[27] - lm[8])
    forehead = np.concatenate([lm[17:27] + lift, lm[[0, 16]] + 0.5 * lift])
    return _hull(np.concatenate([lm, forehead]))


def _brow_band(brow: np.ndarray, eye: np.ndarray) -> np.ndarray:
    to_eye = eye.mean(axis=0) - brow.mean(axis=0)
    return np.concatenate([brow - 0.10 * to_eye, (brow + 0.35 * to_eye)[::-1]])


def _nose_polygon(lm: np.ndarray) -> np.ndarray:
    span = lm[35] - lm[31]
    top, tip = lm[27], lm[30]
    return _hull(
        np.array(
            [
                top - 0.25 * span,
                tip - 0.65 * span,
                lm[31] - 0.15 * span,
                *lm[32:35],
                lm[35] + 0.15 * span,
                tip + 0.65 * span,
                top + 0.25 * span,
            ]
        )
    )


def _fill(canvas: np.ndarray, polygon: np.ndarray, value: int) -> None:
    pts = np.round(polygon * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], int(value), lineType=cv2.LINE_8, shift=_SHIFT)


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= int(size) <= 8192:
        raise ShapeError(f"size: expected a positive integer mask side in pixels, got {size!r}")
    return int(size)


def _as_landmarks(landmarks: object, spec: tuple) -> np.ndarray:
    if isinstance(landmarks, torch.Tensor):
        landmarks = landmarks.detach().cpu().numpy()
    if not isinstance(landmarks, np.ndarray) or landmarks.dtype.kind not in "fiu":
        raise ShapeError(
            f"landmarks: expected a numeric array {spec} of crop pixels, got {type(landmarks).__name__} "
            "(a ViewCrop from an ROI has no landmarks: use mask source 'parser' or 'none', or give landmarks)"
        )
    check_shape("landmarks", landmarks, spec)
    check_finite("landmarks", landmarks)
    return landmarks.astype(np.float64)


def _draw(lm: np.ndarray, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    _fill(canvas, _skin_polygon(lm), FacePart.SKIN)
    _fill(canvas, _brow_band(lm[_RIGHT_BROW], lm[_RIGHT_EYE]), FacePart.RIGHT_BROW)
    _fill(canvas, _brow_band(lm[_LEFT_BROW], lm[_LEFT_EYE]), FacePart.LEFT_BROW)
    _fill(canvas, _nose_polygon(lm), FacePart.NOSE)
    _fill(canvas, lm[_RIGHT_EYE], FacePart.RIGHT_EYE)
    _fill(canvas, lm[_LEFT_EYE], FacePart.LEFT_EYE)
    _fill(canvas, lm[_UPPER_LIP], FacePart.UPPER_LIP)
    _fill(canvas, lm[_LOWER_LIP], FacePart.LOWER_LIP)
    mouth = np.zeros_like(canvas)
    _fill(mouth, lm[_MOUTH], 1)
    mouth = cv2.erode(mouth, np.ones((3, 3), np.uint8))
    canvas[mouth > 0] = FacePart.MOUTH
    return canvas.astype(np.int64)


def parts_from_landmarks(landmarks_crop: np.ndarray, size: int = 224) -> np.ndarray:
    """The 10-class face-part map of one crop, drawn from its 68 landmarks.

    Args:
        landmarks_crop: ``(68, 2)`` float iBUG landmarks in crop pixels (OpenCV convention: integer = pixel centre).
        size: crop side ``S`` in pixels.

    Returns:
        ``(S, S)`` int64 map of :class:`~dfmvr_core.morphable.parts.FacePart` values (0 = background).

    Raises:
        ShapeError: not a ``(68, 2)`` finite numeric array, or a bad ``size``.
    """
    size = _check_size(size)
    return _draw(_as_landmarks(landmarks_crop, (68, 2)), size)


def parts_from_landmarks_batch(landmarks_crop: np.ndarray, size: int = 224) -> np.ndarray:
    """:func:`parts_from_landmarks` for ``(V, 68, 2)`` landmarks → ``(V, S, S)`` int64."""
    size = _check_size(size)
    lm = _as_landmarks(landmarks_crop, (None, 68, 2))
    out = np.zeros((lm.shape[0], size, size), np.int64)
    for i in range(lm.shape[0]):
        out[i] = _draw(lm[i], size)
    return out
