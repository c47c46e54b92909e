"""``dfmvr eval`` end to end (files, summary, error maps, resume) and the in-memory evaluation API."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import dfmvr_core.cli.main as cli_main
import dfmvr_training.evaluation as evaluation
from dfmvr_core.errors import ShapeError
from dfmvr_core.evaluation import EvalConfig, summarize
from dfmvr_core.mesh_io import write_mesh
from dfmvr_core.morphable.npz_format import model_to_arrays, save_npz
from dfmvr_training.evaluation import MeshIndices, evaluate_meshes, mean_face_baseline, model_indices


@pytest.fixture(scope="module")
def faces_of(ict_model):
    """Three ICT faces (float64 metres): the mean, a random identity, another random identity."""
    g = torch.Generator().manual_seed(0)
    identity = torch.randn(2, ict_model.coefficient_sizes.identity, generator=g) * 0.8
    expression = torch.zeros(2, ict_model.coefficient_sizes.expression)
    others = ict_model.decode_shape(identity, expression).double().numpy()
    return [ict_model.mean_shape.double().numpy(), others[0], others[1]]


@pytest.fixture
def small_model_npz(tmp_path, ict_model):
    """The ICT model with few basis components (same topology and landmarks), quick to load."""
    arrays = model_to_arrays(ict_model)
    arrays["id_basis"] = arrays["id_basis"][:3]
    arrays["exp_basis"] = arrays["exp_basis"][:2]
    arrays["exp_names"] = arrays["exp_names"][:2]
    arrays["albedo_basis"] = arrays["albedo_basis"][:2]
    return save_npz(tmp_path / "model.npz", arrays)


def test_evaluate_meshes_and_the_mean_face_baseline(ict_model, faces_of):
    mean, face_a, _ = faces_of
    preds = torch.from_numpy(np.stack([face_a, face_a]))
    gts = torch.from_numpy(np.stack([face_a, mean]))
    results = evaluate_meshes(preds, gts, ict_model.triangles, indices=model_indices(ict_model))
    assert results[0].rmse_mm < 1e-6
    assert results[1].rmse_mm > 0.2  # another face: a real error
    summary = summarize(results)
    assert summary["count"] == 2 and summary["rmse_mm"]["max"] == pytest.approx(results[1].rmse_mm)
    baseline = mean_face_baseline(ict_model, [face_a, mean])
    assert baseline[1].rmse_mm < 1e-6  # the mean face against itself
    assert baseline[0].rmse_mm == pytest.approx(results[1].rmse_mm, rel=0.05)  # same pair, roles swapped
    with pytest.raises(ShapeError, match="nose"):
        evaluate_meshes(preds, gts, ict_model.triangles, indices=MeshIndices())


def test_dfmvr_eval_end_to_end_with_resume(tmp_path, ict_model, faces_of, small_model_npz, monkeypatch, capsys):
    mean, face_a, face_b = faces_of
    faces = ict_model.triangles.numpy()
    pred_dir, gt_dir, out = tmp_path / "pred", tmp_path / "gt", tmp_path / "out"
    R = Rotation.from_euler("xyz", (3, 10, -2), degrees=True).as_matrix()
    # s0: perfect; s1: the right face rigidly moved (10° yaw, 2 cm); s2: the wrong face
    gt_dir.mkdir()
    np.savez(gt_dir / "s0.npz", vertices=mean, faces=faces)
    write_mesh(gt_dir / "s1.obj", face_a, faces)
    write_mesh(gt_dir / "s2.ply", face_b, faces)
    write_mesh(pred_dir / "s0.ply", mean, faces)
    write_mesh(pred_dir / "s1.ply", face_a @ R.T + (0.02, -0.01, 0.005), faces)
    np.savez(pred_dir / "s2.npz", vertices=face_a, faces=faces)
    write_mesh(pred_dir / "extra.ply", mean, faces)  # no ground truth: reported, not evaluated
    argv = ["eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out), "--model", str(small_model_npz)]
    argv += ["--map-size", "128", "--quiet"]

    assert cli_main.main(argv) == 0
    assert "RMSE p2plane" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 3 and summary["resumed"] == 0
    assert summary["unmatched"]["pred_only"] == ["extra"]
    samples = summary["samples"]
    assert samples["s0"]["rmse_mm"] < 1e-4
    assert samples["s1"]["rmse_mm"] < 0.1 and samples["s1"]["scan_to_mesh_mm"] < 0.1
    assert samples["s2"]["rmse_mm"] > 0.2
    assert summary["rmse_mm"]["mean"] == pytest.approx(np.mean([samples[s]["rmse_mm"] for s in ("s0", "s1", "s2")]))
    assert set(summary["definitions"]) == {"rmse_mm", "scan_to_mesh_mm"}
    maps = sorted(p.name for p in (out / "error_maps").iterdir())
    assert maps == ["s0.png", "s1.png", "s2.png"]
    assert cv2.imread(str(out / "error_maps" / "s2.png")).shape == (128, 128, 3)

    # resume: nothing is evaluated again ...
    def refuse(*args, **kwargs):
        raise AssertionError("evaluate_pair called on a finished sample")

    monkeypatch.setattr(evaluation, "evaluate_pair", refuse)
    assert cli_main.main(argv) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["resumed"] == 3 and again["samples"] == samples
    # ... except a sample whose record is gone
    monkeypatch.undo()
    calls = []
    real = evaluation.evaluate_pair
    monkeypatch.setattr(evaluation, "evaluate_pair", lambda *a, **k: calls.append(1) or real(*a, **k))
    (out / "samples" / "s1.json").unlink()
    assert cli_main.main(argv) == 0
    assert len(calls) == 1
    assert json.loads((out / "summary.json").read_text())["resumed"] == 2


def test_dfmvr_eval_mean_face_baseline(tmp_path, ict_model, faces_of, small_model_npz):
    mean, face_a, _ = faces_of
    gt_dir = tmp_path / "gt"
    write_mesh(gt_dir / "a.ply", mean, ict_model.triangles.numpy())
    write_mesh(gt_dir / "b.ply", face_a, ict_model.triangles.numpy())
    argv = ["eval", "--baseline", "mean", "--gt", str(gt_dir), "-o", str(tmp_path / "o"), "--model"]
    argv += [str(small_model_npz), "--no-error-maps", "--quiet"]
    assert cli_main.main(argv) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["samples"]["a"]["rmse_mm"] < 1e-4 and summary["samples"]["b"]["rmse_mm"] > 0.2
    assert not (tmp_path / "o" / "error_maps").exists()


def test_dfmvr_eval_bad_input_exits_2(tmp_path, ict_model, faces_of, capsys):
    mean = faces_of[0]
    faces = ict_model.triangles.numpy()
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    write_mesh(pred_dir / "s.ply", mean, faces)
    gt_dir.mkdir()
    (gt_dir / "s.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2")
    base = ["eval", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(tmp_path / "o"), "--quiet"]
    assert cli_main.main(base) == 2  # no --model / --nose-index
    assert "--nose-index" in capsys.readouterr().err
    assert cli_main.main([*base, "--nose-index", "1"]) == 2  # corrupt ground truth
    assert "s.ply" in capsys.readouterr().err
    assert cli_main.main([*base[:4], str(tmp_path / "absent"), *base[5:], "--nose-index", "1"]) == 2
    assert "not found" in capsys.readouterr().err
    assert cli_main.main([*base, "--nose-index", "1", "--max-mm", "0"]) == 2
    assert "max_mm" in capsys.readouterr().err


def test_eval_config_yaml_and_indices(tmp_path, ict_model):
    indices = model_indices(ict_model)
    assert indices.nose == int(ict_model.landmarks68[30]) and indices.num_vertices == ict_model.num_vertices
    other = np.zeros((10, 3))
    assert indices.landmark_points(other, "x") is None and indices.nose_point(other, "x") is None
    explicit = MeshIndices(nose=4, nose_num_vertices=None)
    assert np.array_equal(explicit.nose_point(np.eye(5, 3), "x"), np.eye(5, 3)[4])
    from dfmvr_core.config import load_yaml

    path = tmp_path / "eval.yaml"
    path.write_text("crop_radius_m: 0.08\nwith_scale: true\n")
    config = load_yaml(EvalConfig, path)
    assert config.crop_radius_m == 0.08 and config.with_scale
