"""N-view linear triangulation: exact on noiseless views, equal to OpenCV's two-view DLT, visibility handled."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry.rig import CameraRig, RigConfig
from dfmvr_core.geometry.triangulation import projection_matrices, reprojection_errors, triangulate_points


@pytest.fixture(scope="module")
def rig_cameras():
    rig = CameraRig.from_config(RigConfig())
    K = np.stack([rig.intrinsics[n].matrix(torch.float64).numpy() for n in rig.names])
    T = np.stack([rig.T_camera_from_rig(n).double().numpy() for n in rig.names])
    points = rig.subject_center_rig.numpy() + np.random.default_rng(0).normal(0.0, 0.05, (40, 3))
    P = projection_matrices(K, T)
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    uvw = np.einsum("vij,nj->vni", P, homogeneous)
    return {"P": P, "points": points, "uv": uvw[..., :2] / uvw[..., 2:]}


def test_noiseless_views_give_the_points_back(rig_cameras):
    X, ok = triangulate_points(rig_cameras["uv"], rig_cameras["P"])
    assert ok.all()
    np.testing.assert_allclose(X, rig_cameras["points"], atol=1e-9)
    assert reprojection_errors(X, rig_cameras["uv"], rig_cameras["P"]).max() < 1e-6


def test_two_views_agree_with_opencv(rig_cameras):
    uv = rig_cameras["uv"] + np.random.default_rng(1).normal(0.0, 1.0, rig_cameras["uv"].shape)  # 1 px noise
    P = rig_cameras["P"]
    ours, ok = triangulate_points(uv[[0, 2]], P[[0, 2]])
    theirs = cv2.triangulatePoints(P[0], P[2], uv[0].T.copy(), uv[2].T.copy())
    assert ok.all()
    np.testing.assert_allclose(ours, (theirs[:3] / theirs[3]).T, atol=1e-4)  # metres: sub-0.1 mm
    three, _ = triangulate_points(uv, P)
    # noise of 1 px gives millimetres at 0.7 m; three views average it down
    assert np.abs(three - rig_cameras["points"]).max() < 0.01


def test_visibility_points_seen_once_or_behind_a_camera(rig_cameras):
    uv, P = rig_cameras["uv"].copy(), rig_cameras["P"]
    visible = np.ones(uv.shape[:2], dtype=bool)
    visible[[0, 1], 0] = False  # point 0: only the right camera
    visible[0, 1] = False  # point 1: front and right, still triangulated
    uv[0, 0] = np.nan  # an unseen point's coordinates are ignored, even NaN
    X, ok = triangulate_points(uv, P, visible)
    assert not ok[0] and np.isnan(X[0]).all() and ok[1:].all()
    np.testing.assert_allclose(X[1:], rig_cameras["points"][1:], atol=1e-9)
    # a point "seen" at mirror-image positions has its least-squares solution behind the cameras
    behind = -rig_cameras["points"][:1] * 3.0
    homogeneous = np.concatenate([behind, np.ones((1, 1))], axis=1)
    uvw = np.einsum("vij,nj->vni", P, homogeneous)
    X, ok = triangulate_points(uvw[..., :2] / uvw[..., 2:], P)
    assert not ok[0]


def test_bad_shapes_and_nan_are_named(rig_cameras):
    with pytest.raises(ShapeError, match="points"):
        triangulate_points(rig_cameras["uv"][..., 0], rig_cameras["P"])
    with pytest.raises(ShapeError, match=r"P: expected \(3, 3, 4\)"):
        triangulate_points(rig_cameras["uv"], rig_cameras["P"][:2])
    bad = rig_cameras["uv"].copy()
    bad[1, 3] = np.nan
    with pytest.raises(ShapeError, match="points"):
        triangulate_points(bad, rig_cameras["P"])
