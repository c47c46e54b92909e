"""MediaPipe FaceMesh → 68 landmarks on rendered faces (skipped where the 'landmarks' extra is not installed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from prep_helpers import render_rig_faces

from dfmvr_core.preprocess import MediaPipeLandmarkDetector, build_detector, crop_view

pytest.importorskip("mediapipe", reason="mediapipe is dfmvr's optional 'landmarks' extra (pip install -e .[landmarks])")

# iBUG index of each landmark's mirror image about the face's midline.
IBUG_MIRROR = np.array(
    [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46,
     39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
)  # fmt: skip


@pytest.fixture(scope="module")
def detector():
    with MediaPipeLandmarkDetector() as det:
        yield det


@pytest.fixture(scope="module")
def views(ict_model):
    return render_rig_faces(ict_model)


# Mean distance to the model's projected landmarks, measured on these renders (faces ≈ 130 px wide):
# left 3.6 px, front 2.5 px, right 4.0 px (the jaw ends of the turned views, hidden behind the face, up to 15 px).
MAX_MEAN_PX = {"left": 5.5, "front": 3.5, "right": 5.5}


@pytest.mark.parametrize("name", ["left", "front", "right"])
def test_detects_the_rendered_face(detector, views, name) -> None:
    view = views[name]
    face = detector.detect(view.image)
    assert face is not None
    assert face.points68.shape == (68, 2) and face.points68.dtype == np.float32
    error = np.linalg.norm(face.points68 - view.landmarks, axis=1)
    assert error.mean() < MAX_MEAN_PX[name], (error.mean(), error.max())
    assert error[17:].mean() < MAX_MEAN_PX[name] - 0.5  # brows, nose, eyes, lips
    assert 0.5 <= face.confidence <= 1.0  # measured 0.92-0.95
    np.testing.assert_allclose(face.box, [*face.points68.min(0), *face.points68.max(0)])


def test_table_is_mirror_symmetric(detector, views) -> None:
    """Detections on the mirrored image, re-labelled left↔right, land on the original's: the table's pairs match."""
    image = views["front"].image
    face = detector.detect(image)
    mirrored = detector.detect(np.ascontiguousarray(image[:, ::-1]))
    back = mirrored.points68[IBUG_MIRROR].copy()
    back[:, 0] = image.shape[1] - 1 - back[:, 0]
    assert np.linalg.norm(back - face.points68, axis=1).mean() < 1.5  # measured 0.4 px


def test_no_face_and_detector_crops(detector, views) -> None:
    view = views["front"]
    blank = np.zeros_like(view.image)
    assert detector.detect(blank) is None
    crop = crop_view(blank, view.intrinsics, detector=detector)
    assert not crop.valid and crop.reason == "no face detected"
    crop = crop_view(view.image, view.intrinsics, detector=detector)
    truth = crop_view(view.image, view.intrinsics, landmarks=view.landmarks)
    assert crop.valid and crop.source == "detector" and crop.landmarks_crop is not None
    assert abs(crop.box[0] - truth.box[0]) < 4 and abs(crop.box[1] - truth.box[1]) < 4
    assert crop.box[2] == pytest.approx(truth.box[2], rel=0.08)


def test_largest_face_wins(detector, views) -> None:
    """Two faces side by side, one shrunk to half: the large one is returned (both are found on their own)."""
    face = views["front"].image[120:400, 200:440]  # 280 × 240 around the face
    canvas = np.full((480, 640, 3), 38, np.uint8)
    canvas[100:380, 360:600] = face
    canvas[200:340, 40:160] = cv2.resize(face, (120, 140), interpolation=cv2.INTER_AREA)
    found = detector.detect(canvas)
    assert found is not None and found.points68[:, 0].min() > 350
    canvas[100:380, 360:600] = 38
    small = detector.detect(canvas)
    assert small is not None and small.points68[:, 0].max() < 170


def test_build_detector_mediapipe() -> None:
    det = build_detector("mediapipe", min_detection_confidence=0.6)
    try:
        assert isinstance(det, MediaPipeLandmarkDetector) and det.min_detection_confidence == 0.6
    finally:
        det.close()
