"""Triangle-mesh files: ``.ply`` / ``.obj`` through trimesh, ``.npz`` with ``vertices`` / ``faces`` arrays.

Vertex order is kept on both write and read (trimesh with ``process=False``; OBJ files are read with
``maintain_order=True`` and written without normals or texture coordinates, so no vertex is split or merged):
vertex ``i`` of a written mesh is vertex ``i`` of the mesh read back, which per-vertex metrics and the
morphable model's landmark indices rely on. Units are whatever the caller stores (dfmvr writes metres).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import trimesh

from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import DfmvrError, ModelFileError, ShapeError
from dfmvr_core.validation import check_finite, check_shape

__all__ = ["MESH_SUFFIXES", "read_mesh", "write_mesh"]

MESH_SUFFIXES = (".ply", ".obj", ".npz")
"""File types :func:`read_mesh` accepts (:func:`write_mesh` writes the first two)."""


def _check_mesh_arrays(vertices: np.ndarray, faces: np.ndarray, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(N, 3)`` finite vertices and ``(F, 3)`` integer faces indexing them; return float64/int64 copies."""
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    check_shape(f"{origin} vertices", vertices, (None, 3))
    check_shape(f"{origin} faces", faces, (None, 3))
    if vertices.dtype.kind not in "fiu":
        raise ShapeError(f"{origin} vertices: expected numbers, got dtype {vertices.dtype}")
    if faces.size and faces.dtype.kind not in "iu":
        raise ShapeError(f"{origin} faces: expected integer vertex indices, got dtype {faces.dtype}")
    check_finite(f"{origin} vertices", vertices)
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ShapeError(
            f"{origin} faces: vertex indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]"
        )
    return vertices.astype(np.float64), faces.astype(np.int64)


def _colors_uint8(vertex_colors: np.ndarray, n: int) -> np.ndarray:
    colors = np.asarray(vertex_colors)
    if colors.ndim != 2 or colors.shape[0] != n or colors.shape[1] not in (3, 4):
        raise ShapeError(f"vertex_colors: expected shape ({n}, 3) or ({n}, 4), got {colors.shape}")
    if colors.dtype == np.uint8:
        return colors
    if colors.dtype.kind != "f":
        raise ShapeError(f"vertex_colors: expected uint8 or float in [0, 1], got dtype {colors.dtype}")
    check_finite("vertex_colors", colors)
    return (np.clip(colors, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_mesh(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    vertex_colors: np.ndarray | None = None,
) -> Path:
    """Write a triangle mesh as ``.ply`` (binary) or ``.obj`` (text), atomically, keeping the vertex order.

    Args:
        path: target file; its suffix (``.ply`` or ``.obj``) picks the format.
        vertices: ``(N, 3)`` float, metres by dfmvr's convention (written as given).
        faces: ``(F, 3)`` int, 0-based vertex indices.
        vertex_colors: optional ``(N, 3|4)`` uint8, or float in ``[0, 1]`` (clipped, scaled to 0-255).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ShapeError: wrong shapes or dtypes, non-finite vertices, face indices out of range.
        DfmvrError: an unsupported suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".ply", ".obj"):
        raise DfmvrError(f"{path}: unsupported mesh file type {suffix!r}; expected .ply or .obj")
    vertices, faces = _check_mesh_arrays(vertices, faces, "mesh")
    colors = _colors_uint8(vertex_colors, len(vertices)) if vertex_colors is not None else None
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=colors, process=False)
    with atomic_path(path) as tmp:
        if suffix == ".obj":
            text = trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_texture=False, digits=9)
            tmp.write_text(text, encoding="utf-8")
        else:
            mesh.export(tmp, file_type="ply")
    return path


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh, keeping the file's vertex order.

    Args:
        path: ``.ply``, ``.obj`` (polygons are triangulated by trimesh) or ``.npz`` holding ``vertices``
            ``(N, 3)`` and ``faces`` ``(F, 3)`` arrays.

    Returns:
        ``(vertices (N, 3) float64, faces (F, 3) int64)`` in the file's units.

    Raises:
        ModelFileError: the file is missing, of an unsupported type, unreadable or corrupt, holds no
            vertices, non-finite vertices or face indices out of range; the message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ModelFileError(f"{path}: unsupported mesh file type {suffix!r}; expected one of {list(MESH_SUFFIXES)}")
    if not path.is_file():
        raise ModelFileError(f"{path}: mesh file not found")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [key for key in ("vertices", "faces") if key not in data.files]
                if missing:
                    raise ModelFileError(
                        f"{path}: missing array(s) {missing}; expected 'vertices' (N, 3) and 'faces' (F, 3)"
                    )
                vertices, faces = data["vertices"], data["faces"]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ModelFileError(f"{path}: not a readable .npz archive (truncated or corrupt?): {exc}") from None
    else:
        try:
            kwargs = {"maintain_order": True} if suffix == ".obj" else {}
            mesh = trimesh.load(path, process=False, force="mesh", **kwargs)
        except Exception as exc:  # trimesh raises many types for corrupt files: report them all as one
            raise ModelFileError(f"{path}: not a readable {suffix} mesh (truncated or corrupt?): {exc}") from None
        if not isinstance(mesh, trimesh.Trimesh):
            raise ModelFileError(f"{path}: expected a triangle mesh, got {type(mesh).__name__}")
        vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if len(vertices) == 0:
        raise ModelFileError(f"{path}: the mesh has no vertices")
    try:
        return _check_mesh_arrays(vertices, faces, str(path))
    except ShapeError as exc:
        raise ModelFileError(str(exc)) from None
