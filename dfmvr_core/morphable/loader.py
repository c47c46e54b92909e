"""One entry point for every supported morphable-model input, chosen by what the path is."""

from __future__ import annotations

from pathlib import Path

from dfmvr_core.errors import ModelFileError
from dfmvr_core.morphable.bfm import load_bfm_front_mat
from dfmvr_core.morphable.ict import convert_ict_release
from dfmvr_core.morphable.model import MorphableModel
from dfmvr_core.morphable.npz_format import load_npz_model, model_from_arrays


def load_morphable_model(path: str | Path, bfm_units: str = "dm") -> MorphableModel:
    """Load a morphable model from:

    * ``*.npz`` — the dfmvr/ICT npz layout (``ict_face_full_fp32.npz``, or a ``convert-ict`` output);
    * ``*.mat`` — Deep3DFaceRecon's ``BFM_model_front.mat`` (lengths in ``bfm_units``);
    * a folder — ICT-FaceKit's official ``FaceXModel`` release (converted in memory).

    Raises:
        ModelFileError: the path does not exist or is of no supported kind, or the file is invalid.
    """
    path = Path(path)
    if path.is_dir():
        return model_from_arrays(convert_ict_release(path, progress=False), str(path), name="ict-facekit")
    if path.suffix == ".npz":
        return load_npz_model(path)
    if path.suffix == ".mat":
        return load_bfm_front_mat(path, units=bfm_units)
    if not path.exists():
        raise ModelFileError(f"{path}: morphable model not found")
    raise ModelFileError(
        f"{path}: unsupported morphable model; expected a .npz, a BFM .mat or an ICT FaceXModel folder"
    )
