"""Closest-point queries (against brute force), landmark alignment and ICP."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from dfmvr_core.errors import ShapeError
from dfmvr_core.evaluation import MeshSurface, apply_transform, icp_align, landmark_alignment, vertex_normals


@pytest.fixture(scope="module")
def bumpy():
    """A small irregular closed mesh (a sphere with random radial bumps) and query points around it."""
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.05)
    rng = np.random.default_rng(3)
    vertices = np.asarray(sphere.vertices) * rng.uniform(0.8, 1.2, (len(sphere.vertices), 1))
    queries = rng.normal(0.0, 0.04, (300, 3))
    return vertices, np.asarray(sphere.faces), queries


def test_closest_points_match_brute_force(bumpy):
    vertices, faces, queries = bumpy
    surface = MeshSurface(vertices, faces)
    result = surface.closest_points(queries)
    # brute force: every query against every triangle
    tri = np.repeat(vertices[faces][None], len(queries), axis=0).reshape(-1, 3, 3)
    pts = np.repeat(queries, len(faces), axis=0)
    brute = np.linalg.norm(trimesh.triangles.closest_point(tri, pts) - pts, axis=1).reshape(len(queries), -1)
    assert np.allclose(result.distances, brute.min(axis=1), atol=1e-12)
    assert np.allclose(np.linalg.norm(result.points - queries, axis=1), result.distances)
    # the reported triangle holds the reported point
    again = trimesh.triangles.closest_point(vertices[faces[result.triangle_ids]], queries)
    assert np.allclose(again, result.points, atol=1e-12)


def test_isolated_vertices_are_not_part_of_the_surface():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.2, 0.01]], dtype=float)  # vertex 3: on no face
    surface = MeshSurface(vertices, np.array([[0, 1, 2]]))
    index, _ = surface.nearest_vertices(np.array([[0.2, 0.2, 0.01]]))
    assert index[0] == 0
    assert surface.closest_points(np.array([[0.2, 0.2, 0.5]])).distances[0] == pytest.approx(0.5)
    with pytest.raises(ShapeError, match="faces"):
        MeshSurface(vertices, np.array([[0, 1, 7]]))


def test_vertex_normals_point_outwards():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=2.0)
    normals = vertex_normals(sphere.vertices, sphere.faces)
    radial = np.asarray(sphere.vertices) / 2.0
    assert np.einsum("ij,ij->i", normals, radial).min() > 0.999


def test_landmark_alignment_recovers_a_similarity_without_reflection():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(10, 3))
    R = Rotation.from_euler("xyz", (20, -35, 50), degrees=True).as_matrix()
    target = 1.2 * source @ R.T + (0.1, -0.2, 0.3)
    similarity = landmark_alignment(source, target, with_scale=True)
    assert np.allclose(apply_transform(source, similarity), target, atol=1e-12)
    rigid = landmark_alignment(source, target)
    assert np.allclose(rigid[:3, :3], R, atol=1e-9)  # rigid keeps the rotation, scale 1
    mirrored = landmark_alignment(source, source * (-1, 1, 1))
    assert np.linalg.det(mirrored[:3, :3]) == pytest.approx(1.0)
    with pytest.raises(ShapeError, match="at least 3"):
        landmark_alignment(source[:2], target[:2])


def test_icp_recovers_a_rotation_translation_and_scale(ict_model):
    vertices = ict_model.mean_shape.double().numpy()
    faces = ict_model.triangles.numpy()
    target = MeshSurface(vertices, faces)
    R = Rotation.from_euler("xyz", (4, -3, 2), degrees=True).as_matrix()
    truth = np.eye(4)
    truth[:3, :3] = 1.05 * R
    truth[:3, 3] = (0.004, -0.003, 0.005)
    front = vertices[vertices[:, 2] > 0.06]
    source = apply_transform(front, np.linalg.inv(truth))  # ICP must find `truth` to put them back
    result = icp_align(source, target, with_scale=True, max_points=1500)
    assert result.converged
    assert np.allclose(result.matrix, truth, atol=1e-6)
    assert result.rms_distance < 1e-7
    with pytest.raises(ShapeError, match="method"):
        icp_align(source, target, method="point_to_curve")
