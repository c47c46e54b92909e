# Copyright 2026 dfmvr maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""dfmvr replay on generated bags: the node's outputs in the output bag, report.json, evaluation, overlays."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import trimesh
from replay_test_helpers import HUMBLE_BAG, JAZZY_BAG, SIZE, generated_bag, node_config, use_zero_backend

from dfmvr_core.cli.main import main
from dfmvr_core.inference.default_model import packaged_checkpoint_path
from dfmvr_core.inference.reconstructor import FaceReconstructor, ReconstructorConfig
from dfmvr_ros.bag_io import BagReader
from dfmvr_ros.image_codec import image_from_message
from dfmvr_ros.messages import (
    coefficients_from_array,
    intrinsics_from_camera_info,
    matrix_from_pose,
    points_from_cloud,
    rosbags_types,
    stamp_to_ns,
)
from dfmvr_ros.outputs import MSGTYPES, build_outputs
from dfmvr_ros.replay import replay_bag
from dfmvr_ros.replay_ground_truth import GT_LANDMARKS_PREFIX, landmarks_from_message

CAMERAS = ("left", "front", "right")


@pytest.fixture(scope="module")
def reconstructor(ict_npz, tmp_path_factory):
    config = ReconstructorConfig(
        morphable_model=ict_npz, backend="torch", detector="none", cache_dir=tmp_path_factory.mktemp("cache")
    )
    return FaceReconstructor(config)


@pytest.fixture(scope="module")
def humble_bag(tmp_path_factory, ict_model, ict_npz):
    return generated_bag(tmp_path_factory, ict_model, ict_npz, "humble", HUMBLE_BAG)


@pytest.fixture(scope="module")
def humble_replay(tmp_path_factory, humble_bag, ict_npz, reconstructor):
    out = tmp_path_factory.mktemp("replay_humble")
    config = node_config(ict_npz)
    report = replay_bag(
        humble_bag,
        out,
        config,
        reconstructor,
        landmark_topic_prefix=GT_LANDMARKS_PREFIX,
        overlay_every=2,
        progress=False,
    )
    return out, report, config


def _read(bag):
    with BagReader(bag) as reader:
        return reader, list(reader.messages())


def test_output_bag_has_exactly_the_node_topics(humble_replay):
    out, report, config = humble_replay
    reader, messages = _read(out / "output_bag")
    topics = config.topics
    expected = {
        getattr(topics, key): MSGTYPES[key]
        for key in ("head_pose", "tf", "vertices", "coefficients", "topology", "diagnostics")
    }
    assert reader.topics == expected
    assert reader.metadata_version == 5 and reader.storage == "sqlite3"  # as the input bag
    assert reader.latched_topics == {topics.topology}
    sets = HUMBLE_BAG["frames"]
    assert report.sets_processed == report.sets_with_face == sets
    for key in ("head_pose", "tf", "vertices", "coefficients"):
        assert reader.topic_counts[getattr(topics, key)] == sets, key
    assert reader.topic_counts[topics.topology] == 1
    assert reader.topic_counts[topics.diagnostics] >= 1
    set_stamps = [s["stamp_ns"] for s in report.data["per_set"]]
    poses = [m.msg for m in messages if m.topic == topics.head_pose]
    assert [stamp_to_ns(p.header.stamp) for p in poses] == set_stamps
    assert {p.header.frame_id for p in poses} == {"front_camera_optical_frame"}
    cloud = next(m.msg for m in messages if m.topic == topics.vertices)
    assert points_from_cloud(cloud).shape == (9409, 3)
    coefficients = coefficients_from_array(next(m.msg for m in messages if m.topic == topics.coefficients))
    assert coefficients["pose"].shape == (3, 6) and coefficients["lighting"].shape == (3, 27)
    status = next(m.msg for m in messages if m.topic == topics.diagnostics).status
    assert [s.name for s in status] == ["dfmvr: reconstruction", "dfmvr: synchronizer"]


def test_first_set_matches_a_direct_reconstruction(humble_replay, humble_bag, reconstructor):
    """The output bag holds what build_outputs makes of reconstructor.reconstruct on the set's images."""
    out, report, config = humble_replay
    first = report.data["per_set"][0]
    _, inputs = _read(humble_bag)
    images, infos, landmarks = {}, {}, {}
    for m in inputs:
        camera = m.topic.split("/")[2] if m.topic.startswith("/cameras/") else m.topic.rsplit("/", 1)[-1]
        if m.topic.endswith("image_raw") and camera not in images:
            images[camera] = (stamp_to_ns(m.msg.header.stamp), image_from_message(m.msg))
        elif m.topic.endswith("camera_info") and camera not in infos:
            infos[camera] = intrinsics_from_camera_info(m.msg)
        elif m.topic.startswith("/ground_truth/landmarks/") and camera not in landmarks:
            landmarks[camera] = landmarks_from_message(m.msg)[0]
    assert first["cameras"] == list(CAMERAS)
    result = reconstructor.reconstruct(
        [images[c][1] for c in CAMERAS], [infos[c] for c in CAMERAS], landmarks=[landmarks[c] for c in CAMERAS]
    )
    expected = build_outputs(rosbags_types("humble"), result, first["stamp_ns"], config, faces=reconstructor.faces)
    _, outputs = _read(out / "output_bag")
    written = next(m.msg for m in outputs if m.topic == config.topics.head_pose)
    np.testing.assert_allclose(matrix_from_pose(written), matrix_from_pose(expected[0].message), atol=1e-9)
    vertices = next(m.msg for m in outputs if m.topic == config.topics.vertices)
    want = next(o.message for o in expected if o.topic == config.topics.vertices)
    np.testing.assert_array_equal(points_from_cloud(vertices), points_from_cloud(want))


