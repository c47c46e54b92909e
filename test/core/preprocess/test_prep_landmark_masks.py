"""Face-part masks from landmarks against the renderer's part map of the same face (three rig views)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from prep_helpers import render_rig_faces

from dfmvr_core.errors import ShapeError
from dfmvr_core.morphable import FacePart
from dfmvr_core.preprocess import crop_view, parts_from_landmarks, parts_from_landmarks_batch


@pytest.fixture(scope="module")
def crops(ict_model):
    """Per view: (landmarks in crop pixels, the renderer's part map cut to the same crop)."""
    out = {}
    for name, view in render_rig_faces(ict_model).items():
        crop = crop_view(view.image, view.intrinsics, landmarks=view.landmarks)
        parts = cv2.warpAffine(view.parts.astype(np.uint8), crop.A, (224, 224), flags=cv2.INTER_NEAREST)
        out[name] = (crop.landmarks_crop, parts.astype(np.int64))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _eye_truth(parts: np.ndarray, label: int) -> np.ndarray:
    """The rendered mesh has holes where the eyeballs are: the eye is its rim label plus the hole it surrounds."""
    face = (parts > 0).astype(np.uint8)
    flood = face.copy()
    cv2.floodFill(flood, np.zeros((226, 226), np.uint8), (0, 0), 2)
    near_rim = cv2.dilate((parts == label).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return (parts == label) | ((flood == 0) & near_rim)


# Measured IoU (left, front, right): skin 0.70/0.94/0.70 (in side views the model's skin reaches the ear, beyond the
# jaw landmarks), brows 0.67-0.87, eyes 0.45-0.49, nose 0.68/0.95/0.70, lips 0.84-0.89.
MIN_IOU = {
    "left": {"skin": 0.62, "brow": 0.6, "eye": 0.38, "nose": 0.6, "lip": 0.75},
    "front": {"skin": 0.88, "brow": 0.75, "eye": 0.38, "nose": 0.85, "lip": 0.78},
    "right": {"skin": 0.62, "brow": 0.6, "eye": 0.38, "nose": 0.6, "lip": 0.75},
}


@pytest.mark.parametrize("name", ["left", "front", "right"])
def test_masks_match_the_rendered_parts(crops, name) -> None:
    landmarks, truth = crops[name]
    mask = parts_from_landmarks(landmarks, 224)
    assert mask.shape == (224, 224) and mask.dtype == np.int64
    assert set(np.unique(mask).tolist()) <= set(range(10))
    low = MIN_IOU[name]
    ious = {
        "skin": _iou(mask == FacePart.SKIN, truth == FacePart.SKIN),
        "nose": _iou(mask == FacePart.NOSE, truth == FacePart.NOSE),
    }
    for part in (FacePart.LEFT_BROW, FacePart.RIGHT_BROW):
        ious[f"brow{part}"] = _iou(mask == part, truth == part)
    for part in (FacePart.LEFT_EYE, FacePart.RIGHT_EYE):
        ious[f"eye{part}"] = _iou(mask == part, _eye_truth(truth, part))
    for part in (FacePart.UPPER_LIP, FacePart.LOWER_LIP):
        ious[f"lip{part}"] = _iou(mask == part, truth == part)
    face_iou = _iou(mask > 0, truth > 0)
    assert face_iou > low["skin"], face_iou
    for key, value in ious.items():
        assert value > low[key.rstrip("0123456789")], (key, value, ious)


def test_left_is_the_subjects_left(crops) -> None:
    landmarks, _ = crops["front"]
    mask = parts_from_landmarks(landmarks)
    cols = np.arange(224)[None, :]
    centre = landmarks[27:31, 0].mean()
    for left, right in ((FacePart.LEFT_EYE, FacePart.RIGHT_EYE), (FacePart.LEFT_BROW, FacePart.RIGHT_BROW)):
        # A frontal face looks at the camera: the subject's left is on the image's right.
        assert (np.broadcast_to(cols, mask.shape)[mask == left] > centre).all()
        assert (np.broadcast_to(cols, mask.shape)[mask == right] < centre).all()


def test_mouth_interior_only_when_open(crops) -> None:
    landmarks, _ = crops["front"]
    closed = landmarks.copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]  # inner lips touch: a degenerate polygon
    assert (parts_from_landmarks(closed) == FacePart.MOUTH).sum() == 0
    opened = landmarks.copy()
    opened[[65, 66, 67, 55, 56, 57, 58, 59]] += (0.0, 12.0)  # drop the lower lip by 12 px
    mask = parts_from_landmarks(opened)
    mouth = mask == FacePart.MOUTH
    assert mouth.sum() > 100
    rows = np.nonzero(mouth)[0]
    assert rows.min() > landmarks[62, 1] - 1 and rows.max() < opened[66, 1] + 1
    assert (mask == FacePart.LOWER_LIP).sum() > 0 and (mask == FacePart.UPPER_LIP).sum() > 0


def test_batch_and_scaling(crops) -> None:
    stack = np.stack([crops[n][0] for n in ("left", "front", "right")])
    batch = parts_from_landmarks_batch(stack, 224)
    assert batch.shape == (3, 224, 224) and batch.dtype == np.int64
    for i in range(3):
        np.testing.assert_array_equal(batch[i], parts_from_landmarks(stack[i], 224))
    # Twice the landmarks on a twice larger canvas: the same drawing, up to the polygon edges.
    big = parts_from_landmarks((stack[1] + 0.5) * 2 - 0.5, 448)
    assert (big[::2, ::2] == batch[1]).mean() > 0.97
    # Landmarks partly outside the canvas are clipped, not an error.
    shifted = parts_from_landmarks(stack[1] + (150.0, 0.0))
    assert 0 < (shifted > 0).mean() < (batch[1] > 0).mean()


def test_bad_landmarks_raise(crops) -> None:
    landmarks, _ = crops["front"]
    with pytest.raises(ShapeError, match=r"^landmarks: expected a numeric array \(68, 2\).*got NoneType.*ROI"):
        parts_from_landmarks(None)
    with pytest.raises(ShapeError, match=r"^landmarks: expected shape \(68, 2\), got \(67, 2\)"):
        parts_from_landmarks(landmarks[:67])
    bad = landmarks.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ShapeError, match=r"^landmarks: 1 non-finite value"):
        parts_from_landmarks(bad)
    with pytest.raises(ShapeError, match=r"^size: expected a positive integer"):
        parts_from_landmarks(landmarks, 0)
    with pytest.raises(ShapeError, match=r"^landmarks: expected shape \(\*, 68, 2\)"):
        parts_from_landmarks_batch(landmarks)
