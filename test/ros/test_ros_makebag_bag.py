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

"""dfmvr make-bag: topics, drops, stamp jitter, and ground truth consistent with the images and the rig."""

from __future__ import annotations

import numpy as np
import pytest
from replay_test_helpers import FPS, HUMBLE_BAG, JAZZY_BAG, SIZE, generated_bag
from scipy.spatial.transform import Rotation

from dfmvr_core.cli.main import main
from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.rig import CameraRig, RigConfig
from dfmvr_ros.bag_io import BagReader
from dfmvr_ros.image_codec import image_from_message
from dfmvr_ros.make_bag import (
    DEFAULT_START_NS,
    MakeBagOptions,
    expression_trajectory,
    head_trajectory,
    parse_drop,
    parse_size,
)
from dfmvr_ros.messages import intrinsics_from_camera_info, matrix_from_pose, points_from_cloud, stamp_to_ns
from dfmvr_ros.replay_ground_truth import landmarks_from_message

CAMERAS = ("left", "front", "right")
PERIOD_NS = round(1e9 / FPS)


@pytest.fixture(scope="module")
def humble_bag(tmp_path_factory, ict_model, ict_npz):
    return generated_bag(tmp_path_factory, ict_model, ict_npz, "humble", HUMBLE_BAG)


@pytest.fixture(scope="module")
def humble_messages(humble_bag):
    with BagReader(humble_bag) as reader:
        return reader, list(reader.messages())


def _instant(stamp_ns: int) -> int:
    return round((stamp_ns - DEFAULT_START_NS) / PERIOD_NS)


def _capture_ns(k: int) -> int:
    """Capture time of instant ``k`` as make-bag computes it."""
    return DEFAULT_START_NS + round(k * 1e9 / FPS)


def test_topics_counts_and_dropped_frame(humble_messages):
    reader, messages = humble_messages
    assert reader.metadata_version == 5 and reader.storage == "sqlite3"
    frames = HUMBLE_BAG["frames"]
    for camera in CAMERAS:
        expected = frames - 1 if camera == "left" else frames
        for topic, msgtype in (
            (f"/cameras/{camera}/image_raw", "sensor_msgs/msg/Image"),
            (f"/cameras/{camera}/camera_info", "sensor_msgs/msg/CameraInfo"),
            (f"/ground_truth/landmarks/{camera}", "geometry_msgs/msg/PolygonStamped"),
        ):
            assert reader.topics[topic] == msgtype
            assert reader.topic_counts[topic] == expected, topic
    assert reader.topic_counts["/ground_truth/head_pose"] == frames
    assert reader.topic_counts["/ground_truth/mesh"] == frames
    assert reader.topic_counts["/ground_truth/mesh_topology"] == 1
    assert "/ground_truth/mesh_topology" in reader.latched_topics
    left = [_instant(stamp_to_ns(m.msg.header.stamp)) for m in messages if m.topic == "/cameras/left/image_raw"]
    assert left == [k for k in range(frames) if k != 2]  # instant 2 dropped
    # Receive times are non-decreasing (the reader's order) and each image arrives after its stamp.
    times = [m.timestamp_ns for m in messages]
    assert times == sorted(times)
    for m in messages:
        if m.topic.endswith("image_raw"):
            delay = m.timestamp_ns - stamp_to_ns(m.msg.header.stamp)
            assert 1_000_000 <= delay <= 4_000_000


def test_stamp_jitter_within_bounds(humble_messages):
    _, messages = humble_messages
    offsets = []
    for m in messages:
        if m.topic.endswith("image_raw"):
            stamp = stamp_to_ns(m.msg.header.stamp)
            offsets.append(stamp - _capture_ns(_instant(stamp)))
    offsets = np.array(offsets)
    assert np.abs(offsets).max() <= 2_000_000
    assert np.unique(offsets).size > len(offsets) // 2  # jittered, not constant


def test_ground_truth_agrees_with_images_landmarks_and_rig(humble_messages, ict_model):
    """GT pose ∘ GT mesh projects onto the GT landmarks through the CameraInfo and the rig extrinsics."""
    _, messages = humble_messages
    rig = CameraRig(RigConfig())
    lm_idx = ict_model.landmarks68.numpy()
    poses = {
        stamp_to_ns(m.msg.header.stamp): matrix_from_pose(m.msg) for m in messages if m.topic.endswith("head_pose")
    }
    meshes = {
        stamp_to_ns(m.msg.header.stamp): points_from_cloud(m.msg) for m in messages if m.topic == "/ground_truth/mesh"
    }
    assert sorted(poses) == sorted(meshes) == [_capture_ns(k) for k in range(HUMBLE_BAG["frames"])]
    infos = {m.topic.split("/")[2]: intrinsics_from_camera_info(m.msg) for m in messages if "camera_info" in m.topic}
    assert infos["front"].width == SIZE[0] and infos["front"].fx == pytest.approx(300.0)
    checked = 0
    for m in messages:
        if not m.topic.startswith("/ground_truth/landmarks/"):
            continue
        camera = m.topic.rsplit("/", 1)[1]
        instant = _capture_ns(_instant(stamp_to_ns(m.msg.header.stamp)))
        points, visible = landmarks_from_message(m.msg)
        T_cam = rig.T_camera_from_rig(camera).numpy()
        X = meshes[instant][lm_idx].astype(np.float64) @ T_cam[:3, :3].T + T_cam[:3, 3]
        K = infos[camera].matrix().numpy()
        uv = (X @ K.T)[:, :2] / X[:, 2:3]
        np.testing.assert_allclose(uv, points, atol=0.02)
        assert visible.sum() >= 34
        checked += 1
    assert checked == 3 * HUMBLE_BAG["frames"] - 1
    # The pose moves the model: the mesh's landmark centroid sits near the rig's subject point, the head turns smoothly.
    stamps = sorted(poses)
    for stamp in stamps:
        centre = meshes[stamp][lm_idx].mean(axis=0)
        assert np.linalg.norm(centre - (0.0, 0.0, 0.7)) < 0.05
    rotations = Rotation.from_matrix(np.stack([poses[s][:3, :3] for s in stamps]))
    steps = np.degrees((rotations[1:] * rotations[:-1].inv()).magnitude())
    assert 0.1 < steps.max() < 10.0


