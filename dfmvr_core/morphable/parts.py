"""Per-vertex semantic face parts, derived from the 68 iBUG landmarks of any morphable model.

The label values are the paper's 10 face-mask classes (DF-MVR section III-B: background, face skin,
left brow, right brow, left eye, right eye, nose, mouth, upper lip, lower lip), so a rendered part-label
map is directly a face mask. Vertices that are not part of the face (ears, neck, back of the head) get
``OTHER``, which renders as background, as the paper removes hair, ears and neck from its masks.

"Left" and "right" are the subject's own (anatomical) left and right. In the model frame (x towards the
viewer's right, y up, z towards the viewer) the subject's left is +x.
"""

from __future__ import annotations

from enum import IntEnum

import cv2
import numpy as np

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_finite, check_shape


class FacePart(IntEnum):
    """Part label of a vertex (and class index of the paper's face mask)."""

    OTHER = 0  # not a face part (ears, neck, back of head); background in face masks
    SKIN = 1
    LEFT_BROW = 2
    RIGHT_BROW = 3
    LEFT_EYE = 4
    RIGHT_EYE = 5
    NOSE = 6
    MOUTH = 7  # mouth interior, where the mesh has one
    UPPER_LIP = 8
    LOWER_LIP = 9


NUM_FACE_PARTS = len(FacePart)

# iBUG-68 landmark index groups (0-based). iBUG numbers from the image's left, so on a frontal face
# points 17-21 / 36-41 are the subject's RIGHT brow / eye.
_JAW = list(range(0, 17))
_RIGHT_BROW = list(range(17, 22))
_LEFT_BROW = list(range(22, 27))
_NOSE_BRIDGE = list(range(27, 31))
_NOSE_LOWER = list(range(31, 36))
_RIGHT_EYE = list(range(36, 42))
_LEFT_EYE = list(range(42, 48))
_OUTER_LIP_UPPER = list(range(48, 55))  # 48..54, left corner to right corner along the upper edge
_OUTER_LIP_LOWER = [54, 55, 56, 57, 58, 59, 48]
_INNER_LIP_UPPER = [60, 61, 62, 63, 64]
_INNER_LIP_LOWER = [64, 65, 66, 67, 60]


