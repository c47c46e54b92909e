"""BagWriter → BagReader round trips (sqlite3 and mcap, Humble and Jazzy) and the bag recorded by ROS 2 Humble."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_ros import messages as M
from dfmvr_ros.bag_io import BagReader, BagWriter
from dfmvr_ros.image_codec import image_from_message

INTRINSICS = PinholeIntrinsics(fx=600, fy=600, cx=31.5, cy=23.5, width=64, height=48)
S = 1_000_000_000


def _pose(i: int) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", (0.1 * i, -0.2, 0.05)).as_matrix()
    T[:3, 3] = (0.01 * i, 0.0, 0.7)
    return T


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(n)]


def write_sample_bag(path, distro: str, storage: str, n: int = 3):
    """3 frames of image + camera_info + head pose, and one latched topology message (written last, stamped first)."""
    images = _images(n)
    with BagWriter(path, distro=distro, storage=storage) as bag:
        types = bag.types
        bag.add_topic("/front/image_raw", "sensor_msgs/msg/Image")
        bag.add_topic("/front/camera_info", "sensor_msgs/msg/CameraInfo")
        bag.add_topic("/dfmvr/head_pose", "geometry_msgs/msg/PoseStamped")
        bag.add_topic("/dfmvr/topology", "shape_msgs/msg/Mesh", latched=True)
        for i, image in enumerate(images):
            t = 10 * S + i * S // 10
            bag.write("/front/camera_info", t + 1, M.camera_info_message(types, t, "front", INTRINSICS))
            bag.write("/front/image_raw", t, M.image_message(types, t, "front", image))
            bag.write("/dfmvr/head_pose", t + 2, M.pose_stamped(types, t, "rig", _pose(i)))
        faces = np.array([[0, 1, 2], [0, 2, 3]])
        bag.write("/dfmvr/topology", 10 * S - 1, M.mesh_topology(types, faces, np.eye(4)[:, :3]))
        assert bag.message_counts == {
            "/front/image_raw": n,
            "/front/camera_info": n,
            "/dfmvr/head_pose": n,
            "/dfmvr/topology": 1,
        }
    return images


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_write_then_read(tmp_path, distro, storage):
    path = tmp_path / "out_bag"
    images = write_sample_bag(path, distro, storage)
    assert not (tmp_path / "out_bag.partial").exists()
    with BagReader(path) as bag:
        assert bag.storage == storage
        assert bag.metadata_version == {"humble": 5, "jazzy": 9}[distro]
        assert bag.topics == {
            "/front/image_raw": "sensor_msgs/msg/Image",
            "/front/camera_info": "sensor_msgs/msg/CameraInfo",
            "/dfmvr/head_pose": "geometry_msgs/msg/PoseStamped",
            "/dfmvr/topology": "shape_msgs/msg/Mesh",
        }
        assert bag.message_count == 10
        assert bag.topic_counts["/front/image_raw"] == 3
        assert bag.latched_topics == frozenset({"/dfmvr/topology"})
        assert (bag.start_ns, bag.end_ns) == (10 * S - 1, 10 * S + 2 * S // 10 + 2)
        everything = list(bag.messages())
        assert [m.timestamp_ns for m in everything] == sorted(m.timestamp_ns for m in everything)
        assert everything[0].topic == "/dfmvr/topology"
        frames = list(bag.messages(["/front/image_raw"]))
        assert [m.timestamp_ns for m in frames] == [10 * S, 10 * S + S // 10, 10 * S + 2 * S // 10]
        for m, image in zip(frames, images, strict=True):
            assert m.msgtype == "sensor_msgs/msg/Image"
            assert M.stamp_to_ns(m.msg.header.stamp) == m.timestamp_ns
            np.testing.assert_array_equal(image_from_message(m.msg), image)
        infos = list(bag.messages(["/front/camera_info"]))
        assert all(M.intrinsics_from_camera_info(m.msg) == INTRINSICS for m in infos)
        poses = list(bag.messages(["/dfmvr/head_pose"]))
        for i, m in enumerate(poses):
            np.testing.assert_allclose(M.matrix_from_pose(m.msg), _pose(i), atol=1e-12, rtol=0)
        bag.require_topics({"/front/image_raw": ["sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"]})
        assert list(bag.messages([])) == []


def test_humble_metadata_has_exactly_humbles_layout(tmp_path, shared_data):
    """Our version-5 metadata.yaml has the keys, in the order, of the one Humble's rosbag2 wrote."""
    write_sample_bag(tmp_path / "bag", "humble", "sqlite3")
    ours = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    recorded_path = shared_data / "rosbag2_ros_humble_images" / "images.bag" / "metadata.yaml"
    recorded = yaml.safe_load(recorded_path.read_text())["rosbag2_bagfile_information"]
    assert list(ours) == list(recorded)
    assert ours["version"] == 5
    assert list(ours["topics_with_message_count"][0]["topic_metadata"]) == list(
        recorded["topics_with_message_count"][0]["topic_metadata"]
    )
    assert list(ours["files"][0]) == list(recorded["files"][0])
    qos = {
        t["topic_metadata"]["name"]: yaml.safe_load(t["topic_metadata"]["offered_qos_profiles"])
        for t in ours["topics_with_message_count"]
    }
    assert qos["/dfmvr/topology"][0]["durability"] == 1  # RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL, as an int
    assert qos["/front/image_raw"][0]["durability"] == 2  # VOLATILE
    assert (tmp_path / "bag" / ours["relative_file_paths"][0]).is_file()


