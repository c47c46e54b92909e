"""ICT-FaceKit (MIT licence): the default, license-clear morphable model.

Two inputs are supported:

* the converted ``.npz`` (layout in :mod:`dfmvr_core.morphable.npz_format`), e.g.
  ``../shared/data/ict_facekit/ict_face_full_fp32.npz``: :func:`load_ict_npz`;
* the official release folder ``FaceXModel/`` (``generic_neutral_mesh.obj``, ``identityNNN.obj``,
  one OBJ per expression, ``vertex_indices.json``): :func:`convert_ict_release` reproduces that npz
  (vertices of ICT's "Full face area", centimetres, quads split in two).

ICT's identity OBJs are the neutral mesh displaced by one standard deviation of each identity
component, so ``identityNNN - neutral`` is a basis whose coefficients are ~ N(0, 1); expressions are
ARKit-style blendshapes whose weights lie in [0, 1].
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dfmvr_core.errors import ModelFileError
from dfmvr_core.morphable.model import MorphableModel
from dfmvr_core.morphable.npz_format import load_npz_model

FULL_FACE_VERTICES = 9409
"""ICT "Full face area": vertices [0, 9409) and polygons [0, 9230) of the 26,719-vertex head."""
FULL_FACE_POLYGONS = 9230
NARROW_FACE_VERTICES = 6706
"""ICT "Narrow face area": vertices [0, 6706)."""
HEAD_VERTICES = 26719
NEUTRAL_OBJ = "generic_neutral_mesh.obj"
INDICES_JSON = "vertex_indices.json"


def load_ict_npz(path: str | Path) -> MorphableModel:
    """Load the converted ICT-FaceKit model (or any file in the dfmvr npz layout)."""
    return load_npz_model(path)


def read_obj_vertices_and_faces(path: Path) -> tuple[np.ndarray, list[list[int]]]:
    """Vertex positions (V, 3) float64 and polygons (0-based, as listed) of an OBJ file.

    Hand-written on purpose: trimesh (and most OBJ loaders) split vertices at UV seams and regroup
    ICT's OBJ into one mesh per material, which changes the vertex indexing that the basis and the
    landmark indices depend on. Only ``v`` and ``f`` records are read; ``f`` entries may be ``a``,
    ``a/b``, ``a//c`` or ``a/b/c`` (1-based or negative relative indices).
    """
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(handle, 1):
                if line.startswith("v "):
                    parts = line.split()
                    if len(parts) < 4:
                        raise ModelFileError(f"{path}:{line_no}: vertex record needs 3 coordinates: {line.strip()!r}")
                    vertices.append([float(parts[1]), float(parts[2]), float(parts[3])])
                elif line.startswith("f "):
                    count = len(vertices)
                    face = []
                    for token in line.split()[1:]:
                        index = int(token.split("/")[0])
                        face.append(index - 1 if index > 0 else count + index)
                    faces.append(face)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: OBJ file not found") from None
    except ValueError as exc:
        raise ModelFileError(f"{path}: malformed OBJ record ({exc})") from None
    return np.asarray(vertices, dtype=np.float64).reshape(-1, 3), faces


def _face_triangles(faces: list[list[int]]) -> np.ndarray:
    """Triangles of ICT's full-face polygons: quad (a, b, c, d) -> (a, b, c), (a, c, d)."""
    tris: list[list[int]] = []
    for face in faces[:FULL_FACE_POLYGONS]:
        for k in range(1, len(face) - 1):
            tris.append([face[0], face[k], face[k + 1]])
    out = np.asarray(tris, dtype=np.int64)
    if out.size and out.max() >= FULL_FACE_VERTICES:
        raise ModelFileError(
            f"polygons [0, {FULL_FACE_POLYGONS}) reference vertex {int(out.max())}; expected the ICT topology "
            f"whose first {FULL_FACE_POLYGONS} polygons use only the first {FULL_FACE_VERTICES} vertices"
        )
    return out


def _read_face_vertices(path: Path, expected: int) -> np.ndarray:
    vertices, _ = read_obj_vertices_and_faces(path)
    if vertices.shape[0] != expected:
        raise ModelFileError(
            f"{path}: {vertices.shape[0]} vertices, expected {expected} (the ICT-FaceKit head topology)"
        )
    return vertices[:FULL_FACE_VERTICES]