def test_report_fields(humble_replay):
    out, report, _ = humble_replay
    data = json.loads((out / "report.json").read_text())
    assert data == json.loads(json.dumps(report.data))
    assert data["complete"] is True and data["error"] is None and report.exit_code == 0
    assert data["landmarks"] == "ground truth (evaluation of the network alone)"
    assert data["backend"] == "torch:cpu:fp32"
    n = HUMBLE_BAG["frames"]
    assert data["bag"]["metadata_version"] == 5 and data["bag"]["topics"]["/ground_truth/mesh"]["count"] == n
    assert data["sets"] == {
        "processed": n,
        "complete": n - 1,
        "partial": 1,
        "with_face": n,
        "failed": 0,
        "max_sets": None,
    }
    assert data["frames"]["left"]["received"] == n - 1 and data["frames"]["front"]["received"] == n
    assert data["drops_per_camera"]["left"] == {"synchronizer": 0, "bad_frames": 0, "missing_in_partial_sets": 1}
    assert 0.0 < data["sync"]["max_skew_ms"] <= 4.0
    assert data["sync"]["measured_rate_hz"]["front"] == pytest.approx(15.0, rel=0.05)
    assert data["valid_views"] == {"left": n - 1, "front": n, "right": n}
    # every set has two or more views with (ground-truth) landmarks: the rig triangulates the head pose
    assert data["pose_source"] == {"rig": n}
    assert all(entry["pose_source"] == "rig" and 0.75 <= entry["metric_scale"] <= 1.33 for entry in data["per_set"])
    assert set(data["intrinsics"]) == set(CAMERAS) and all(
        v.startswith("CameraInfo") for v in data["intrinsics"].values()
    )
    for stage in ("image_decode", "reconstruct.network", "reconstruct.total", "outputs", "evaluation", "pipeline"):
        timing = data["latency_ms"][stage]
        assert timing["count"] == n and 0.0 <= timing["p50"] <= timing["p95"] <= timing["max"], stage
    assert data["throughput"]["sets_per_s"] > 0
    assert data["warnings"] == []
    evaluation = data["evaluation"]
    assert evaluation["sets"] == n
    for key in ("rmse_mm", "scan_to_mesh_mm", "position_error_mm", "rotation_error_deg"):
        stats = evaluation[key]
        assert stats["count"] == n and math.isfinite(stats["mean"]) and math.isfinite(stats["std"]), key
    # A freshly initialised network predicts about the mean face: millimetres of shape error, not centimetres.
    assert 0.1 < evaluation["rmse_mm"]["mean"] < 10.0
    # The mean face itself is scored beside it (the reference a network must beat): the fresh network's blendshape
    # bias (5 %) keeps it near, not at, the mean face's score.
    reference = evaluation["mean_face_rmse_mm"]
    assert reference["count"] == n and 0.1 < reference["mean"] < 10.0
    assert reference["mean"] == pytest.approx(evaluation["rmse_mm"]["mean"], rel=0.5)
    assert "mean_face_rmse_mm" in evaluation["definitions"]
    for entry in data["per_set"]:
        assert math.isfinite(entry["evaluation"]["rmse_mm"]) and entry["ok"] is True
    partial = data["per_set"][2]
    assert partial["cameras"] == ["front", "right"] and partial["valid"]["left"] is False
    assert partial["reasons"] == {"left": "missing image"}


def test_overlays_every_k_sets(humble_replay):
    out, report, _ = humble_replay
    files = sorted(p.name for p in (out / "overlays").iterdir())
    stamps = [s["stamp_ns"] for s in report.data["per_set"]]
    assert files == [f"{i:06d}_{stamps[i]}.png" for i in (0, 2, 4)]
    assert report.data["overlays"] == [f"overlays/{name}" for name in files]
    meshes = [name.replace(".png", ".ply") for name in files]
    assert report.data["meshes"] == [f"meshes/{name}" for name in meshes]
    mesh = trimesh.load(out / "meshes" / meshes[0], process=False)
    assert mesh.vertices.shape[1] == 3 and len(mesh.faces) > 0
    assert np.isfinite(mesh.vertices).all() and 0.2 < float(np.median(mesh.vertices[:, 2])) < 3.0  # metres ahead
    picture = cv2.imread(str(out / "overlays" / files[1]))
    width, height = SIZE
    assert picture.shape[0] == height and picture.shape[1] >= 3 * width
    left_panel = picture[40:, :width]
    assert left_panel.mean() < 5.0  # set 2 has no left image: a black panel with its label


