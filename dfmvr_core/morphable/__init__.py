"""Morphable face models (3DMM): the model type, loaders, part labels, albedo and SH lighting."""

from dfmvr_core.morphable.albedo import LaplacianAlbedoConfig, laplacian_albedo
from dfmvr_core.morphable.bfm import load_bfm_front_mat
from dfmvr_core.morphable.ict import convert_ict_release, load_ict_npz
from dfmvr_core.morphable.lighting import SH_COEFFICIENTS, ambient_sh, sh_basis, shade
from dfmvr_core.morphable.loader import load_morphable_model
from dfmvr_core.morphable.model import CoefficientSizes, MorphableModel
from dfmvr_core.morphable.npz_format import load_npz_model, model_to_arrays, save_npz
from dfmvr_core.morphable.parts import NUM_FACE_PARTS, FacePart, label_parts_from_landmarks

__all__ = [
    "NUM_FACE_PARTS",
    "SH_COEFFICIENTS",
    "CoefficientSizes",
    "FacePart",
    "LaplacianAlbedoConfig",
    "MorphableModel",
    "ambient_sh",
    "convert_ict_release",
    "label_parts_from_landmarks",
    "laplacian_albedo",
    "load_bfm_front_mat",
    "load_ict_npz",
    "load_morphable_model",
    "load_npz_model",
    "model_to_arrays",
    "save_npz",
    "sh_basis",
    "shade",
]
