"""Every message constructor, serialized as CDR with the Humble and the Jazzy typestore and read back."""

from __future__ import annotations

import numpy as np
import pytest
from ros_msgs_helpers import DISTROS, cdr_roundtrip
from scipy.spatial.transform import Rotation

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_ros import messages as M
from dfmvr_ros.image_codec import compressed_image_message, image_from_message


@pytest.fixture(params=DISTROS)
def types(request):
    return M.rosbags_types(request.param)


def _transform(seed: int) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    T[:3, 3] = np.random.default_rng(seed).normal(size=3) * 0.3
    return T


def test_stamps_roundtrip_exactly(types):
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789, M.MAX_STAMP_NS):
        stamp = M.ns_to_stamp(types, ns)
        assert 0 <= stamp.nanosec < 1_000_000_000
        _, back = cdr_roundtrip(types, stamp)
        assert M.stamp_to_ns(back) == ns


def test_header_roundtrip(types):
    _, back = cdr_roundtrip(types, M.header(types, 1_234_567_890_123, "front_camera_optical_frame"))
    assert M.stamp_to_ns(back.stamp) == 1_234_567_890_123
    assert back.frame_id == "front_camera_optical_frame"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pose_stamped_roundtrip(types, seed):
    T = _transform(seed)
    _, back = cdr_roundtrip(types, M.pose_stamped(types, 42, "rig", T))
    assert back.header.frame_id == "rig"
    assert M.stamp_to_ns(back.header.stamp) == 42
    assert back.pose.orientation.w >= 0.0
    np.testing.assert_allclose(M.matrix_from_pose(back), T, atol=1e-12, rtol=0)