def test_jazzy_mcap_compressed(tmp_path, tmp_path_factory, ict_model, ict_npz, reconstructor, monkeypatch):
    backend = use_zero_backend(monkeypatch, reconstructor)
    bag = generated_bag(tmp_path_factory, ict_model, ict_npz, "jazzy", JAZZY_BAG)
    report = replay_bag(
        bag,
        tmp_path,
        node_config(ict_npz),
        reconstructor,
        landmark_topic_prefix=GT_LANDMARKS_PREFIX,
        overlay_every=0,
        evaluate=False,
        progress=False,
    )
    reader, _ = _read(tmp_path / "output_bag")
    assert reader.metadata_version == 9 and reader.storage == "mcap"
    assert reader.topic_counts["/dfmvr/head_pose"] == report.sets_processed == JAZZY_BAG["frames"]
    data = report.data
    assert data["image_transport"] == "compressed"
    assert any("only the 'compressed' image topics" in w for w in data["warnings"])
    assert data["evaluation"] is None and data["sets"]["with_face"] == backend.calls == JAZZY_BAG["frames"]
    assert not (tmp_path / "overlays").exists()


def test_debug_topics_and_max_sets(tmp_path, humble_bag, ict_npz, reconstructor, monkeypatch):
    """The marker and overlay (built for subscribers in the node) with their rate limits on the bag clock."""
    use_zero_backend(monkeypatch, reconstructor)
    config = node_config(ict_npz)
    report = replay_bag(
        humble_bag,
        tmp_path,
        config,
        reconstructor,
        landmark_topic_prefix=GT_LANDMARKS_PREFIX,
        max_sets=2,
        overlay_every=0,
        debug_topics=True,
        evaluate=False,
        progress=False,
    )
    assert report.sets_processed == 2 and report.complete and report.data["evaluation"] is None
    reader, messages = _read(tmp_path / "output_bag")
    assert reader.topics[config.topics.marker] == MSGTYPES["marker"]
    assert reader.topics[config.topics.overlay] == MSGTYPES["overlay"]
    assert reader.topic_counts[config.topics.head_pose] == 2
    # Rate limits on the bag clock (the time each set was processed): marker 5 Hz, overlay 2 Hz.
    processed = [s["processed_at_ns"] for s in report.data["per_set"]]
    assert processed == sorted(processed)

    def limited(rate_hz):
        kept = [processed[0]]
        for t in processed[1:]:
            if t - kept[-1] >= 1e9 / rate_hz:
                kept.append(t)
        return len(kept)

    assert reader.topic_counts[config.topics.marker] == limited(5.0)
    assert reader.topic_counts[config.topics.overlay] == limited(2.0) == 1  # 2 sets within 500 ms
    overlay = next(m.msg for m in messages if m.topic == config.topics.overlay)
    assert overlay.encoding == "rgb8" and overlay.height == SIZE[1] // 2


def test_cli(tmp_path, humble_bag, ict_npz, reconstructor, monkeypatch, capsys):
    """--gt-landmarks switches the detector off; the default 30 Hz rate is reported as not matching the bag."""
    seen = []

    def factory(config):
        seen.append(config)
        return reconstructor

    monkeypatch.setattr("dfmvr_core.inference.reconstructor.FaceReconstructor", factory)
    use_zero_backend(monkeypatch, reconstructor)
    out = tmp_path / "out"
    args = ["replay", str(humble_bag), "-o", str(out), "--model", str(ict_npz), "--backend", "torch"]
    rc = main([*args, "--gt-landmarks", "--max-sets", "1", "--overlay-every", "1", "--no-eval", "-q"])
    assert rc == 0
    assert seen[0].detector == "none" and seen[0].backend == "torch" and seen[0].morphable_model == ict_npz
    printed = capsys.readouterr().out
    assert "1 processed" in printed and "landmarks: ground truth" in printed
    assert "sync.expected_rate_hz is 30" in printed
    data = json.loads((out / "report.json").read_text())
    assert data["network"] == "small" and data["fresh_weights"] is False  # the node's default: the embedded model
    assert seen[0].checkpoint == packaged_checkpoint_path() and data["checkpoint"] == str(packaged_checkpoint_path())
    assert len(data["overlays"]) == 1
    assert main([*args, "--gt-landmarks", "-q"]) == 2  # the output bag exists: refused without --overwrite
    assert "already exists" in capsys.readouterr().err