def convert_ict_release(
    folder: str | Path, allow_partial: bool = False, progress: bool = True
) -> dict[str, np.ndarray]:
    """Convert the official ICT-FaceKit ``FaceXModel`` folder to arrays in the npz layout (centimetres).

    Args:
        folder: the release's ``FaceXModel`` folder (or a folder containing it).
        allow_partial: convert whatever identity and expression OBJs are present (e.g. a subset) instead
            of requiring the complete release; the output lists exactly the expressions it holds.
        progress: show a tqdm progress bar over the OBJ files.

    Returns:
        dict with ``mean`` (9409, 3), ``id_basis`` (K_id, 9409, 3), ``exp_basis`` (K_exp, 9409, 3),
        ``exp_names``, ``tris`` (18460, 3) int32, ``lm68_multipie`` (68,) int32,
        ``narrow_face_vertex_count``, ``units`` = "cm", ``source``.

    Raises:
        ModelFileError: the folder, the neutral mesh or ``vertex_indices.json`` is missing, or (without
            ``allow_partial``) an identity or expression file of the release is missing.
    """
    folder = Path(folder)
    if (folder / "FaceXModel").is_dir():
        folder = folder / "FaceXModel"
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: not a folder; expected ICT-FaceKit's FaceXModel folder")
    for required in (NEUTRAL_OBJ, INDICES_JSON):
        if not (folder / required).is_file():
            raise ModelFileError(f"{folder}: missing {required}; expected ICT-FaceKit's FaceXModel folder")
    try:
        indices = json.loads((folder / INDICES_JSON).read_text())
        expression_names = [str(n) for n in indices["expressions"]]
        landmarks = np.asarray(indices["idx_to_landmark_verts"], dtype=np.int64)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{folder / INDICES_JSON}: not ICT's vertex_indices.json ({exc!r})") from None
    if landmarks.shape != (68,):
        raise ModelFileError(
            f"{folder / INDICES_JSON}: idx_to_landmark_verts has {landmarks.shape}, expected 68 indices"
        )

    identity_files = sorted(
        (p for p in folder.glob("identity*.obj") if re.fullmatch(r"identity\d{3}\.obj", p.name)),
        key=lambda p: int(p.stem[len("identity") :]),
    )
    numbers = [int(p.stem[len("identity") :]) for p in identity_files]
    if numbers != list(range(len(numbers))):
        raise ModelFileError(f"{folder}: identity files must be numbered 000, 001, ... without gaps; found {numbers}")
    present = [name for name in expression_names if (folder / f"{name}.obj").is_file()]
    if not allow_partial:
        missing = [name for name in expression_names if name not in present]
        if missing or not identity_files:
            raise ModelFileError(
                f"{folder}: incomplete ICT-FaceKit release ({len(identity_files)} identity files, missing "
                f"expressions {missing[:5]}{'...' if len(missing) > 5 else ''}); pass allow_partial to convert a subset"
            )

    neutral_all, polygons = read_obj_vertices_and_faces(folder / NEUTRAL_OBJ)
    if neutral_all.shape[0] != HEAD_VERTICES:
        raise ModelFileError(f"{folder / NEUTRAL_OBJ}: {neutral_all.shape[0]} vertices, expected {HEAD_VERTICES}")
    neutral = neutral_all[:FULL_FACE_VERTICES]
    triangles = _face_triangles(polygons)

    files = [*identity_files, *(folder / f"{name}.obj" for name in present)]
    deltas = []
    for path in tqdm(files, desc="convert ICT-FaceKit", unit="obj", disable=not progress):
        deltas.append(_read_face_vertices(path, HEAD_VERTICES) - neutral)
    deltas_arr = np.asarray(deltas, dtype=np.float64).reshape(len(files), FULL_FACE_VERTICES, 3)
    k_id = len(identity_files)
    return {
        "mean": neutral.astype(np.float32),
        "id_basis": deltas_arr[:k_id].astype(np.float32),
        "exp_basis": deltas_arr[k_id:].astype(np.float32),
        "exp_names": np.array(present, dtype=str),
        "tris": triangles.astype(np.int32),
        "lm68_multipie": landmarks.astype(np.int32),
        "narrow_face_vertex_count": np.array(NARROW_FACE_VERTICES, dtype=np.int32),
        "units": np.array("cm"),
        "expression_kind": np.array("blendshape"),
        "source": np.array(
            f"ICT-FaceKit FaceXModel (MIT) converted from {folder}; vertices [0:{FULL_FACE_VERTICES}] = Full face area"
        ),
    }
