"""Per-vertex part labels from the 68 landmarks: layout checks on the ICT-FaceKit model."""

from __future__ import annotations

import numpy as np
import pytest

from dfmvr_core.errors import ShapeError
from dfmvr_core.morphable import FacePart, label_parts_from_landmarks


def _centroid(model, part: FacePart) -> np.ndarray:
    labels = model.part_labels.numpy()
    assert (labels == part).sum() > 20, f"{part.name} has too few vertices"
    return model.mean_shape.numpy()[labels == part].mean(axis=0)


def test_parts_are_laid_out_like_a_face(ict_model):
    y = {part: _centroid(ict_model, part)[1] for part in FacePart if part not in (FacePart.OTHER, FacePart.MOUTH)}
    eyes_y = (y[FacePart.LEFT_EYE] + y[FacePart.RIGHT_EYE]) / 2
    lips_y = (y[FacePart.UPPER_LIP] + y[FacePart.LOWER_LIP]) / 2
    assert lips_y < y[FacePart.NOSE] < eyes_y  # nose between the eyes and the mouth (y up)
    assert y[FacePart.LEFT_BROW] > y[FacePart.LEFT_EYE] and y[FacePart.RIGHT_BROW] > y[FacePart.RIGHT_EYE]
    assert y[FacePart.UPPER_LIP] > y[FacePart.LOWER_LIP]


def test_left_and_right_are_the_subjects_own(ict_model):
    # Model frame: +x is the viewer's right = the subject's left.
    assert _centroid(ict_model, FacePart.LEFT_EYE)[0] > 0 > _centroid(ict_model, FacePart.RIGHT_EYE)[0]
    assert _centroid(ict_model, FacePart.LEFT_BROW)[0] > 0 > _centroid(ict_model, FacePart.RIGHT_BROW)[0]
    assert abs(_centroid(ict_model, FacePart.NOSE)[0]) < 0.005


def test_ears_and_neck_are_other_and_the_cheeks_are_skin(ict_model):
    verts = ict_model.mean_shape.numpy()
    labels = ict_model.part_labels.numpy()
    ears = np.abs(verts[:, 0]) > 0.085
    assert ears.sum() > 50 and np.all(labels[ears] == FacePart.OTHER)
    chin_y = verts[int(ict_model.landmarks68[8]), 1]
    neck = verts[:, 1] < chin_y - 0.03
    assert neck.sum() > 50 and np.all(labels[neck] == FacePart.OTHER)
    cheek = verts[int(ict_model.landmarks68[3])] * 0.6 + verts[int(ict_model.landmarks68[31])] * 0.4
    nearest = np.argmin(np.linalg.norm(verts - cheek, axis=1))
    assert labels[nearest] == FacePart.SKIN


def test_every_landmark_region_vertex_gets_its_part(ict_model):
    labels = ict_model.part_labels.numpy()
    lm = ict_model.landmarks68.numpy()
    assert labels[lm[30]] == FacePart.NOSE  # nose tip
    assert labels[lm[51]] == FacePart.UPPER_LIP  # upper lip, top centre
    assert labels[lm[57]] == FacePart.LOWER_LIP  # lower lip, bottom centre
    assert labels[lm[19]] == FacePart.RIGHT_BROW and labels[lm[24]] == FacePart.LEFT_BROW


def test_bad_landmarks_are_refused():
    verts = np.zeros((10, 3))
    with pytest.raises(ShapeError, match=r"landmarks68: expected shape \(68\)"):
        label_parts_from_landmarks(verts, np.arange(10))
    with pytest.raises(ShapeError, match=r"indices must lie in \[0, 10\)"):
        label_parts_from_landmarks(verts, np.arange(68))
