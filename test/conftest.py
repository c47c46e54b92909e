"""Shared fixtures: the read-only shared data folder and small generated model files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$DFMVR_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("DFMVR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "ict_facekit" / "ict_face_full_fp32.npz").is_file():
        pytest.fail(f"shared data not found at {path}; set DFMVR_SHARED_DATA to the project's shared/data folder")
    return path


@pytest.fixture(scope="session")
def ict_npz(shared_data: Path) -> Path:
    return shared_data / "ict_facekit" / "ict_face_full_fp32.npz"


@pytest.fixture(scope="session")
def ict_model(ict_npz: Path):
    from dfmvr_core.morphable import load_morphable_model

    return load_morphable_model(ict_npz)


def write_synthetic_bfm_mat(path: Path, ict_npz: Path, rng_seed: int = 0, decimate: int = 1) -> dict[str, np.ndarray]:
    """Write a small file in Deep3DFaceRecon's ``BFM_model_front.mat`` layout (decimetres, 1-based indices).

    The geometry is the ICT mean face (converted from cm to dm) so landmark-based part labelling works;
    bases are random. Returns the arrays written (0-based copies included under ``*_0based`` keys).
    """
    rng = np.random.default_rng(rng_seed)
    with np.load(ict_npz) as data:
        mean_cm = data["mean"].astype(np.float64)
        tris = data["tris"].astype(np.int64)
        lm = data["lm68_multipie"].astype(np.int64)
    n = mean_cm.shape[0]
    mean_dm = mean_cm * 0.1 + np.array([0.3, -0.2, 0.5])  # off-centre: the loader must re-centre
    arrays = {
        "meanshape": mean_dm.reshape(1, -1).astype(np.float32),
        "idBase": (rng.standard_normal((3 * n, 80)) * 1e-3).astype(np.float32),
        "exBase": (rng.standard_normal((3 * n, 64)) * 1e-3).astype(np.float32),
        "meantex": np.full((1, 3 * n), 180.0, np.float32),
        "texBase": (rng.standard_normal((3 * n, 80)) * 2.0).astype(np.float32),
        "tri": (tris + 1).astype(np.float64),  # MATLAB files store indices as doubles, 1-based
        "point_buf": np.ones((n, 8), np.float64),
        "keypoints": (lm + 1).reshape(1, 68).astype(np.float64),
    }
    scipy.io.savemat(str(path), arrays)
    return arrays


@pytest.fixture
def bfm_mat(tmp_path: Path, ict_npz: Path) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path / "BFM_model_front.mat"
    return path, write_synthetic_bfm_mat(path, ict_npz)
