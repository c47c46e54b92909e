"""``dfmvr assets info / convert-ict / preview`` end to end, through the real entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import trimesh

from dfmvr_core.cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dfmvr_core.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_info_prints_counts_and_size_in_metres(ict_npz):
    result = run_cli("assets", "info", str(ict_npz))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^vertices\s+9409$", result.stdout, re.M)
    assert re.search(r"^triangles\s+18460\b", result.stdout, re.M)
    width = float(re.search(r"^face width\s+([0-9.]+) m", result.stdout, re.M).group(1))
    assert 0.15 <= width <= 0.20
    assert "identity 100, expression 53 (blendshape)" in result.stdout


def test_info_json_for_a_bfm_file(bfm_mat, capsys):
    path, _ = bfm_mat
    assert main(["assets", "info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["components"] == {"identity": 80, "expression": 64, "albedo": 80, "lighting": 27, "pose_per_view": 6}
    assert summary["part_vertices"]["nose"] > 0


def test_bad_model_is_a_clear_error_and_exit_code_2(tmp_path, capsys):
    broken = tmp_path / "model.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["assets", "info", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "dfmvr assets: error:" in err and "model.npz" in err and "truncated or corrupt" in err


def test_convert_ict_writes_a_loadable_model(tmp_path, shared_data, capsys):
    folder = shared_data / "ict_facekit" / "raw_subset" / "FaceXModel"
    out = tmp_path / "ict.npz"
    assert main(["assets", "convert-ict", str(folder), "-o", str(out), "--allow-partial", "--quiet"]) == 0
    assert "2 identity, 2 expression components" in capsys.readouterr().out
    assert main(["assets", "info", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["vertices"] == 9409 and summary["triangles"] == 18460
    assert summary["bounding_box_m"]["size"][0] < 0.25  # metres, not centimetres


def test_preview_writes_meshes_poses_and_a_picture_of_three_views(tmp_path, ict_npz, capsys):
    out = tmp_path / "demo"
    rig = Path(__file__).resolve().parents[3] / "config" / "rig.yaml"
    assert main(["assets", "preview", str(ict_npz), "--rig", str(rig), "-o", str(out), "--random", "--seed", "1"]) == 0
    mesh = trimesh.load(out / "face_rig.ply", process=False)
    assert mesh.vertices.shape == (9409, 3)
    centre = mesh.vertices.mean(0)
    assert abs(centre[0]) < 0.03 and 0.6 < centre[2] < 0.8  # in front of the reference camera, metres
    poses = json.loads((out / "poses.json").read_text())
    assert list(poses["cameras"]) == ["left", "front", "right"]
    front = np.array(poses["cameras"]["front"]["T_camera_face"])
    np.testing.assert_allclose(front[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-9)
    q = np.array(poses["cameras"]["left"]["quaternion_xyzw"])
    assert abs(np.linalg.norm(q) - 1) < 1e-6
    image = cv2.imread(str(out / "views.png"))
    assert image.shape[0] == 480 and image.shape[1] >= 3 * 640
    # Each panel shows a face: a large, bright, roughly central blob on the dark background.
    for k in range(3):
        panel = image[:, k * 644 : k * 644 + 640].astype(np.float64).mean(-1)
        face = panel > 80
        assert 0.03 < face.mean() < 0.5
        rows, cols = np.nonzero(face)
        assert 120 < cols.mean() < 520 and 120 < rows.mean() < 360