class _Canvas:
    """Frontal orthographic raster of the model's x-y plane at a fixed resolution (metres per pixel)."""

    def __init__(self, xy: np.ndarray, resolution: float) -> None:
        self.resolution = resolution
        self.origin = xy.min(axis=0) - 20 * resolution
        extent = xy.max(axis=0) + 20 * resolution - self.origin
        self.size = (int(np.ceil(extent[1] / resolution)) + 1, int(np.ceil(extent[0] / resolution)) + 1)

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        px = (xy - self.origin) / self.resolution
        px[..., 1] = self.size[0] - 1 - px[..., 1]  # image rows grow downwards, model y grows upwards
        return px

    def polygon_mask(self, polygon_xy: np.ndarray, dilate_m: float = 0.0) -> np.ndarray:
        mask = np.zeros(self.size, np.uint8)
        cv2.fillPoly(mask, [np.round(self.to_px(polygon_xy)).astype(np.int32)], 1)
        if dilate_m > 0:
            r = max(1, round(dilate_m / self.resolution))
            mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        return mask.astype(bool)

    def sample(self, mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
        px = np.round(self.to_px(xy)).astype(np.int64)
        cols = np.clip(px[:, 0], 0, self.size[1] - 1)
        rows = np.clip(px[:, 1], 0, self.size[0] - 1)
        return mask[rows, cols]


def _brow_band(brow: np.ndarray, eye_center: np.ndarray) -> np.ndarray:
    """Polygon of an eyebrow: the brow landmark line moved up by 10 % and down by 35 % of the
    brow-to-eye distance (iBUG brow points run along the brow's upper edge)."""
    gap = float(np.mean(brow[:, 1]) - eye_center[1])
    upper = brow + np.array([0.0, 0.10 * gap])
    lower = brow - np.array([0.0, 0.35 * gap])
    return np.concatenate([upper, lower[::-1]], axis=0)


def _nose_polygon(lm: np.ndarray) -> np.ndarray:
    """Nose outline: bridge (27-30) widened to a quarter of the nostril span, nostrils (31-35) with the
    alae extended sideways by 15 % of the span."""
    span = float(lm[35, 0] - lm[31, 0])
    top, tip = lm[27], lm[30]
    half_top = np.array([0.25 * span, 0.0])
    wing = np.array([0.15 * span, 0.0])
    half_tip = np.array([0.65 * span, 0.0])
    return np.array(
        [
            top - half_top,
            tip - half_tip,
            lm[31] - wing,
            *lm[32:35],
            lm[35] + wing,
            tip + half_tip,
            top + half_top,
        ]
    )


def label_parts_from_landmarks(vertices: np.ndarray, landmarks68: np.ndarray, resolution: float = 5e-4) -> np.ndarray:
    """Label every vertex of a neutral face with a :class:`FacePart`.

    Hand-written because no library labels face parts on an arbitrary mesh; it uses only the mesh's own
    68 landmarks, so it works for ICT-FaceKit, BFM or any model that provides them. Polygons built from
    landmark groups (eyes 36-47, brows 17-26 as bands, nose 27-35 with alae, lips 48-67) are drawn with
    OpenCV on a frontal orthographic raster of the x-y plane and sampled at each vertex. Vertices outside
    the face oval (left/right of the jaw ends, below the jaw line) or far behind the jaw ends in depth
    (ears, neck, back of the head) are ``OTHER``.

    Args:
        vertices: (N, 3) float, metres, model frame (x viewer's right, y up, z towards the viewer);
            a neutral, frontal face.
        landmarks68: (68,) int, vertex index of each iBUG-68 landmark.
        resolution: raster resolution in metres per pixel.

    Returns:
        (N,) int64 labels, values of :class:`FacePart`.
    """
    check_shape("vertices", vertices, (None, 3))
    check_shape("landmarks68", landmarks68, (68,))
    check_finite("vertices", vertices)
    n = vertices.shape[0]
    if landmarks68.min() < 0 or landmarks68.max() >= n:
        raise ShapeError(f"landmarks68: indices must lie in [0, {n}), got [{landmarks68.min()}, {landmarks68.max()}]")
    verts = np.asarray(vertices, np.float64)
    lm3 = verts[np.asarray(landmarks68, np.int64)]
    lm = lm3[:, :2]
    xy = verts[:, :2]
    canvas = _Canvas(xy, resolution)

    labels = np.full(n, int(FacePart.OTHER), np.int64)

    # Face oval: jaw line 0..16, then straight up from both jaw ends to above the top of the mesh.
    top = xy[:, 1].max() + 0.05
    oval = np.concatenate([lm[_JAW], [[lm[16, 0], top], [lm[0, 0], top]]])
    jaw_depth = min(lm3[0, 2], lm3[16, 2])
    depth_margin = 0.25 * float(lm[16, 0] - lm[0, 0])  # behind the jaw ends by a quarter face width
    in_face = canvas.sample(canvas.polygon_mask(oval, dilate_m=0.004), xy) & (verts[:, 2] > jaw_depth - depth_margin)
    labels[in_face] = FacePart.SKIN

    eye_size = float(np.linalg.norm(lm[39] - lm[36]))
    regions = [
        (FacePart.RIGHT_BROW, _brow_band(lm[_RIGHT_BROW], lm[_RIGHT_EYE].mean(0)), 0.0),
        (FacePart.LEFT_BROW, _brow_band(lm[_LEFT_BROW], lm[_LEFT_EYE].mean(0)), 0.0),
        (FacePart.NOSE, _nose_polygon(lm), 0.0),
        (FacePart.RIGHT_EYE, lm[_RIGHT_EYE], 0.05 * eye_size),
        (FacePart.LEFT_EYE, lm[_LEFT_EYE], 0.05 * eye_size),
        (FacePart.UPPER_LIP, np.concatenate([lm[_OUTER_LIP_UPPER], lm[_INNER_LIP_UPPER][::-1]]), 0.0),
        (FacePart.LOWER_LIP, np.concatenate([lm[_OUTER_LIP_LOWER], lm[_INNER_LIP_LOWER][::-1]]), 0.0),
    ]
    for part, polygon, dilate in regions:
        labels[in_face & canvas.sample(canvas.polygon_mask(polygon, dilate), xy)] = part

    # Mouth interior: strictly inside the inner lip contour and behind the lip line (where the mesh has one).
    inner = canvas.polygon_mask(lm[[60, 61, 62, 63, 64, 65, 66, 67]])
    inner = cv2.erode(inner.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    lip_depth = float(lm3[[61, 62, 63, 65, 66, 67], 2].mean())
    labels[in_face & canvas.sample(inner, xy) & (verts[:, 2] < lip_depth - 1e-3)] = FacePart.MOUTH
    return labels
