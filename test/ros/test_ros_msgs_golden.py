"""Byte-level checks against independent references: numpy's structured arrays (what create_cloud_xyz32
does), ``ndarray.tobytes`` (what cv2_to_imgmsg does) and a bag recorded by real ROS 2 Humble tooling."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from ros_msgs_helpers import DISTROS, cdr_roundtrip

from dfmvr_ros import messages as M


@pytest.mark.parametrize("distro", DISTROS)
def test_point_cloud_layout_is_create_cloud_xyz32s(distro):
    types = M.rosbags_types(distro)
    points = np.random.default_rng(0).normal(size=(33, 3)) * 0.2  # float64 in: stored as float32
    msg = M.point_cloud_xyz(types, 1, "rig", points)
    # Reference: sensor_msgs_py.point_cloud2.create_cloud builds a structured array from the fields'
    # (name, offset, datatype) and sends its raw bytes.
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 12})
    reference = np.zeros(len(points), dtype=dtype)
    for i, axis in enumerate("xyz"):
        reference[axis] = points[:, i]
    assert bytes(msg.data) == reference.tobytes()
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
    ]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 33, 12, 33 * 12)
    assert (msg.is_bigendian, msg.is_dense) == (False, False)
    assert types("sensor_msgs/msg/PointField").FLOAT32 == 7


@pytest.mark.parametrize("distro", DISTROS)
def test_image_step_and_data_are_cv2_to_imgmsgs(distro):
    types = M.rosbags_types(distro)
    rgb = np.random.default_rng(1).integers(0, 256, size=(6, 11, 3), dtype=np.uint8)
    msg = M.image_message(types, 0, "cam", rgb)
    assert (msg.step, msg.is_bigendian) == (33, 0)
    assert bytes(msg.data) == rgb.tobytes()
    bgr_view = rgb[:, ::-1]  # a non-contiguous array: the bytes are still its C-order bytes
    assert bytes(M.image_message(types, 0, "cam", bgr_view, "bgr8").data) == bgr_view.tobytes()
    depth = (np.arange(12).reshape(3, 4) * 1000).astype(">u2")  # big-endian: flagged, bytes unchanged
    msg16 = M.image_message(types, 0, "cam", depth, "mono16")
    assert (msg16.step, msg16.is_bigendian) == (8, 1)
    assert bytes(msg16.data) == depth.tobytes()
    little = depth.astype("<u2")
    assert M.image_message(types, 0, "cam", little, "mono16").is_bigendian == 0


def test_image_cdr_equals_a_message_recorded_by_ros2_humble(shared_data):
    """The first message of the Humble bag (mono8 2×2, stamp 0) and ours are the same 72 bytes."""
    db = shared_data / "rosbag2_ros_humble_images" / "images.bag" / "images.bag_0.db3"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        recorded = conn.execute("SELECT data FROM messages WHERE timestamp = 0").fetchone()[0]
    conn.close()
    types = M.rosbags_types("humble")
    image = np.array([[0, 128], [128, 255]], dtype=np.uint8)
    ours, _ = cdr_roundtrip(types, M.image_message(types, 0, "camera_optical_frame", image, "mono8"))
    assert ours == bytes(recorded)
