"""Bad input to the message constructors raises clear dfmvr errors; the readers accept general layouts."""

from __future__ import annotations

import numpy as np
import pytest

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_ros import messages as M


@pytest.fixture(scope="module")
def types():
    return M.rosbags_types("humble")


def test_unknown_distro_and_type(types):
    with pytest.raises(ConfigError, match="distro"):
        M.rosbags_types("rolling")
    with pytest.raises(ConfigError, match="foo_msgs/msg/Bar"):
        types("foo_msgs/msg/Bar")
    with pytest.raises(ConfigError, match="std_msgs/msg/Header"):
        M.build(types, "std_msgs/msg/Header", stamp=M.ns_to_stamp(types, 0))  # frame_id missing


@pytest.mark.parametrize("bad", [-1, 1.5, True, M.MAX_STAMP_NS + 1, "7"])
def test_bad_stamps(types, bad):
    with pytest.raises(ShapeError):
        M.ns_to_stamp(types, bad)


def test_stamp_to_ns_is_lenient_like_rclpy(types):
    stamp = types("builtin_interfaces/msg/Time")(sec=1, nanosec=2_000_000_000)
    assert M.stamp_to_ns(stamp) == 3_000_000_000
    with pytest.raises(ShapeError, match="non-negative"):
        M.stamp_to_ns(types("builtin_interfaces/msg/Time")(sec=-1, nanosec=0))


