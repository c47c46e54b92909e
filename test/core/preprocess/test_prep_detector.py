"""Detector plumbing that needs no MediaPipe: the result type, the factory, config errors, the missing extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dfmvr_core.errors import ConfigError, DfmvrError, ShapeError
from dfmvr_core.inference import MissingDependencyError
from dfmvr_core.preprocess import (
    MEDIAPIPE_TO_IBUG68,
    FaceLandmarks,
    LandmarkDetector,
    MediaPipeLandmarkDetector,
    build_detector,
    ibug68_from_mediapipe,
)


def test_face_landmarks_from_points() -> None:
    points = np.random.default_rng(0).uniform(100, 200, (68, 2))
    face = FaceLandmarks.from_points(points, 0.9)
    assert face.points68.dtype == np.float32 and face.box.dtype == np.float32
    np.testing.assert_allclose(face.box, [*points.min(0), *points.max(0)], rtol=1e-6)
    assert face.confidence == pytest.approx(0.9)
    with pytest.raises(ShapeError, match=r"^points68: expected shape \(68, 2\), got \(67, 2\)"):
        FaceLandmarks.from_points(points[:67])
    points[3, 1] = np.nan
    with pytest.raises(ShapeError, match=r"^points68: 1 non-finite value"):
        FaceLandmarks.from_points(points)


def test_landmark_detector_protocol() -> None:
    class Fake:
        def detect(self, image: np.ndarray) -> FaceLandmarks | None:
            return None

    assert isinstance(Fake(), LandmarkDetector)
    assert not isinstance(object(), LandmarkDetector)


def test_build_detector_names() -> None:
    assert build_detector("none") is None
    with pytest.raises(ConfigError, match=r"^detector: expected one of \['mediapipe', 'none'\], got 'dlib'"):
        build_detector("dlib")
    with pytest.raises(ConfigError, match=r"takes no options"):
        build_detector("none", max_num_faces=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_detection_confidence": 1.5}, r"^min_detection_confidence: expected a number in \[0, 1\], got 1.5"),
        ({"min_tracking_confidence": -0.1}, r"^min_tracking_confidence: expected a number in \[0, 1\]"),
        ({"max_num_faces": 0}, r"^max_num_faces: expected an integer in \[1, 32\], got 0"),
        ({"static_image_mode": "yes"}, r"^static_image_mode: expected true or false"),
    ],
)
def test_mediapipe_detector_validates_options(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        MediaPipeLandmarkDetector(**kwargs)


def test_missing_mediapipe_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install -c constraints.txt -e \.\[landmarks\]") as info:
        build_detector("mediapipe")
    assert isinstance(info.value, DfmvrError) and isinstance(info.value, ImportError)


def test_mediapipe_table() -> None:
    table = np.asarray(MEDIAPIPE_TO_IBUG68)
    assert table.shape == (68,) and len(set(table.tolist())) == 68
    assert table.min() >= 0 and table.max() < 468
    mesh = np.random.default_rng(1).normal(size=(2, 478, 3))
    out = ibug68_from_mediapipe(mesh)
    assert out.shape == (2, 68, 3)
    np.testing.assert_array_equal(out[1, 8], mesh[1, table[8]])
    assert ibug68_from_mediapipe(mesh[0, :468, :2]).shape == (68, 2)
    with pytest.raises(ShapeError, match=r"^points: expected \(\.\.\., 468 or 478, D\).*got shape \(68, 2\)"):
        ibug68_from_mediapipe(mesh[0, :68, :2])
