"""The ``.npz`` morphable-model format: the layout of ``ict_face_full_fp32.npz``, extended.

Required keys (as the shared ICT file): ``mean`` (N, 3), ``id_basis`` (K_id, N, 3), ``exp_basis``
(K_exp, N, 3), ``tris`` (F, 3) int 0-based, ``lm68_multipie`` (68,) int, ``units`` ("m", "dm", "cm" or "mm").
Optional keys: ``exp_names`` (K_exp,) str, ``mean_albedo`` (N, 3) and ``albedo_basis`` (K_tex, N, 3)
(built with :func:`~dfmvr_core.morphable.albedo.laplacian_albedo` when absent), ``part_labels`` (N,) int
(built from the landmarks when absent), ``name``, ``source``, ``expression_kind``, ``narrow_face_vertex_count``.
Files written by dfmvr always carry the optional keys, so loading them is exact and fast.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ModelFileError
from dfmvr_core.morphable.albedo import laplacian_albedo
from dfmvr_core.morphable.model import MorphableModel
from dfmvr_core.morphable.parts import label_parts_from_landmarks

UNIT_TO_METRES = {"m": 1.0, "dm": 0.1, "cm": 0.01, "mm": 0.001}
REQUIRED_KEYS = ("mean", "id_basis", "exp_basis", "tris", "lm68_multipie", "units")


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file into memory.

    Raises:
        ModelFileError: the file is missing, truncated or not an ``.npz`` archive.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: morphable model file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz archive (truncated or corrupt?): {exc}") from None


def model_from_arrays(arrays: dict[str, np.ndarray], origin: str, name: str | None = None) -> MorphableModel:
    """Build a :class:`MorphableModel` (float32, metres) from arrays in the npz layout.

    Raises:
        ModelFileError: a required key is missing, units are unknown, or an array is invalid; names ``origin``.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ModelFileError(
            f"{origin}: missing key(s) {missing}; "
            f"expected the morphable-model npz layout with keys {list(REQUIRED_KEYS)}"
        )
    units = str(arrays["units"])
    if units not in UNIT_TO_METRES:
        raise ModelFileError(f"{origin}: units {units!r} unknown; expected one of {sorted(UNIT_TO_METRES)}")
    scale = UNIT_TO_METRES[units]
    for key in ("mean", "id_basis", "exp_basis", "mean_albedo", "albedo_basis"):
        if key in arrays and (arrays[key].dtype.kind != "f" or not np.isfinite(arrays[key]).all()):
            bad = "not floating point" if arrays[key].dtype.kind != "f" else "contains NaN or inf"
            raise ModelFileError(f"{origin}: array {key!r} {bad}; expected finite floats")
    for key in ("tris", "lm68_multipie", "part_labels"):
        if key in arrays and arrays[key].dtype.kind not in "iu":
            raise ModelFileError(f"{origin}: array {key!r} must hold integers, got {arrays[key].dtype}")
    mean = arrays["mean"].astype(np.float64) * scale
    if mean.ndim != 2 or mean.shape[-1] != 3:
        raise ModelFileError(f"{origin}: 'mean' must have shape (N, 3), got {arrays['mean'].shape}")
    triangles = arrays["tris"].astype(np.int64)
    landmarks = arrays["lm68_multipie"].astype(np.int64)
    if landmarks.shape != (68,) or landmarks.min() < 0 or landmarks.max() >= mean.shape[0]:
        raise ModelFileError(
            f"{origin}: 'lm68_multipie' must be 68 vertex indices in [0, {mean.shape[0]}), got shape {landmarks.shape}"
        )
    if "part_labels" in arrays:
        part_labels = arrays["part_labels"].astype(np.int64)
    else:
        part_labels = label_parts_from_landmarks(mean, landmarks)
    if "mean_albedo" in arrays and "albedo_basis" in arrays:
        mean_albedo, albedo_basis = arrays["mean_albedo"], arrays["albedo_basis"]
    else:
        if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.min() < 0 or triangles.max() >= len(mean):
            raise ModelFileError(f"{origin}: 'tris' must be (F, 3) vertex indices in [0, {len(mean)})")
        mean_albedo, albedo_basis = laplacian_albedo(triangles, part_labels)
    exp_names = tuple(str(s) for s in arrays["exp_names"]) if "exp_names" in arrays else ()
    as_tensor = lambda a, dt: torch.from_numpy(np.ascontiguousarray(a)).to(dt)  # noqa: E731
    model_name = name or (str(arrays["name"]) if "name" in arrays else Path(origin).stem)
    try:
        model = MorphableModel(
            name=model_name,
            mean_shape=as_tensor(mean, torch.float32),
            id_basis=as_tensor(arrays["id_basis"].astype(np.float64) * scale, torch.float32),
            exp_basis=as_tensor(arrays["exp_basis"].astype(np.float64) * scale, torch.float32),
            mean_albedo=as_tensor(mean_albedo, torch.float32),
            albedo_basis=as_tensor(albedo_basis, torch.float32),
            triangles=as_tensor(triangles, torch.int64),
            landmarks68=as_tensor(landmarks, torch.int64),
            part_labels=as_tensor(part_labels, torch.int64),
            exp_names=exp_names,
            expression_kind=str(arrays.get("expression_kind", "blendshape" if exp_names else "pca")),
            source=str(arrays.get("source", origin)),
        )
    except ModelFileError as exc:
        raise ModelFileError(f"{origin}: {exc}") from None
    return model


def load_npz_model(path: str | Path) -> MorphableModel:
    """Load a morphable model from an ``.npz`` in the layout above (e.g. the shared ICT-FaceKit file)."""
    return model_from_arrays(read_npz(path), str(path))


def model_to_arrays(model: MorphableModel) -> dict[str, Any]:
    """All arrays of ``model`` in the npz layout, metres, float32, with the optional keys filled in."""
    cpu = model.to("cpu")
    return {
        "mean": cpu.mean_shape.numpy().astype(np.float32),
        "id_basis": cpu.id_basis.numpy().astype(np.float32),
        "exp_basis": cpu.exp_basis.numpy().astype(np.float32),
        "tris": cpu.triangles.numpy().astype(np.int32),
        "lm68_multipie": cpu.landmarks68.numpy().astype(np.int32),
        "units": np.array("m"),
        "exp_names": np.array(model.exp_names, dtype=str),
        "mean_albedo": cpu.mean_albedo.numpy().astype(np.float32),
        "albedo_basis": cpu.albedo_basis.numpy().astype(np.float32),
        "part_labels": cpu.part_labels.numpy().astype(np.int8),
        "name": np.array(model.name),
        "source": np.array(model.source),
        "expression_kind": np.array(model.expression_kind),
    }


def save_npz(path: str | Path, arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` to ``path`` as a compressed ``.npz``, atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ModelFileError(f"{path}: output must end in .npz")
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return path
