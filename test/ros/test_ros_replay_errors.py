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

"""dfmvr replay on broken or unsuitable bags: partial output kept, clear errors and exit codes, bad frames counted."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3

import numpy as np
import pytest
from replay_test_helpers import HUMBLE_BAG, generated_bag, node_config, use_zero_backend

from dfmvr_core.cli.main import main
from dfmvr_core.errors import ConfigError
from dfmvr_core.inference.reconstructor import FaceReconstructor, ReconstructorConfig
from dfmvr_ros.bag_io import BagError, BagReader, BagWriter
from dfmvr_ros.messages import build, header, image_message
from dfmvr_ros.replay import replay_bag

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


def _use(monkeypatch, reconstructor):
    """The CLI gets the module's reconstructor, its network replaced by zeros (this is about the bag, not the net)."""
    monkeypatch.setattr("dfmvr_core.inference.reconstructor.FaceReconstructor", lambda config: reconstructor)
    use_zero_backend(monkeypatch, reconstructor)


def _image_bag(path, cameras, frames, *, bad=None, size=(640, 480)):
    """Black rgb8 frames at 10 Hz on /cameras/<camera>/image_raw, no CameraInfo; ``bad`` = (camera, frame) written
    with an unknown encoding."""
    with BagWriter(path) as bag:
        types = bag.types
        for camera in cameras:
            bag.add_topic(f"/cameras/{camera}/image_raw", "sensor_msgs/msg/Image")
        for k in range(frames):
            stamp = 1_000_000_000 + k * 100_000_000
            for i, camera in enumerate(cameras):
                frame_id = f"{camera}_camera_optical_frame"
                if (camera, k) == bad:
                    msg = build(
                        types,
                        "sensor_msgs/msg/Image",
                        header=header(types, stamp, frame_id),
                        height=2,
                        width=2,
                        encoding="weird8",
                        is_bigendian=0,
                        step=2,
                        data=np.zeros(4, np.uint8),
                    )
                else:
                    msg = image_message(types, stamp, frame_id, np.zeros((size[1], size[0], 3), np.uint8))
                bag.write(f"/cameras/{camera}/image_raw", stamp + 1_000_000 + i, msg)
    return path


def test_corrupt_bag_keeps_the_sets_before_and_exits_1(
    tmp_path, humble_bag, ict_npz, reconstructor, monkeypatch, capsys
):
    bag = tmp_path / "corrupt"
    shutil.copytree(humble_bag, bag)
    db = next(bag.glob("*.db3"))
    with sqlite3.connect(db) as conn:
        (topic_id,) = conn.execute("SELECT id FROM topics WHERE name = '/cameras/front/image_raw'").fetchone()
        (row,) = conn.execute(
            "SELECT id FROM messages WHERE topic_id = ? ORDER BY timestamp LIMIT 1 OFFSET 3", (topic_id,)
        ).fetchone()
        conn.execute("UPDATE messages SET data = ? WHERE id = ?", (b"\x00\x01\x00\x00\x07", row))
    conn.close()
    _use(monkeypatch, reconstructor)
    out = tmp_path / "out"
    args = ["replay", str(bag), "-o", str(out), "--model", str(ict_npz), "--gt-landmarks", "-q"]
    assert main([*args, "-p", "sync.expected_rate_hz=15", "--no-eval", "--overlay-every", "0"]) == 1
    err = capsys.readouterr().err
    assert "corrupt" in err and "output so far is kept" in err
    data = json.loads((out / "report.json").read_text())
    assert data["complete"] is False and "corrupt" in data["error"] and "/cameras/front/image_raw" in data["error"]
    # Instants 0-2 were read whole (instant 2 without its left frame); the corrupt front frame is instant 3, whose
    # frames read before it make a partial set when the synchronizer is flushed; instant 4 is never read.
    assert data["sets"]["processed"] == 4 and data["sets"]["with_face"] == 4
    assert data["per_set"][-1]["complete"] is False and "front" not in data["per_set"][-1]["cameras"]
    with BagReader(out / "output_bag") as reader:
        assert reader.topic_counts["/dfmvr/head_pose"] == 4
        assert reader.topic_counts["/dfmvr/mesh/topology"] == 1


def test_missing_camera_topic_is_a_clear_error(tmp_path, ict_npz, capsys):
    bag = _image_bag(tmp_path / "two_cameras", ("left", "front"), 2, size=(32, 24))
    out = tmp_path / "out"
    assert main(["replay", str(bag), "-o", str(out), "--model", str(ict_npz), "-q"]) == 2
    err = capsys.readouterr().err
    assert "topic '/cameras/right/image_raw' is missing" in err
    assert "/cameras/left/image_raw (sensor_msgs/msg/Image, 2 msgs)" in err
    assert not out.exists()  # checked before anything was loaded or written


def test_real_humble_bag_names_what_it_has(shared_data, tmp_path, ict_npz, capsys):
    bag = shared_data / "rosbag2_ros_humble_images" / "images.bag"
    assert main(["replay", str(bag), "-o", str(tmp_path / "out"), "--model", str(ict_npz), "-q"]) == 2
    err = capsys.readouterr().err
    assert (
        "'/cameras/front/image_raw' is missing" in err and "The bag has: /image (sensor_msgs/msg/Image, 3 msgs)" in err
    )


