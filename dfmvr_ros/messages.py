"""ROS message construction for dfmvr, identical for the rclpy node and the ROS-free replay.

Every constructor takes a *types provider* first and passes all fields of every message as keywords, so the
same code builds rclpy messages on a ROS 2 machine (:func:`rclpy_types`) and ``rosbags`` dataclasses anywhere
(:func:`rosbags_types` ``("humble" | "jazzy")``). Both serialize to the same CDR bytes (tested where rclpy
exists). Importing this module never imports rclpy.

=========================  ==================================  ==================================================
function                   message                             content
=========================  ==================================  ==================================================
``header``                 ``std_msgs/Header``                 stamp from integer ns (``ns_to_stamp``), frame
``pose_stamped``           ``geometry_msgs/PoseStamped``       4×4 rigid ``T`` (metres) → position + quaternion
                                                               (x, y, z, w), w ≥ 0
``transform_stamped``      ``geometry_msgs/TransformStamped``  ``p_parent = T @ p_child``
``tf_message``             ``tf2_msgs/TFMessage``              list of TransformStamped
``point_cloud_xyz``        ``sensor_msgs/PointCloud2``         (N, 3) float32 x/y/z, byte-identical to
                                                               ``sensor_msgs_py.point_cloud2.create_cloud_xyz32``
``mesh_topology``          ``shape_msgs/Mesh``                 vertices (metres) + triangles (latched topic)
``triangle_marker``        ``visualization_msgs/Marker``       TRIANGLE_LIST, points = ``vertices[faces]``
``coefficients_array``     ``std_msgs/Float32MultiArray``      one labelled dimension per coefficient block
                                                               (see :mod:`dfmvr_ros.msg_coefficients`)
``image_message``          ``sensor_msgs/Image``               as ``cv_bridge.cv2_to_imgmsg`` (step W·C·itemsize)
``camera_info_message``    ``sensor_msgs/CameraInfo``          K, R = I, P = [K | 0], plumb_bob zeros by default
``diagnostic_array``       ``diagnostic_msgs/DiagnosticArray`` (name, level, message, values) statuses
=========================  ==================================  ==================================================

Inverses for replay evaluation and tests: :func:`stamp_to_ns`, :func:`matrix_from_pose`,
:func:`matrix_from_transform`, :func:`points_from_cloud`, :func:`mesh_from_topology`,
:func:`coefficients_from_array`, :func:`intrinsics_from_camera_info`, and
:func:`dfmvr_ros.image_codec.image_from_message` for images.

Bad input (wrong shapes, NaN, a non-rigid transform, a negative stamp, an encoding that does not match the
array) raises :class:`~dfmvr_core.errors.ShapeError` (or ``ImageEncodingError``, a ShapeError) naming the
argument; a message class that rejects the fields raises :class:`~dfmvr_core.errors.ConfigError`.
"""

from __future__ import annotations

from dfmvr_ros.image_encodings import ImageEncodingError
from dfmvr_ros.message_types import MessageTypes, RclpyTypes, RosbagsTypes, build, rclpy_types, rosbags_types
from dfmvr_ros.msg_camera import (
    DistortionIgnoredWarning,
    camera_info_message,
    has_distortion,
    image_message,
    intrinsics_from_camera_info,
)
from dfmvr_ros.msg_coefficients import COEFFICIENT_BLOCKS, coefficients_array, coefficients_from_array
from dfmvr_ros.msg_common import MAX_STAMP_NS, header, ns_to_stamp, stamp_to_ns
from dfmvr_ros.msg_diagnostics import DIAGNOSTIC_LEVELS, diagnostic_array
from dfmvr_ros.msg_geometry import (
    matrix_from_pose,
    matrix_from_transform,
    mesh_from_topology,
    mesh_topology,
    point_cloud_xyz,
    points_from_cloud,
    pose_stamped,
    tf_message,
    transform_stamped,
    triangle_marker,
)

__all__ = [
    "COEFFICIENT_BLOCKS",
    "DIAGNOSTIC_LEVELS",
    "MAX_STAMP_NS",
    "DistortionIgnoredWarning",
    "ImageEncodingError",
    "MessageTypes",
    "RclpyTypes",
    "RosbagsTypes",
    "build",
    "camera_info_message",
    "coefficients_array",
    "coefficients_from_array",
    "diagnostic_array",
    "has_distortion",
    "header",
    "image_message",
    "intrinsics_from_camera_info",
    "matrix_from_pose",
    "matrix_from_transform",
    "mesh_from_topology",
    "mesh_topology",
    "ns_to_stamp",
    "point_cloud_xyz",
    "points_from_cloud",
    "pose_stamped",
    "rclpy_types",
    "rosbags_types",
    "stamp_to_ns",
    "tf_message",
    "transform_stamped",
    "triangle_marker",
]
