"""The three loaders (ICT npz, ICT release folder via the converter, BFM .mat) and bad model files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from dfmvr_core.errors import ModelFileError
from dfmvr_core.morphable import convert_ict_release, load_bfm_front_mat, load_morphable_model
from dfmvr_core.morphable.npz_format import model_to_arrays, save_npz


@pytest.fixture(scope="module")
def raw_subset(shared_data: Path) -> Path:
    return shared_data / "ict_facekit" / "raw_subset" / "FaceXModel"


@pytest.fixture(scope="module")
def converted_subset(raw_subset: Path) -> dict[str, np.ndarray]:
    return convert_ict_release(raw_subset, allow_partial=True, progress=False)


def test_converter_reproduces_the_shared_npz_slices(converted_subset, ict_npz):
    with np.load(ict_npz) as reference:
        names = list(reference["exp_names"])
        np.testing.assert_allclose(converted_subset["mean"], reference["mean"], atol=1e-5)
        np.testing.assert_array_equal(converted_subset["tris"], reference["tris"])
        np.testing.assert_array_equal(converted_subset["lm68_multipie"], reference["lm68_multipie"])
        np.testing.assert_allclose(converted_subset["id_basis"][0], reference["id_basis"][0], atol=1e-5)
        np.testing.assert_allclose(converted_subset["id_basis"][1], reference["id_basis"][1], atol=1e-5)
        for row, name in enumerate(converted_subset["exp_names"]):
            np.testing.assert_allclose(
                converted_subset["exp_basis"][row], reference["exp_basis"][names.index(name)], atol=1e-5
            )
    assert sorted(converted_subset["exp_names"]) == ["eyeBlink_L", "jawOpen"]
    assert str(converted_subset["units"]) == "cm"


def test_converter_refuses_an_incomplete_release_unless_asked(raw_subset):
    with pytest.raises(ModelFileError, match="incomplete ICT-FaceKit release"):
        convert_ict_release(raw_subset, progress=False)


def test_converter_errors_name_the_problem(tmp_path, raw_subset):
    with pytest.raises(ModelFileError, match="not a folder"):
        convert_ict_release(tmp_path / "nope")
    shutil.copy(raw_subset / "vertex_indices.json", tmp_path)
    with pytest.raises(ModelFileError, match=r"missing generic_neutral_mesh\.obj"):
        convert_ict_release(tmp_path)
    (tmp_path / "generic_neutral_mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(ModelFileError, match="3 vertices, expected 26719"):
        convert_ict_release(tmp_path, allow_partial=True, progress=False)
    (tmp_path / "generic_neutral_mesh.obj").write_text("v 0 0\n")
    with pytest.raises(ModelFileError, match="vertex record needs 3 coordinates"):
        convert_ict_release(tmp_path, allow_partial=True, progress=False)


def test_converted_model_round_trips_through_npz(tmp_path, raw_subset, converted_subset):
    from dfmvr_core.morphable.npz_format import model_from_arrays

    model = model_from_arrays(converted_subset, str(raw_subset), name="ict-facekit")
    out = save_npz(tmp_path / "model.npz", model_to_arrays(model))
    again = load_morphable_model(out)
    for key in ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "albedo_basis"):
        torch.testing.assert_close(getattr(again, key), getattr(model, key))
    assert torch.equal(again.part_labels, model.part_labels)
    assert again.exp_names == model.exp_names
    assert again.fingerprint() == model.fingerprint()
    assert not list(tmp_path.glob(".model.npz*"))  # the atomic write left no temporary file


def test_folder_path_loads_the_release_directly(raw_subset, tmp_path):
    # A complete release is required for a folder load; the subset must say so clearly.
    with pytest.raises(ModelFileError, match="incomplete"):
        load_morphable_model(raw_subset)


def test_bfm_loader_reads_deep3dface_layout(bfm_mat):
    path, arrays = bfm_mat
    model = load_bfm_front_mat(path)
    n = arrays["meanshape"].size // 3
    assert model.num_vertices == n and model.num_triangles == arrays["tri"].shape[0]
    sizes = model.coefficient_sizes
    assert (sizes.identity, sizes.expression, sizes.albedo) == (80, 64, 80)
    # 1-based -> 0-based indices
    np.testing.assert_array_equal(model.triangles.numpy(), arrays["tri"].astype(np.int64) - 1)
    np.testing.assert_array_equal(model.landmarks68.numpy(), arrays["keypoints"].reshape(-1).astype(np.int64) - 1)
    # decimetres -> metres, re-centred on the centroid
    mean_m = arrays["meanshape"].reshape(n, 3).astype(np.float64) * 0.1
    np.testing.assert_allclose(model.mean_shape.numpy(), mean_m - mean_m.mean(0), atol=1e-6)
    np.testing.assert_allclose(model.mean_shape.numpy().mean(0), 0.0, atol=1e-6)
    # basis layout: column k of idBase holds x0 y0 z0 x1 ... of component k
    np.testing.assert_allclose(model.id_basis[3, 7].numpy(), arrays["idBase"][21:24, 3] * 0.1, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(model.mean_albedo.numpy(), 180 / 255, atol=1e-6)
    np.testing.assert_allclose(model.albedo_basis[0, 0].numpy(), arrays["texBase"][0:3, 0] / 255, rtol=1e-5)
    assert model.expression_kind == "pca"
    assert load_morphable_model(path).fingerprint() == model.fingerprint()


def test_bfm_with_wrong_units_is_refused(bfm_mat):
    path, _ = bfm_mat
    with pytest.raises(ModelFileError, match=r"wide with units='mm'.*pass the file's real units"):
        load_bfm_front_mat(path, units="mm")


def test_bfm_zero_based_indices_are_refused(tmp_path, bfm_mat):
    _, arrays = bfm_mat
    arrays = dict(arrays)
    arrays["tri"] = arrays["tri"] - 1
    scipy.io.savemat(str(tmp_path / "zero.mat"), arrays)
    with pytest.raises(ModelFileError, match=r"tri indices span \[0, .*expected 1-based"):
        load_bfm_front_mat(tmp_path / "zero.mat")


def test_bfm_missing_key_and_nan(tmp_path, bfm_mat):
    _, arrays = bfm_mat
    partial = {k: v for k, v in arrays.items() if k != "exBase"}
    scipy.io.savemat(str(tmp_path / "partial.mat"), partial)
    with pytest.raises(ModelFileError, match=r"missing key\(s\) \['exBase'\]"):
        load_bfm_front_mat(tmp_path / "partial.mat")
    nan = dict(arrays)
    nan["idBase"] = arrays["idBase"].copy()
    nan["idBase"][5, 2] = np.nan
    scipy.io.savemat(str(tmp_path / "nan.mat"), nan)
    with pytest.raises(ModelFileError, match="idBase must hold finite numbers"):
        load_bfm_front_mat(tmp_path / "nan.mat")


@pytest.mark.parametrize("suffix", [".npz", ".mat"])
def test_truncated_files_are_refused_with_the_file_named(tmp_path, ict_npz, bfm_mat, suffix):
    source = ict_npz if suffix == ".npz" else bfm_mat[0]
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(source.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match=rf"broken\{suffix}: .*(truncated or corrupt)"):
        load_morphable_model(broken)


def test_missing_and_unsupported_paths(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_morphable_model(tmp_path / "absent.npz")
    (tmp_path / "model.txt").write_text("hello")
    with pytest.raises(ModelFileError, match="unsupported morphable model"):
        load_morphable_model(tmp_path / "model.txt")


def test_npz_with_wrong_layout_or_nan_is_refused(tmp_path, ict_npz):
    with np.load(ict_npz) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(tmp_path / "nokey.npz", **{k: v for k, v in arrays.items() if k != "id_basis"})
    with pytest.raises(ModelFileError, match=r"nokey.npz: missing key\(s\) \['id_basis'\]"):
        load_morphable_model(tmp_path / "nokey.npz")
    bad = dict(arrays)
    bad["mean"] = arrays["mean"].copy()
    bad["mean"][10, 1] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(ModelFileError, match=r"nan\.npz: array 'mean' contains NaN"):
        load_morphable_model(tmp_path / "nan.npz")
    wrong = dict(arrays)
    wrong["exp_basis"] = arrays["exp_basis"][:, :100]
    np.savez(tmp_path / "shape.npz", **wrong)
    with pytest.raises(ModelFileError, match=r"shape.npz: .*exp_basis: expected shape \(\*, 9409, 3\)"):
        load_morphable_model(tmp_path / "shape.npz")
