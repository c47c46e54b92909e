"""Basel Face Model 2009 in Deep3DFaceRecon's ``BFM_model_front.mat`` layout (users bring the file).

The BFM licence forbids redistribution: users register at the University of Basel, download
``01_MorphableModel.mat``, and build ``BFM_model_front.mat`` with Deep3DFaceRecon_pytorch's preparation
step (it adds the expression basis of Guo et al. and crops the front face: 35,709 vertices, 70,789
triangles). Keys read here:

=============  ===============  =========================================================
key            shape            meaning
=============  ===============  =========================================================
meanshape      (1, 3N)          mean shape, x0 y0 z0 x1 ..., **decimetres** (their "unify the scale")
idBase         (3N, 80)         identity basis (scaled by its standard deviations)
exBase         (3N, 64)         expression basis
meantex        (1, 3N)          mean texture, RGB 0-255
texBase        (3N, 80)         texture basis, RGB 0-255 units
tri            (F, 3)           triangles, **1-based**
point_buf      (N, 8)           triangles around each vertex, 1-based, 0 = none (not needed here)
keypoints      (1, 68)          the 68 landmark vertices, **1-based**
=============  ===============  =========================================================

Axes are as BFM's: x towards the viewer's right, y up, z towards the viewer (dfmvr's model frame).
Like Deep3DFaceRecon, the mean shape is re-centred on its vertex centroid. ``units`` can be overridden
for files prepared with another scale; a loaded face must be 8-35 cm wide or the load is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch

from dfmvr_core.errors import ModelFileError
from dfmvr_core.morphable.model import MorphableModel
from dfmvr_core.morphable.npz_format import UNIT_TO_METRES
from dfmvr_core.morphable.parts import label_parts_from_landmarks

BFM_REQUIRED_KEYS = ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints")
PLAUSIBLE_FACE_WIDTH_M = (0.08, 0.35)


def load_bfm_front_mat(path: str | Path, units: str = "dm") -> MorphableModel:
    """Load ``BFM_model_front.mat`` as a :class:`MorphableModel` (float32, metres, 0-based indices).

    Args:
        path: the ``.mat`` file.
        units: length unit of the file's shapes ("dm" for Deep3DFaceRecon's file).

    Raises:
        ModelFileError: missing/unreadable file, missing keys, inconsistent shapes, NaN, indices that
            are not 1-based, or an implausible face size (wrong ``units``).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: BFM model file not found (BFM cannot be redistributed; see README, 'Assets')")
    if units not in UNIT_TO_METRES:
        raise ModelFileError(f"{path}: units {units!r} unknown; expected one of {sorted(UNIT_TO_METRES)}")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types (ValueError, MatReadError, TypeError) for bad files
        raise ModelFileError(f"{path}: not a readable MATLAB .mat file (truncated or corrupt?): {exc}") from None
    missing = [key for key in BFM_REQUIRED_KEYS if key not in mat]
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {missing}; expected Deep3DFaceRecon's BFM_model_front.mat layout")

    def floats(key: str) -> np.ndarray:
        value = np.asarray(mat[key])
        if value.dtype.kind not in "fiu" or not np.isfinite(value.astype(np.float64)).all():
            raise ModelFileError(f"{path}: {key} must hold finite numbers")
        return value.astype(np.float64)

    mean = floats("meanshape").reshape(-1)
    if mean.size % 3:
        raise ModelFileError(f"{path}: meanshape has {mean.size} values, expected 3·N")
    n = mean.size // 3

    def basis(key: str) -> np.ndarray:
        value = floats(key)
        if value.ndim != 2 or value.shape[0] != 3 * n:
            raise ModelFileError(f"{path}: {key} has shape {value.shape}, expected (3·N = {3 * n}, K)")
        return value.T.reshape(value.shape[1], n, 3)

    scale = UNIT_TO_METRES[units]
    mean_shape = mean.reshape(n, 3) * scale
    mean_shape -= mean_shape.mean(axis=0)
    width = float(np.ptp(mean_shape[:, 0]))
    if not PLAUSIBLE_FACE_WIDTH_M[0] <= width <= PLAUSIBLE_FACE_WIDTH_M[1]:
        raise ModelFileError(
            f"{path}: face is {width:.3f} m wide with units={units!r}; expected "
            f"{PLAUSIBLE_FACE_WIDTH_M[0]}-{PLAUSIBLE_FACE_WIDTH_M[1]} m — pass the file's real units"
        )
    mean_tex = floats("meantex").reshape(-1)
    if mean_tex.size != 3 * n:
        raise ModelFileError(f"{path}: meantex has {mean_tex.size} values, expected 3·N = {3 * n}")

    def one_based(key: str, expected_cols: int | None) -> np.ndarray:
        value = np.asarray(mat[key])
        if value.dtype.kind not in "iuf" or (value.dtype.kind == "f" and not np.all(value == np.round(value))):
            raise ModelFileError(f"{path}: {key} must hold integer indices")
        value = value.astype(np.int64)
        if expected_cols is not None and (value.ndim != 2 or value.shape[1] != expected_cols):
            raise ModelFileError(f"{path}: {key} has shape {value.shape}, expected (F, {expected_cols})")
        if value.min() < 1 or value.max() > n:
            raise ModelFileError(
                f"{path}: {key} indices span [{value.min()}, {value.max()}], expected 1-based indices in [1, {n}]"
            )
        return value - 1

    triangles = one_based("tri", 3)
    landmarks = one_based("keypoints", None).reshape(-1)
    if landmarks.size != 68:
        raise ModelFileError(f"{path}: keypoints has {landmarks.size} entries, expected 68")
    part_labels = label_parts_from_landmarks(mean_shape, landmarks)
    as_f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    try:
        return MorphableModel(
            name="bfm09-front",
            mean_shape=as_f32(mean_shape),
            id_basis=as_f32(basis("idBase") * scale),
            exp_basis=as_f32(basis("exBase") * scale),
            mean_albedo=as_f32(mean_tex.reshape(n, 3) / 255.0),
            albedo_basis=as_f32(basis("texBase") / 255.0),
            triangles=torch.from_numpy(triangles),
            landmarks68=torch.from_numpy(landmarks),
            part_labels=torch.from_numpy(part_labels),
            expression_kind="pca",
            source=f"Basel Face Model 2009 (Deep3DFaceRecon BFM_model_front.mat) from {path}",
        )
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
