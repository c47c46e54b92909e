"""The paper's metric (point-to-plane RMSE after ICP on the 95 mm region) and the scan-to-mesh distance."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.evaluation import (
    EvalConfig,
    crop_face_region,
    evaluate_pair,
    point_to_plane_rmse,
    scan_to_mesh_distance,
    summarize,
    vertex_normals,
)


@pytest.fixture(scope="module")
def face(ict_model):
    """The ICT mean face: vertices (N, 3) float64 metres, faces (F, 3), 68 landmark indices."""
    vertices = ict_model.mean_shape.double().numpy()
    return vertices, ict_model.triangles.numpy(), ict_model.landmarks68.numpy()


def _moved(vertices: np.ndarray, degrees: float, axis, translation) -> tuple[np.ndarray, np.ndarray]:
    R = Rotation.from_rotvec(np.radians(degrees) * np.asarray(axis) / np.linalg.norm(axis)).as_matrix()
    return vertices @ R.T + np.asarray(translation), R


def test_identical_meshes_score_zero(face):
    vertices, faces, lm = face
    metrics = evaluate_pair(vertices, faces, vertices, faces, nose_tip=vertices[lm[30]])
    assert metrics.rmse_mm < 1e-9
    assert metrics.scan_to_mesh_mm < 1e-3
    assert 1000 < len(metrics.region_indices) < len(vertices)  # the 95 mm region, not the whole head
    per_vertex = metrics.per_vertex_error_mm
    assert per_vertex.shape == (len(vertices),)
    assert np.isnan(per_vertex).sum() == len(vertices) - len(metrics.region_indices)
    assert np.allclose(metrics.transform, np.eye(4), atol=1e-9)


def test_rigid_motion_is_removed_from_landmarks_and_by_icp_alone(face):
    vertices, faces, lm = face
    moved, R = _moved(vertices, 10.0, (0.3, 1.0, 0.2), (0.02, -0.01, 0.015))
    with_landmarks = evaluate_pair(moved, faces, vertices, faces, pred_landmarks=moved[lm], gt_landmarks=vertices[lm])
    assert with_landmarks.rmse_mm < 0.1 and with_landmarks.scan_to_mesh_mm < 0.1
    assert np.allclose(with_landmarks.transform[:3, :3], R.T, atol=1e-6)  # it undoes the motion
    # ICP alone (no landmarks) converges from a smaller motion; the protocol starts it from the landmarks
    near, _ = _moved(vertices, 5.0, (0.3, 1.0, 0.2), (0.01, -0.005, 0.008))
    icp_only = evaluate_pair(near, faces, vertices, faces, nose_tip=vertices[lm[30]])
    assert icp_only.icp_converged and icp_only.icp_iterations > 2
    assert icp_only.rmse_mm < 0.1 and icp_only.scan_to_mesh_mm < 0.1
    # without ICP and landmarks the motion stays in the error (millimetres)
    raw = evaluate_pair(near, faces, vertices, faces, nose_tip=vertices[lm[30]], config=EvalConfig(use_icp=False))
    assert raw.rmse_mm > 2.0


def test_point_to_point_icp_converges_on_a_small_offset(face):
    vertices, faces, lm = face
    moved, _ = _moved(vertices, 1.0, (1.0, 0.2, 0.0), (0.001, 0.002, 0.0))
    config = EvalConfig(icp_method="point_to_point", icp_max_points=500)
    metrics = evaluate_pair(moved, faces, vertices, faces, nose_tip=vertices[lm[30]], config=config)
    assert metrics.rmse_mm < 0.1


def test_normal_offset_of_one_millimetre_gives_rmse_of_one_millimetre():
    # a closed sphere grown by 1 mm along its normals: no rigid motion can remove any of it
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.08)
    gt = np.asarray(sphere.vertices)
    faces = np.asarray(sphere.faces)
    pred = gt + 0.001 * vertex_normals(gt, faces)
    top = int(np.argmax(gt[:, 2]))
    metrics = evaluate_pair(pred, faces, gt, faces, nose_tip=gt[top], config=EvalConfig(crop_radius_m=0.2))
    assert len(metrics.region_indices) == len(gt)
    assert metrics.rmse_mm == pytest.approx(1.0, abs=0.01)
    assert np.allclose(metrics.point_to_plane_mm, 1.0, atol=0.05)
    # the flat triangles of the bigger sphere lie inside it: the surface is a little closer than its vertices
    assert 0.85 < metrics.scan_to_mesh_mm <= 1.0
    # a similarity alignment absorbs a uniform growth
    scaled = evaluate_pair(
        pred, faces, gt, faces, nose_tip=gt[top], config=EvalConfig(crop_radius_m=0.2, with_scale=True)
    )
    assert scaled.rmse_mm < 0.05
    assert scaled.scale == pytest.approx(80.0 / 81.0, abs=1e-4)


def test_normal_offset_on_the_face_region_without_icp(face):
    vertices, faces, lm = face
    pred = vertices + 0.001 * vertex_normals(vertices, faces)
    metrics = evaluate_pair(pred, faces, vertices, faces, nose_tip=vertices[lm[30]], config=EvalConfig(use_icp=False))
    assert metrics.rmse_mm == pytest.approx(1.0, abs=0.05)
    assert metrics.scan_to_mesh_mm == pytest.approx(1.0, abs=0.1)


def _flat_grid(n: int, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """An n × n grid in the plane z = 0 (normal +z, counter-clockwise seen from +z)."""
    s = np.linspace(-half_width, half_width, n)
    gx, gy = np.meshgrid(s, s, indexing="xy")
    vertices = np.stack([gx.ravel(), gy.ravel(), np.zeros(n * n)], axis=1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return vertices, np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])


def test_tangential_shift_separates_the_two_metrics():
    # 21 x 21 grid, 5 mm spacing, all inside the 95 mm region; the prediction slides 2 mm along +x
    gt, faces = _flat_grid(21, 0.05)
    assert np.allclose(vertex_normals(gt, faces), (0, 0, 1))
    pred = gt + np.array((0.002, 0.0, 0.0))
    metrics = evaluate_pair(pred, faces, gt, faces, nose_tip=np.zeros(3), config=EvalConfig(use_icp=False))
    # the tangent planes do not move: point-to-plane sees nothing
    assert metrics.rmse_mm < 1e-9
    # the surface does: the 21 ground-truth vertices of the left column are 2 mm beyond the predicted edge
    assert metrics.scan_to_mesh_mm == pytest.approx(2.0 * 21 / 441, rel=1e-6)
    assert np.count_nonzero(metrics.scan_to_mesh_per_vertex_mm > 1.9) == 21


def test_crop_face_region_keeps_the_sphere_around_the_nose(face):
    vertices, faces, lm = face
    nose = vertices[lm[30]]
    small = crop_face_region(vertices, faces, nose, 0.05)
    large = crop_face_region(vertices, faces, nose, 0.095)
    everything = crop_face_region(vertices, faces, nose, 0.9)
    assert len(small.indices) < len(large.indices) < len(everything.indices) == len(vertices)
    assert set(small.indices) <= set(large.indices)
    for region, radius in ((small, 0.05), (large, 0.095)):
        assert np.array_equal(region.vertices, vertices[region.indices])
        assert np.linalg.norm(region.vertices - nose, axis=1).max() <= radius
        # every kept face is an input face with all three corners inside; every such face is kept
        kept = {tuple(f) for f in region.indices[region.faces].tolist()}
        inside = np.linalg.norm(vertices - nose, axis=1) <= radius
        expected = {tuple(f) for f in faces[inside[faces].all(axis=1)].tolist()}
        assert kept == expected
    assert lm[30] in large.indices
    with pytest.raises(ShapeError, match="metres"):
        crop_face_region(vertices * 1000.0, faces, nose, 0.095)  # millimetre data: nothing within 95 "m"m


def test_metric_functions_return_metres(face):
    vertices, faces, lm = face
    pred = vertices + 0.001 * vertex_normals(vertices, faces)
    kwargs = {"nose_tip": vertices[lm[30]], "config": EvalConfig(use_icp=False)}
    metrics = evaluate_pair(pred, faces, vertices, faces, **kwargs)
    assert point_to_plane_rmse(pred, faces, vertices, faces, **kwargs) == pytest.approx(metrics.rmse_mm / 1000)
    assert scan_to_mesh_distance(pred, faces, vertices, faces, **kwargs) == pytest.approx(
        metrics.scan_to_mesh_mm / 1000
    )


def test_summarize_gives_table_statistics():
    rows = [{"rmse_mm": v, "scan_to_mesh_mm": 2 * v} for v in (1.0, 2.0, 4.0)]
    summary = summarize(rows)
    assert summary["count"] == 3
    assert summary["rmse_mm"]["mean"] == pytest.approx(7 / 3)
    assert summary["rmse_mm"]["std"] == pytest.approx(np.std([1.0, 2.0, 4.0]))
    assert summary["rmse_mm"]["median"] == 2.0
    assert summary["scan_to_mesh_mm"]["max"] == 8.0
    assert summarize([])["rmse_mm"]["mean"] is None
    with pytest.raises(ShapeError, match="scan_to_mesh_mm"):
        summarize([{"rmse_mm": 1.0}])


def test_bad_inputs_are_refused(face):
    vertices, faces, lm = face
    nose = vertices[lm[30]]
    bad = vertices.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ShapeError, match="pred_vertices"):
        evaluate_pair(bad, faces, vertices, faces, nose_tip=nose)
    with pytest.raises(ShapeError, match="gt_faces"):
        evaluate_pair(vertices, faces, vertices, faces + len(vertices), nose_tip=nose)
    with pytest.raises(ShapeError, match="nose_tip"):
        evaluate_pair(vertices, faces, vertices, faces)
    with pytest.raises(ShapeError, match="both"):
        evaluate_pair(vertices, faces, vertices, faces, nose_tip=nose, pred_landmarks=vertices[lm])
    with pytest.raises(ConfigError, match="metres"):
        EvalConfig(crop_radius_m=95.0)
    with pytest.raises(ConfigError, match="icp_method"):
        EvalConfig(icp_method="magic")