def test_gt_landmarks_need_their_topics(tmp_path, ict_npz, capsys):
    bag = _image_bag(tmp_path / "no_landmarks", CAMERAS, 1, size=(32, 24))
    assert main(["replay", str(bag), "-o", str(tmp_path / "out"), "--model", str(ict_npz), "--gt-landmarks"]) == 2
    err = capsys.readouterr().err
    assert "'/ground_truth/landmarks/left' is missing" in err and "use the detector instead" in err


def test_bad_frame_counted_rig_intrinsics_without_camera_info(tmp_path, ict_npz, reconstructor):
    bag = _image_bag(tmp_path / "bad_frame", CAMERAS, 3, bad=("front", 1))
    config = node_config(ict_npz, **{"sync.expected_rate_hz": 10.0})
    report = replay_bag(bag, tmp_path / "out", config, reconstructor, overlay_every=0, progress=False)
    data = report.data
    assert report.complete and report.exit_code == 0
    assert data["frames"]["front"] == {"received": 3, "bad": 1, "landmarks_missing": 0}
    assert "weird8" in data["bad_frame_errors"][0]
    assert data["drops_per_camera"]["front"]["bad_frames"] == 1
    assert data["sets"]["processed"] == 3 and data["sets"]["partial"] == 1 and data["sets"]["with_face"] == 0
    assert data["intrinsics"]["left"] == "rig (no CameraInfo topic /cameras/left/camera_info in the bag)"
    assert data["landmarks"] == "detector (none)"
    assert data["per_set"][0]["reasons"]["left"]  # black images: no face, said why
    with BagReader(tmp_path / "out" / "output_bag") as reader:
        assert reader.topic_counts["/dfmvr/head_pose"] == 0 and reader.topic_counts["/dfmvr/mesh/topology"] == 1


def test_failed_sets_are_counted(tmp_path, ict_npz, reconstructor):
    """Images that do not match the rig's intrinsics (no CameraInfo) fail their set; the replay goes on."""
    bag = _image_bag(tmp_path / "small", CAMERAS, 2, size=(32, 24))
    config = node_config(ict_npz, **{"sync.expected_rate_hz": 10.0})
    report = replay_bag(bag, tmp_path / "out", config, reconstructor, overlay_every=0, progress=False)
    assert report.complete and report.sets_failed == 2 and report.exit_code == 1
    assert "ShapeError" in report.data["failures"][0] and "left" in report.data["failures"][0]


def test_bad_arguments(tmp_path, humble_bag, ict_npz, reconstructor):
    config = node_config(ict_npz)
    with pytest.raises(ConfigError, match="max_sets"):
        replay_bag(humble_bag, tmp_path, config, reconstructor, max_sets=0)
    with pytest.raises(ConfigError, match="overlay_every"):
        replay_bag(humble_bag, tmp_path, config, reconstructor, overlay_every=-1)
    other = node_config(ict_npz, **{"cameras.reference": "left"})
    with pytest.raises(ConfigError, match=r"cameras\.reference"):
        replay_bag(humble_bag, tmp_path, other, reconstructor)
    with pytest.raises(ConfigError, match="needs tf2 lookups"):
        replay_bag(humble_bag, tmp_path, node_config(ict_npz, **{"frames.target_frame": "base_link"}), reconstructor)
    with pytest.raises(BagError, match="not found"):
        replay_bag(tmp_path / "nope", tmp_path, config, reconstructor)
    assert not (tmp_path / "output_bag").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None,
    reason="mediapipe not installed (the 'landmarks' extra); the detector path is tested where it is",
)
def test_replay_with_the_mediapipe_detector(tmp_path, humble_bag, ict_npz):
    config = ReconstructorConfig(morphable_model=ict_npz, backend="torch", detector="mediapipe", cache_dir=tmp_path)
    report = replay_bag(
        humble_bag,
        tmp_path / "out",
        node_config(ict_npz),
        FaceReconstructor(config),
        max_sets=1,
        overlay_every=0,
        evaluate=False,
        progress=False,
    )
    data = report.data
    assert data["landmarks"] == "detector (mediapipe)"
    assert data["sets"]["processed"] == 1 and data["valid_views"] == {"left": 1, "front": 1, "right": 1}


def test_interrupted_replay_keeps_its_output(tmp_path, humble_bag, ict_npz, reconstructor, monkeypatch):
    use_zero_backend(monkeypatch, reconstructor)

    def interrupt(count):
        if count == 30:
            raise KeyboardInterrupt

    report = replay_bag(
        humble_bag,
        tmp_path,
        node_config(ict_npz),
        reconstructor,
        landmark_topic_prefix="/ground_truth/landmarks",
        overlay_every=0,
        evaluate=False,
        progress=False,
        on_message=interrupt,
    )
    assert report.interrupted and not report.complete and report.exit_code == 130
    assert 0 < report.sets_processed < HUMBLE_BAG["frames"]
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["error"] == "interrupted (Ctrl-C)" and data["messages_read"] == 30
    with BagReader(tmp_path / "output_bag") as reader:
        assert reader.topic_counts["/dfmvr/head_pose"] == report.sets_processed
