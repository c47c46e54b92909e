"""dfmvr extract-triplets: a three-camera rosbag2 (jittered stamps, a dropped frame, a compressed camera) → a
folder of synchronized triplets that FolderTripletDataset reads; the Humble-recorded bag gives clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfmvr_core.cli.main import main
from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.preprocess import FaceLandmarks, load_image
from dfmvr_ros import messages as M
from dfmvr_ros.bag_io import BagError, BagWriter
from dfmvr_ros.extract import camera_info_yaml, extract_node_config, extract_triplets
from dfmvr_ros.image_codec import compressed_image_message

CAMERAS = ("left", "front", "right")
PERIOD = 33_333_333  # 30 Hz, the node's default sync.expected_rate_hz
T0 = 100 * 10**9
W, H = 64, 48
INTRINSICS = PinholeIntrinsics(fx=80.0, fy=80.0, cx=31.5, cy=23.5, width=W, height=H)


def frame(cam: int, i: int) -> np.ndarray:
    """A distinct image per camera and frame (a gradient plus an offset)."""
    x = np.arange(W, dtype=np.int32)[None, :, None]
    return ((x * 3 + 40 * cam + 7 * i + np.array([0, 60, 120])) % 256).astype(np.uint8).repeat(H, axis=0)


def write_rig_bag(path, n=6, drop=(("front", 3),), info=INTRINSICS, compressed=("left",)):
    """n instants at 30 Hz, stamps jittered by up to ±3 ms per camera, received 5-9 ms later; CameraInfo with each
    frame; the cameras in ``compressed`` publish ``image_raw/compressed`` (JPEG) instead of ``image_raw``."""
    rng = np.random.default_rng(1)
    records = []
    stamps = {}
    for i in range(n):
        for c, cam in enumerate(CAMERAS):
            if (cam, i) in drop:
                continue
            stamp = T0 + i * PERIOD + int(rng.integers(-3_000_000, 3_000_001))
            stamps[cam, i] = stamp
            received = stamp + int(rng.integers(5_000_000, 9_000_000))
            records.append((received - 1, "info", cam, stamp, None))
            records.append((received, "image", cam, stamp, frame(c, i)))
    with BagWriter(path) as bag:
        for cam in CAMERAS:
            kind = "CompressedImage" if cam in compressed else "Image"
            bag.add_topic(_image_topic(cam, compressed), f"sensor_msgs/msg/{kind}")
            bag.add_topic(f"/cameras/{cam}/camera_info", "sensor_msgs/msg/CameraInfo")
        for received, what, cam, stamp, image in sorted(records, key=lambda r: r[0]):
            frame_id = f"{cam}_camera_optical_frame"
            if what == "info":
                msg = M.camera_info_message(bag.types, stamp, frame_id, info)
                bag.write(f"/cameras/{cam}/camera_info", received, msg)
            elif cam in compressed:
                msg = compressed_image_message(bag.types, stamp, frame_id, image, "jpeg", quality=98)
                bag.write(_image_topic(cam, compressed), received, msg)
            else:
                bag.write(_image_topic(cam, compressed), received, M.image_message(bag.types, stamp, frame_id, image))
    return stamps


def _image_topic(cam, compressed):
    return f"/cameras/{cam}/image_raw" + ("/compressed" if cam in compressed else "")


@pytest.fixture(scope="module")
def rig_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "rig"
    return path, write_rig_bag(path)


def test_extracts_synchronized_sets_and_camera_info(rig_bag, tmp_path) -> None:
    bag, stamps = rig_bag
    out = tmp_path / "triplets"
    summary = extract_triplets(bag, out, progress=False)
    assert summary.image_topics["left"] == "/cameras/left/image_raw/compressed"  # the other transport, found
    assert (summary.sets_matched, summary.sets_complete, summary.sets_written) == (6, 5, 6)
    assert summary.frames_written == {"left": 6, "front": 5, "right": 6}
    assert summary.camera_info_written == CAMERAS and summary.sync.dropped == 0
    files = {cam: sorted(p.stem for p in (out / cam).glob("*.png")) for cam in CAMERAS}
    assert files["left"] == files["right"] and set(files["front"]) == set(files["left"]) - {files["left"][3]}
    for i, stem in enumerate(files["left"]):
        members = [stamps[cam, i] for cam in CAMERAS if (cam, i) in stamps]
        assert len(stem) == 19 and min(members) <= int(stem) <= max(members)  # the set's reference stamp
        np.testing.assert_array_equal(load_image(out / "right" / f"{stem}.png"), frame(2, i))  # PNG: lossless
        jpeg = load_image(out / "left" / f"{stem}.png").astype(int)
        assert np.abs(jpeg - frame(0, i)).mean() < 4.0  # decoded from the JPEG stream
    from dfmvr_training.data.triplets import read_camera_info_yaml

    assert read_camera_info_yaml(out / "camera_info" / "front.yaml") == INTRINSICS
    report = json.loads((out / "extract.json").read_text())
    assert report["sets_written"] == 6 and report["sync"]["partial_sets"] == 1


def test_every_max_and_complete_only(rig_bag, tmp_path) -> None:
    bag, _ = rig_bag
    assert extract_triplets(bag, tmp_path / "a", every=2, progress=False).sets_written == 3
    summary = extract_triplets(bag, tmp_path / "b", max_sets=2, image_format="jpg", progress=False)
    assert summary.sets_written == 2 and len(list((tmp_path / "b" / "front").glob("*.jpg"))) == 2
    summary = extract_triplets(bag, tmp_path / "c", complete_only=True, progress=False)
    assert summary.sets_written == 5 and summary.frames_written["front"] == 5
    with pytest.raises(ConfigError, match="every: expected a positive integer"):
        extract_triplets(bag, tmp_path / "d", every=0)
    with pytest.raises(ConfigError, match="format"):
        extract_triplets(bag, tmp_path / "d", image_format="gif")


class _FixedFace:
    """Fake detector: the same 68 points (a 30-px face in the middle of a 64×48 image) for every image."""

    name = "fixed"

    def detect(self, image):
        angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        points = np.stack((32 + 15 * np.cos(angles), 24 + 15 * np.sin(angles)), axis=1)
        return FaceLandmarks.from_points(points, 0.9)


def test_extracted_folder_is_a_triplet_dataset(rig_bag, tmp_path) -> None:
    from dfmvr_training.data.triplets import FolderTripletDataset

    bag, _ = rig_bag
    extract_triplets(bag, tmp_path, progress=False)
    ds = FolderTripletDataset(tmp_path, detector=_FixedFace(), min_face_px=10, progress=False)
    assert len(ds) == 6
    assert [ds[i]["valid"].tolist() for i in range(6)] == [[True] * 3] * 3 + [[True, False, True]] + [[True] * 3] * 2
    K = INTRINSICS.matrix()
    assert np.allclose(ds[0]["K"].numpy(), K.numpy())


def test_size_mismatch_with_camera_info_is_an_error(tmp_path) -> None:
    bag = tmp_path / "bag"
    write_rig_bag(bag, n=2, drop=(), info=PinholeIntrinsics(fx=500, fy=500, cx=319.5, cy=239.5, width=640, height=480))
    with pytest.raises(DfmvrError, match=r"image is 64x48 but the camera's CameraInfo says 640x480"):
        extract_triplets(bag, tmp_path / "out", progress=False)


def test_cli_and_the_humble_bag(rig_bag, shared_data, tmp_path, capsys) -> None:
    bag, _ = rig_bag
    assert main(["extract-triplets", str(bag), "-o", str(tmp_path / "cli"), "--every", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "6 matched (5 complete, 1 partial)" in out and "written      3 sets" in out
    assert len(list((tmp_path / "cli" / "left").glob("*.png"))) == 3

    humble = shared_data / "rosbag2_ros_humble_images" / "images.bag"  # recorded by ROS 2: one /image topic
    assert main(["extract-triplets", str(humble), "-o", str(tmp_path / "h"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "topic '/cameras/left/image_raw' is missing" in err and "/image (sensor_msgs/msg/Image, 3 msgs)" in err
    assert "--no-camera-info" in err

    config = tmp_path / "one_camera.yaml"
    config.write_text(
        "/**:\n  ros__parameters:\n    cameras:\n      names: [front]\n      reference: front\n"
        "      front: {namespace: /cam, image_topic: /image}\n"
    )
    with pytest.raises(BagError, match="topic '/cam/camera_info' is missing"):
        extract_triplets(humble, tmp_path / "h", config=config, progress=False)
    summary = extract_triplets(humble, tmp_path / "h", config=config, camera_info=False, progress=False)
    assert summary.sets_written == 3 and summary.camera_info_written == () and summary.warnings
    images = sorted((tmp_path / "h" / "front").glob("*.png"))
    assert len(images) == 3 and load_image(images[0]).shape == (2, 2, 3)  # mono8 → RGB


def test_config_and_camera_info_yaml_helpers(tmp_path) -> None:
    config = extract_node_config()  # the node's defaults; no morphable model needed
    assert config.camera_names == CAMERAS and config.image_topics()["front"] == "/cameras/front/image_raw"
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    sync: {queue_size: 0}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: .*queue_size"):
        extract_node_config(bad)
    import yaml

    msg = M.camera_info_message(M.rosbags_types("humble"), 0, "cam", INTRINSICS, (0.1, 0.0, 0.0, 0.0, 0.0))
    data = yaml.safe_load(camera_info_yaml("front", msg))
    assert data["camera_matrix"] == {"rows": 3, "cols": 3, "data": [80.0, 0.0, 31.5, 0.0, 80.0, 23.5, 0.0, 0.0, 1.0]}
    assert data["distortion_coefficients"]["data"] == [0.1, 0.0, 0.0, 0.0, 0.0]
    assert data["projection_matrix"]["cols"] == 4 and data["image_width"] == W and data["camera_name"] == "front"