def test_images_show_the_face_where_the_landmarks_are(humble_messages):
    _, messages = humble_messages
    image = next(image_from_message(m.msg) for m in messages if m.topic == "/cameras/front/image_raw")
    points = next(landmarks_from_message(m.msg)[0] for m in messages if m.topic == "/ground_truth/landmarks/front")
    assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int)
    face = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
    # Skin: red dominates green and blue inside the landmark box.
    assert face[:, 0].mean() > face[:, 2].mean()


def test_jazzy_mcap_compressed(tmp_path_factory, ict_model, ict_npz):
    path = generated_bag(tmp_path_factory, ict_model, ict_npz, "jazzy", JAZZY_BAG)
    with BagReader(path) as reader:
        assert reader.metadata_version == 9 and reader.storage == "mcap"
        topic = "/cameras/right/image_raw/compressed"
        assert reader.topics[topic] == "sensor_msgs/msg/CompressedImage"
        assert reader.topic_counts[topic] == JAZZY_BAG["frames"]
        msg = next(m.msg for m in reader.messages([topic]))
    assert "jpeg" in msg.format
    assert image_from_message(msg).shape == (SIZE[1], SIZE[0], 3)


def test_trajectories_are_bounded_and_smooth():
    options = MakeBagOptions()
    t = np.arange(0, 8, 1 / 30)
    angles, drift = head_trajectory(t, options, np.random.default_rng(0))
    assert np.abs(angles[:, 1]).max() <= 20.0 + 1e-9 and np.abs(angles[:, 1]).max() > 19.0  # yaw ±20°
    assert np.abs(angles[:, 0]).max() <= 10.0 + 1e-9 and np.abs(angles[:, 0]).max() > 9.0  # pitch ±10°
    assert np.abs(np.diff(angles, axis=0)).max() < 1.2  # degrees per frame at 30 fps
    assert np.abs(drift[:, :2]).max() <= 0.01 + 1e-12
    weights = expression_trajectory(t, 53, "blendshape", 6, np.random.default_rng(0))
    assert weights.shape == (t.size, 53) and weights.min() >= 0.0 and weights.max() <= 0.8
    assert np.count_nonzero(weights.max(axis=0)) == 6
    assert np.abs(np.diff(weights, axis=0)).max() < 0.1
    pca = expression_trajectory(t, 64, "pca", 4, np.random.default_rng(1))
    assert np.count_nonzero(np.abs(pca).max(axis=0)) == 4 and np.abs(pca[:, 10:]).max() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames": 0}, "frames"),
        ({"fps": 0.0}, "fps"),
        ({"jitter_ms": 20.0}, "jitter_ms"),
        ({"drops": (("left", 30),)}, "outside 0..29"),
        ({"drops": ("left-3",)}, "CAMERA:FRAME"),
        ({"size": "640by480"}, "WIDTHxHEIGHT"),
        ({"distro": "rolling"}, "distro"),
        ({"storage": "leveldb"}, "storage"),
        ({"transport_delay_ms": (0.0, 1.0)}, "transport_delay_ms"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MakeBagOptions(**kwargs)


def test_parsers():
    assert parse_size("640x480") == (640, 480) and parse_size(" 320 X 240 ") == (320, 240)
    assert parse_drop("front:7") == ("front", 7)
    with pytest.raises(ConfigError, match=r"16\.\.8192"):
        parse_size("8x8")


def test_cli_writes_a_bag_and_refuses_unknown_cameras(tmp_path, ict_npz, capsys):
    bag = tmp_path / "cli_bag"
    common = ["make-bag", "--model", str(ict_npz), "--frames", "2", "--size", "96x72", "-q"]
    assert main([*common, "-o", str(bag), "--drop", "front:1", "--storage", "mcap", "--no-landmarks"]) == 0
    out = capsys.readouterr().out
    assert "2 instants x 3 cameras" in out and "front:1" in out and "instants/s" in out
    with BagReader(bag) as reader:
        assert reader.topic_counts["/cameras/front/image_raw"] == 1
        assert not any(t.startswith("/ground_truth/landmarks") for t in reader.topics)
    assert main([*common, "-o", str(tmp_path / "bad"), "--drop", "middle:0"]) == 2
    assert "unknown camera 'middle'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main([*common, "-o", str(bag)]) == 2  # exists: refused, not overwritten
    assert "already exists" in capsys.readouterr().err