def test_non_rigid_transforms_are_refused(types):
    scaled = np.diag([2.0, 1.0, 1.0, 1.0])
    with pytest.raises(ShapeError, match="rotation"):
        M.pose_stamped(types, 0, "rig", scaled)
    mirrored = np.diag([-1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ShapeError, match="det"):
        M.transform_stamped(types, 0, "rig", "face", mirrored)
    bad_row = np.eye(4)
    bad_row[3, 0] = 1.0
    with pytest.raises(ShapeError, match="last row"):
        M.pose_stamped(types, 0, "rig", bad_row)
    nan = np.eye(4)
    nan[0, 3] = np.nan
    with pytest.raises(ShapeError, match="non-finite"):
        M.pose_stamped(types, 0, "rig", nan)
    with pytest.raises(ShapeError, match=r"\(4, 4\)"):
        M.pose_stamped(types, 0, "rig", np.eye(3))


def test_frames_are_checked(types):
    with pytest.raises(ShapeError, match="both"):
        M.transform_stamped(types, 0, "rig", "rig", np.eye(4))
    with pytest.raises(ShapeError, match="child_frame"):
        M.transform_stamped(types, 0, "rig", "", np.eye(4))
    with pytest.raises(ShapeError, match="whitespace"):
        M.point_cloud_xyz(types, 0, "my frame", np.zeros((1, 3)))


def test_cloud_and_mesh_inputs_are_checked(types):
    with pytest.raises(ShapeError, match="points"):
        M.point_cloud_xyz(types, 0, "rig", np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="non-finite"):
        M.point_cloud_xyz(types, 0, "rig", np.array([[0.0, np.inf, 0.0]]))
    vertices = np.zeros((3, 3))
    with pytest.raises(ShapeError, match=r"\[0, 3\)"):
        M.mesh_topology(types, np.array([[0, 1, 3]]), vertices)
    with pytest.raises(ShapeError, match="integer"):
        M.triangle_marker(types, 0, "rig", vertices, np.array([[0.0, 1.0, 2.0]]))
    with pytest.raises(ShapeError, match="color"):
        M.triangle_marker(types, 0, "rig", vertices, np.array([[0, 1, 2]]), color=(1.0, 0.5, 0.5, 1.5))
    with pytest.raises(ShapeError, match="lifetime"):
        M.triangle_marker(types, 0, "rig", vertices, np.array([[0, 1, 2]]), lifetime_s=-1.0)


def test_points_from_cloud_reads_padded_float64_big_endian_clouds(types):
    points = np.random.default_rng(0).normal(size=(2, 3, 3))  # an organised 2×3 cloud
    # x, y, z float64 big-endian at offsets 8/16/24 after an 8-byte 'intensity'; point_step 40, rows padded.
    dtype = np.dtype({"names": ["i", "x", "y", "z"], "formats": [">f8"] * 4, "offsets": [0, 8, 16, 24], "itemsize": 40})
    rows = np.zeros((2, 3), dtype=dtype)
    rows["x"], rows["y"], rows["z"] = points[..., 0], points[..., 1], points[..., 2]
    row_step = 3 * 40 + 8
    data = b"".join(rows[r].tobytes() + b"\xaa" * 8 for r in range(2))
    field = types("sensor_msgs/msg/PointField")
    msg = M.build(
        types,
        "sensor_msgs/msg/PointCloud2",
        header=M.header(types, 0, "rig"),
        height=2,
        width=3,
        fields=[field(name=n, offset=o, datatype=8, count=1) for n, o in (("i", 0), ("x", 8), ("y", 16), ("z", 24))],
        is_bigendian=True,
        point_step=40,
        row_step=row_step,
        data=np.frombuffer(data, np.uint8),
        is_dense=True,
    )
    np.testing.assert_array_equal(M.points_from_cloud(msg), points.reshape(-1, 3).astype(np.float32))
    msg.data = msg.data[:-1]
    with pytest.raises(ShapeError, match="row_step"):
        M.points_from_cloud(msg)
    msg.fields = msg.fields[:2]
    with pytest.raises(ShapeError, match="'y'"):
        M.points_from_cloud(msg)


def test_coefficient_errors(types):
    with pytest.raises(ShapeError, match="non-finite"):
        M.coefficients_array(types, {"identity": np.array([0.0, np.nan])})
    with pytest.raises(ShapeError, match="2-D"):
        M.coefficients_array(types, {"lighting": np.zeros((1, 3, 27))})
    with pytest.raises(ShapeError, match="at least one"):
        M.coefficients_array(types, {})
    msg = M.coefficients_array(types, {"identity": np.arange(4.0), "pose": np.zeros((3, 6))})
    msg.layout.dim[1].stride = 5
    with pytest.raises(ShapeError, match="stride"):
        M.coefficients_from_array(msg)
    msg.layout.dim[1].stride = 6
    msg.data = msg.data[:-1]
    with pytest.raises(ShapeError, match="sizes"):
        M.coefficients_from_array(msg)


def test_image_message_errors(types):
    with pytest.raises(M.ImageEncodingError, match=r"'rgb8' expects a \(H, W, 3\) uint8"):
        M.image_message(types, 0, "cam", np.zeros((4, 4), np.uint8))
    with pytest.raises(M.ImageEncodingError, match="'mono16' expects"):
        M.image_message(types, 0, "cam", np.zeros((4, 4), np.uint8), "mono16")
    with pytest.raises(M.ImageEncodingError, match="'xyz9' is not supported"):
        M.image_message(types, 0, "cam", np.zeros((4, 4, 3), np.uint8), "xyz9")
    with pytest.raises(M.ImageEncodingError, match="empty"):
        M.image_message(types, 0, "cam", np.zeros((0, 4, 3), np.uint8))
    assert issubclass(M.ImageEncodingError, ShapeError)


def test_camera_info_errors(types):
    intr = PinholeIntrinsics(fx=500, fy=500, cx=320, cy=240, width=640, height=480)
    msg = M.camera_info_message(types, 0, "cam", intr)
    msg.binning_x = 2
    with pytest.raises(ShapeError, match="binning"):
        M.intrinsics_from_camera_info(msg)
    msg = M.camera_info_message(types, 0, "cam", intr)
    msg.roi.width, msg.roi.height = 320, 240
    with pytest.raises(ShapeError, match="ROI"):
        M.intrinsics_from_camera_info(msg)
    msg = M.camera_info_message(types, 0, "cam", intr)
    msg.k = np.zeros(9)  # an uncalibrated camera publishes zeros
    with pytest.raises(ConfigError, match="uncalibrated"):
        M.intrinsics_from_camera_info(msg)
    msg.k = np.array([-500.0, 0, 320, 0, 500, 240, 0, 0, 1])
    with pytest.raises(ConfigError, match="fx"):
        M.intrinsics_from_camera_info(msg)
    with pytest.raises(ConfigError, match="distortion_model"):
        M.camera_info_message(types, 0, "cam", intr, distortion=[0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="on_distortion"):
        M.intrinsics_from_camera_info(M.camera_info_message(types, 0, "cam", intr), on_distortion="maybe")


def test_diagnostic_errors(types):
    with pytest.raises(ConfigError, match=r"statuses\[0\].level"):
        M.diagnostic_array(types, 0, [("x", 7, "?", {})])
    with pytest.raises(ConfigError, match=r"statuses\[1\]"):
        M.diagnostic_array(types, 0, [("x", 0, "ok", {}), ("y", 0)])
    with pytest.raises(ConfigError, match="values"):
        M.diagnostic_array(types, 0, [("x", 0, "ok", ["a"])])