def test_pose_of_a_half_turn_is_exact(types):
    T = np.diag([1.0, -1.0, -1.0, 1.0])  # 180° about x: w = 0, the branch Shepperd's method exists for
    _, back = cdr_roundtrip(types, M.pose_stamped(types, 0, "rig", T))
    q = back.pose.orientation
    assert (abs(q.x), q.y, q.z, q.w) == (1.0, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(M.matrix_from_pose(back), T, atol=1e-12, rtol=0)


def test_transform_stamped_and_tf_message_roundtrip(types):
    T1, T2 = _transform(3), _transform(4)
    tf = M.tf_message(
        types,
        [M.transform_stamped(types, 7, "rig", "face", T1), M.transform_stamped(types, 7, "rig", "left_camera", T2)],
    )
    _, back = cdr_roundtrip(types, tf)
    assert [(t.header.frame_id, t.child_frame_id) for t in back.transforms] == [("rig", "face"), ("rig", "left_camera")]
    np.testing.assert_allclose(M.matrix_from_transform(back.transforms[0]), T1, atol=1e-12, rtol=0)
    np.testing.assert_allclose(M.matrix_from_transform(back.transforms[1]), T2, atol=1e-12, rtol=0)


def test_point_cloud_roundtrip_is_exact(types):
    points = np.random.default_rng(0).normal(size=(257, 3)).astype(np.float32) * 0.1
    _, back = cdr_roundtrip(types, M.point_cloud_xyz(types, 5, "rig", points))
    assert (back.height, back.width, back.point_step, back.row_step) == (1, 257, 12, 257 * 12)
    np.testing.assert_array_equal(M.points_from_cloud(back), points)


def test_empty_point_cloud(types):
    _, back = cdr_roundtrip(types, M.point_cloud_xyz(types, 5, "rig", np.zeros((0, 3))))
    assert back.width == 0 and M.points_from_cloud(back).shape == (0, 3)


def test_mesh_topology_roundtrip(types):
    vertices = np.random.default_rng(1).normal(size=(6, 3)) * 0.05
    faces = np.array([[0, 1, 2], [2, 1, 3], [3, 4, 5]], dtype=np.int32)
    _, back = cdr_roundtrip(types, M.mesh_topology(types, faces, vertices))
    faces_back, vertices_back = M.mesh_from_topology(back)
    np.testing.assert_array_equal(faces_back, faces)
    np.testing.assert_array_equal(vertices_back, vertices)


def test_triangle_marker_roundtrip(types):
    vertices = np.random.default_rng(2).normal(size=(5, 3)) * 0.05
    faces = np.array([[0, 1, 2], [1, 3, 4]])
    marker = M.triangle_marker(
        types, 9, "rig", vertices, faces, ns="face", marker_id=3, color=(0.1, 0.2, 0.3, 0.4), lifetime_s=0.25
    )
    _, back = cdr_roundtrip(types, marker)
    cls = types("visualization_msgs/msg/Marker")
    assert (back.type, back.action) == (cls.TRIANGLE_LIST, cls.ADD)
    assert (back.ns, back.id, back.header.frame_id) == ("face", 3, "rig")
    assert (back.lifetime.sec, back.lifetime.nanosec) == (0, 250_000_000)
    assert (back.scale.x, back.scale.y, back.scale.z) == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(
        [back.color.r, back.color.g, back.color.b, back.color.a], [0.1, 0.2, 0.3, 0.4], atol=1e-7
    )
    points = np.array([(p.x, p.y, p.z) for p in back.points])
    np.testing.assert_array_equal(points, vertices[faces].reshape(-1, 3))


def test_coefficients_roundtrip_exactly_with_shapes(types):
    rng = np.random.default_rng(3)
    blocks = {
        "identity": rng.normal(size=100).astype(np.float32),
        "expression": rng.uniform(size=53).astype(np.float32),
        "albedo": rng.normal(size=60).astype(np.float32),
        "lighting": rng.normal(size=(3, 27)).astype(np.float32),
        "pose": rng.normal(size=(3, 6)).astype(np.float32),
    }
    msg = M.coefficients_array(types, blocks)
    _, back = cdr_roundtrip(types, msg)
    assert [(d.label, d.size, d.stride) for d in back.layout.dim] == [
        ("identity", 100, 100),
        ("expression", 53, 53),
        ("albedo", 60, 60),
        ("lighting", 81, 27),
        ("pose", 18, 6),
    ]
    assert back.layout.data_offset == 0
    decoded = M.coefficients_from_array(back)
    assert list(decoded) == list(M.COEFFICIENT_BLOCKS)
    for name, block in blocks.items():
        assert decoded[name].dtype == np.float32
        np.testing.assert_array_equal(decoded[name], block)


def test_image_roundtrip_bytes_exact(types):
    image = np.random.default_rng(4).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    _, back = cdr_roundtrip(types, M.image_message(types, 11, "left_camera_optical_frame", image))
    assert (back.height, back.width, back.encoding, back.step, back.is_bigendian) == (7, 5, "rgb8", 15, 0)
    assert bytes(back.data) == image.tobytes()
    np.testing.assert_array_equal(image_from_message(back), image)


def test_compressed_png_roundtrip_is_lossless(types):
    image = np.random.default_rng(5).integers(0, 256, size=(9, 12, 3), dtype=np.uint8)
    _, back = cdr_roundtrip(types, compressed_image_message(types, 3, "cam", image, fmt="png"))
    assert back.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(image_from_message(back), image)


def test_camera_info_roundtrip(types):
    intr = PinholeIntrinsics(fx=612.5, fy=610.25, cx=319.75, cy=241.5, width=640, height=480)
    _, back = cdr_roundtrip(types, M.camera_info_message(types, 13, "front_camera_optical_frame", intr))
    assert back.distortion_model == "plumb_bob" and list(back.d) == [0.0] * 5
    np.testing.assert_array_equal(back.k, [612.5, 0, 319.75, 0, 610.25, 241.5, 0, 0, 1])
    np.testing.assert_array_equal(back.p, [612.5, 0, 319.75, 0, 0, 610.25, 241.5, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(back.r, np.eye(3).reshape(-1))
    assert M.intrinsics_from_camera_info(back) == intr


def test_camera_info_with_distortion_warns_or_refuses(types):
    intr = PinholeIntrinsics(fx=500, fy=500, cx=320, cy=240, width=640, height=480)
    msg = M.camera_info_message(types, 0, "cam", intr, distortion=[0.1, -0.05, 0, 0, 0.01])
    _, back = cdr_roundtrip(types, msg)
    assert back.distortion_model == "plumb_bob" and M.has_distortion(back)
    with pytest.warns(M.DistortionIgnoredWarning, match="rectified"):
        assert M.intrinsics_from_camera_info(back) == intr
    with pytest.raises(ShapeError, match="distortion"):
        M.intrinsics_from_camera_info(back, on_distortion="error")
    eight = M.camera_info_message(types, 0, "cam", intr, distortion=[0.0] * 7 + [0.001])
    assert eight.distortion_model == "rational_polynomial"


def test_diagnostic_array_roundtrip(types):
    statuses = [
        ("dfmvr: reconstruction", 0, "ok", {"fps": "9.8", "views": 3}),
        ("dfmvr: cameras", 1, "left camera silent", {}, "rig-01"),
    ]
    _, back = cdr_roundtrip(types, M.diagnostic_array(types, 77, statuses))
    assert M.stamp_to_ns(back.header.stamp) == 77
    got = [(s.name, int(s.level), s.message, s.hardware_id, {kv.key: kv.value for kv in s.values}) for s in back.status]
    assert got == [
        ("dfmvr: reconstruction", 0, "ok", "", {"fps": "9.8", "views": "3"}),
        ("dfmvr: cameras", 1, "left camera silent", "rig-01", {}),
    ]


def test_both_distros_give_the_same_bytes():
    humble, jazzy = M.rosbags_types("humble"), M.rosbags_types("jazzy")
    vertices = np.random.default_rng(6).normal(size=(4, 3)) * 0.05
    faces = np.array([[0, 1, 2], [0, 2, 3]])

    def build(types):
        return [
            M.pose_stamped(types, 1, "rig", _transform(7)),
            M.point_cloud_xyz(types, 1, "rig", vertices),
            M.triangle_marker(types, 1, "rig", vertices, faces),
            M.coefficients_array(types, {"identity": np.arange(3.0), "pose": np.ones((3, 6))}),
        ]

    for a, b in zip(build(humble), build(jazzy), strict=True):
        assert cdr_roundtrip(humble, a)[0] == cdr_roundtrip(jazzy, b)[0]
