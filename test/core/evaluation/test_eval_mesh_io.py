"""Mesh files: .ply / .obj / .npz round trips keep the vertex order; bad files give ModelFileError."""

from __future__ import annotations

import numpy as np
import pytest

from dfmvr_core.errors import DfmvrError, ModelFileError, ShapeError
from dfmvr_core.mesh_io import read_mesh, write_mesh


@pytest.fixture(scope="module")
def mesh():
    """A small irregular mesh whose vertex order matters (shuffled indices, random positions in metres)."""
    rng = np.random.default_rng(1)
    vertices = rng.uniform(-0.1, 0.1, (60, 3))
    faces = np.stack([rng.permutation(60)[:3] for _ in range(80)])
    return vertices, faces


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_round_trip_keeps_vertex_order(tmp_path, mesh, suffix):
    vertices, faces = mesh
    colors = np.random.default_rng(2).integers(0, 256, (len(vertices), 3)).astype(np.uint8)
    path = write_mesh(tmp_path / f"face{suffix}", vertices, faces, vertex_colors=colors)
    read_vertices, read_faces = read_mesh(path)
    assert read_vertices.dtype == np.float64 and read_faces.dtype == np.int64
    assert np.allclose(read_vertices, vertices, atol=1e-7)  # float32 in PLY: sub-micrometre
    assert np.array_equal(read_faces, faces)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"face{suffix}"]  # atomic: no temporary left


def test_npz_meshes_are_read(tmp_path, mesh):
    vertices, faces = mesh
    np.savez(tmp_path / "m.npz", vertices=vertices, faces=faces)
    read_vertices, read_faces = read_mesh(tmp_path / "m.npz")
    assert np.array_equal(read_vertices, vertices) and np.array_equal(read_faces, faces)
    np.savez(tmp_path / "bad.npz", vertices=vertices)
    with pytest.raises(ModelFileError, match="faces"):
        read_mesh(tmp_path / "bad.npz")


def test_float_colours_and_bad_arguments(tmp_path, mesh):
    vertices, faces = mesh
    write_mesh(tmp_path / "c.ply", vertices, faces, vertex_colors=np.full((len(vertices), 3), 0.5))
    with pytest.raises(ShapeError, match="vertex_colors"):
        write_mesh(tmp_path / "d.ply", vertices, faces, vertex_colors=np.zeros((3, 3)))
    with pytest.raises(ShapeError, match="faces"):
        write_mesh(tmp_path / "e.ply", vertices, faces + 100)
    with pytest.raises(DfmvrError, match=r"\.stl"):
        write_mesh(tmp_path / "f.stl", vertices, faces)


def test_missing_and_corrupt_files_raise_model_file_error(tmp_path, mesh):
    with pytest.raises(ModelFileError, match="not found"):
        read_mesh(tmp_path / "absent.ply")
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nproperty float x\nend_header\n\x01")
    with pytest.raises(ModelFileError, match=r"garbage\.ply"):
        read_mesh(garbage)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match=r"truncated\.npz"):
        read_mesh(truncated)
    nan_obj = tmp_path / "nan.obj"
    nan_obj.write_text("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(ModelFileError, match="non-finite"):
        read_mesh(nan_obj)
    with pytest.raises(ModelFileError, match="unsupported"):
        read_mesh(tmp_path / "mesh.stl")
