"""Equivalence with the ROS 2 implementations (rclpy, sensor_msgs_py, cv_bridge) where they are installed.

On machines without ROS 2 these tests skip, except the check that :func:`rclpy_types` fails clearly.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from ros_msgs_helpers import cdr_roundtrip
from scipy.spatial.transform import Rotation

from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.inference import MissingDependencyError
from dfmvr_ros import messages as M
from dfmvr_ros.image_codec import image_from_message

RCLPY_REASON = "rclpy not installed (ROS 2 absent)"


def _distro() -> str:
    return "jazzy" if os.environ.get("ROS_DISTRO") == "jazzy" else "humble"


@pytest.mark.skipif(importlib.util.find_spec("rclpy") is not None, reason="rclpy is installed here")
def test_rclpy_types_without_ros_raises_a_clear_error():
    with pytest.raises(MissingDependencyError, match="rclpy is not installed"):
        M.rclpy_types()


class _RclpyArrays(M.RclpyTypes):
    """rosbags' classes filled with the array values rclpy would hold (``array.array``, ``bytes``)."""

    def __init__(self):
        super().__init__()
        self._store = M.rosbags_types("humble")

    def __call__(self, name):
        return self._store(name)


def test_readers_accept_rclpy_array_fields():
    types = _RclpyArrays()
    points = np.random.default_rng(3).normal(size=(9, 3)).astype(np.float32)
    cloud = M.point_cloud_xyz(types, 1, "rig", points)
    assert type(cloud.data).__name__ == "array"
    np.testing.assert_array_equal(M.points_from_cloud(cloud), points)
    image = np.random.default_rng(4).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_from_message(M.image_message(types, 1, "cam", image)), image)
    blocks = {"identity": np.arange(4, dtype=np.float32), "pose": np.ones((3, 6), np.float32)}
    back = M.coefficients_from_array(M.coefficients_array(types, blocks))
    np.testing.assert_array_equal(back["pose"], blocks["pose"])
    intr = PinholeIntrinsics(fx=600, fy=600, cx=320, cy=240, width=640, height=480)
    assert M.intrinsics_from_camera_info(M.camera_info_message(types, 1, "cam", intr)) == intr
    status = M.diagnostic_array(types, 1, [("dfmvr", 2, "error", {})]).status[0]
    assert status.level == b"\x02"


def _samples(types):
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=0).as_matrix()
    T[:3, 3] = (0.05, -0.02, 0.7)
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(6, 3)) * 0.05
    faces = np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]])
    intr = PinholeIntrinsics(fx=600, fy=600, cx=320, cy=240, width=640, height=480)
    return [
        M.pose_stamped(types, 1_700_000_000_000_000_001, "rig", T),
        M.tf_message(types, [M.transform_stamped(types, 5, "rig", "face", T)]),
        M.point_cloud_xyz(types, 5, "rig", vertices),
        M.mesh_topology(types, faces, vertices),
        M.triangle_marker(types, 5, "rig", vertices, faces),
        M.coefficients_array(types, {"identity": rng.normal(size=4), "lighting": rng.normal(size=(3, 27))}),
        M.image_message(types, 5, "cam", rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)),
        M.camera_info_message(types, 5, "cam", intr),
        M.diagnostic_array(types, 5, [("dfmvr", 1, "slow", {"fps": "3"})]),
    ]


def test_rclpy_messages_serialize_to_rosbags_bytes():
    pytest.importorskip("rclpy", reason=RCLPY_REASON)
    from rclpy.serialization import serialize_message

    ours = M.rosbags_types(_distro())
    for ros_msg, bag_msg in zip(_samples(M.rclpy_types()), _samples(ours), strict=True):
        expected, _ = cdr_roundtrip(ours, bag_msg)
        got = bytes(serialize_message(ros_msg))
        # Fast-CDR may leave alignment padding uninitialised (the Humble bag in shared/data has such a byte):
        # compare after a rosbags round trip, which zeroes padding and keeps every field.
        normalized = bytes(
            ours.typestore.serialize_cdr(
                ours.typestore.deserialize_cdr(got, ours.msgtype(bag_msg)), ours.msgtype(bag_msg)
            )
        )
        assert normalized == expected, ours.msgtype(bag_msg)
        assert len(got) == len(expected)


def test_point_cloud_matches_sensor_msgs_py():
    pytest.importorskip("rclpy", reason=RCLPY_REASON)
    point_cloud2 = pytest.importorskip(
        "sensor_msgs_py.point_cloud2", reason="sensor_msgs_py not installed (ROS 2 absent)"
    )
    from rclpy.serialization import serialize_message

    types = M.rclpy_types()
    points = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    ours = M.point_cloud_xyz(types, 12, "rig", points)
    reference = point_cloud2.create_cloud_xyz32(ours.header, points)
    assert bytes(serialize_message(ours)) == bytes(serialize_message(reference))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "mono16", "bgra8"])
def test_images_match_cv_bridge(encoding):
    pytest.importorskip("rclpy", reason=RCLPY_REASON)
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge not installed (ROS 2 absent)")
    from rclpy.serialization import serialize_message

    rng = np.random.default_rng(2)
    shapes = {"mono8": (4, 6), "mono16": (4, 6), "bgra8": (4, 6, 4)}
    dtype = np.uint16 if encoding == "mono16" else np.uint8
    image = rng.integers(0, np.iinfo(dtype).max, size=shapes.get(encoding, (4, 6, 3)), dtype=dtype)
    bridge = cv_bridge.CvBridge()
    types = M.rclpy_types()
    ours = M.image_message(types, 3, "cam", image, encoding)
    reference = bridge.cv2_to_imgmsg(image, encoding)
    reference.header = ours.header
    assert bytes(serialize_message(ours)) == bytes(serialize_message(reference))
    expected = bridge.imgmsg_to_cv2(ours, "rgb8")
    decoded = image_from_message(ours)
    # cv_bridge rounds 16 → 8 bit, dfmvr truncates (>> 8): at most 1 apart.
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= (1 if encoding == "mono16" else 0)