def test_jazzy_metadata_records_latched_qos_as_strings(tmp_path):
    write_sample_bag(tmp_path / "bag", "jazzy", "mcap")
    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9
    qos = {
        t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
        for t in info["topics_with_message_count"]
    }
    assert qos["/dfmvr/topology"][0]["durability"] == "transient_local"


def test_reads_the_bag_recorded_by_ros2_humble(shared_data):
    path = shared_data / "rosbag2_ros_humble_images" / "images.bag"
    with BagReader(path) as bag:
        assert (bag.metadata_version, bag.storage, bag.message_count) == (5, "sqlite3", 3)
        assert bag.topics == {"/image": "sensor_msgs/msg/Image"}
        assert bag.latched_topics == frozenset()
        assert (bag.start_ns, bag.end_ns) == (0, 2 * S)
        messages = list(bag.messages())
    assert [m.timestamp_ns for m in messages] == [0, S, 2 * S]
    expected = np.repeat(np.array([[0, 128], [128, 255]], np.uint8)[..., None], 3, axis=2)
    for m in messages:
        assert (m.msg.encoding, m.msg.header.frame_id) == ("mono8", "camera_optical_frame")
        np.testing.assert_array_equal(image_from_message(m.msg), expected)
        # The recorder wrote stamps as (sec 0, nanosec i·1e9); read leniently as rclpy does.
        assert M.stamp_to_ns(m.msg.header.stamp) == m.timestamp_ns


def test_a_storage_file_opens_with_or_without_its_metadata(tmp_path, shared_data):
    source = shared_data / "rosbag2_ros_humble_images" / "images.bag"
    with BagReader(source / "images.bag_0.db3") as bag:  # its folder has metadata.yaml: the folder is opened
        assert bag.path == source and bag.metadata_version == 5
    lone = tmp_path / "lone.db3"
    shutil.copyfile(source / "images.bag_0.db3", lone)
    with BagReader(lone) as bag:
        assert (bag.metadata_version, bag.storage, bag.message_count) == (None, "sqlite3", 3)
        assert len(list(bag.messages(["/image"]))) == 3


def test_overwrite_replaces_a_bag(tmp_path):
    path = tmp_path / "bag"
    write_sample_bag(path, "humble", "sqlite3", n=3)
    with BagWriter(path, overwrite=True, storage="mcap") as bag:
        bag.add_topic("/only", "std_msgs/msg/Float32MultiArray")
        bag.write("/only", 5, M.coefficients_array(bag.types, {"identity": np.arange(3.0)}))
    with BagReader(path) as bag:
        assert bag.storage == "mcap" and bag.topics == {"/only": "std_msgs/msg/Float32MultiArray"}
        (message,) = bag.messages()
        np.testing.assert_array_equal(M.coefficients_from_array(message.msg)["identity"], [0, 1, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]


def test_write_raw_keeps_recorded_bytes(tmp_path, shared_data):
    db = shared_data / "rosbag2_ros_humble_images" / "images.bag" / "images.bag_0.db3"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT timestamp, data FROM messages ORDER BY timestamp").fetchall()
    conn.close()
    with BagWriter(tmp_path / "copy") as bag:
        bag.add_topic("/image", "sensor_msgs/msg/Image")
        for timestamp, data in rows:
            bag.write_raw("/image", timestamp, data)
    with sqlite3.connect(tmp_path / "copy" / "copy.db3") as conn:
        copied = conn.execute("SELECT timestamp, data FROM messages ORDER BY timestamp").fetchall()
    conn.close()
    assert copied == rows  # byte for byte, padding included
    with BagReader(tmp_path / "copy") as copy:
        assert [image_from_message(m.msg)[1, 1, 0] for m in copy.messages()] == [255, 255, 255]
