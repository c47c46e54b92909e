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

"""Ground-truth topics of synthetic bags: what ``dfmvr make-bag`` writes and ``dfmvr replay`` evaluates against.

* ``/ground_truth/head_pose`` (``geometry_msgs/PoseStamped``): ``T_rig_from_model``, the face (model frame) in the
  rig frame (the reference camera's optical frame), metres; stamp = the capture instant.
* ``/ground_truth/mesh`` (``sensor_msgs/PointCloud2``): (N, 3) float32 vertices in the rig frame, metres, in the
  topology's vertex order; stamp = the capture instant.
* ``/ground_truth/mesh_topology`` (``shape_msgs/Mesh``, latched, once): the triangles and the subject's neutral face
  (model frame).
* ``/ground_truth/landmarks/<camera>`` (``geometry_msgs/PolygonStamped``): the 68 iBUG landmarks in that camera's
  image: ``x, y`` = pixel (OpenCV convention: integer coordinates are pixel centres), ``z`` = 1 visible / 0 hidden;
  the header is the image's (same stamp and frame), so a landmark set pairs with its image by stamp.

``PolygonStamped`` is used for the landmarks because it is a standard message (every ROS 2 tool can show it) and its
``Point32`` points hold exactly a pixel position plus one flag.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dfmvr_core.errors import ShapeError
from dfmvr_ros.message_types import MessageTypes, build
from dfmvr_ros.msg_common import as_float_array, header

__all__ = [
    "GT_HEAD_POSE_TOPIC",
    "GT_LANDMARKS_PREFIX",
    "GT_MESH_TOPIC",
    "GT_TOPOLOGY_TOPIC",
    "LANDMARKS_MSGTYPE",
    "landmarks_from_message",
    "landmarks_message",
    "landmarks_topic",
]

GT_HEAD_POSE_TOPIC = "/ground_truth/head_pose"
GT_MESH_TOPIC = "/ground_truth/mesh"
GT_TOPOLOGY_TOPIC = "/ground_truth/mesh_topology"
GT_LANDMARKS_PREFIX = "/ground_truth/landmarks"
LANDMARKS_MSGTYPE = "geometry_msgs/msg/PolygonStamped"
NUM_LANDMARKS = 68


def landmarks_topic(camera: str, prefix: str = GT_LANDMARKS_PREFIX) -> str:
    """``<prefix>/<camera>``, e.g. ``/ground_truth/landmarks/left``."""
    return f"{prefix.rstrip('/')}/{camera}"


def landmarks_message(
    types: MessageTypes, stamp_ns: int, frame_id: str, points: np.ndarray, visible: np.ndarray | None = None
) -> Any:
    """``geometry_msgs/PolygonStamped`` of 68 image landmarks.

    Args:
        types: message classes (``rosbags_types(distro)`` or ``rclpy_types()``).
        stamp_ns: the image's header stamp, integer ns.
        frame_id: the image's optical frame.
        points: ``(68, 2)`` float pixels ``(u, v)``.
        visible: ``(68,)`` bool (None = all visible), stored as ``z`` = 1.0 / 0.0.

    Raises:
        ShapeError: wrong shapes or non-finite points.
    """
    pts = as_float_array("points", points, (NUM_LANDMARKS, 2))
    flags = np.ones(NUM_LANDMARKS) if visible is None else np.asarray(visible, dtype=bool).astype(np.float64)
    if flags.shape != (NUM_LANDMARKS,):
        raise ShapeError(f"visible: expected shape ({NUM_LANDMARKS},), got {flags.shape}")
    point_cls = types("geometry_msgs/msg/Point32")
    polygon = build(
        types,
        "geometry_msgs/msg/Polygon",
        points=[point_cls(x=float(u), y=float(v), z=float(f)) for (u, v), f in zip(pts, flags, strict=True)],
    )
    return build(types, LANDMARKS_MSGTYPE, header=header(types, stamp_ns, frame_id), polygon=polygon)


def landmarks_from_message(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`landmarks_message`: ``((68, 2) float32 pixels, (68,) bool visible)``.

    Raises:
        ShapeError: not 68 points, or non-finite coordinates.
    """
    points = list(msg.polygon.points)
    if len(points) != NUM_LANDMARKS:
        raise ShapeError(f"PolygonStamped landmarks: expected {NUM_LANDMARKS} points, got {len(points)}")
    arr = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ShapeError("PolygonStamped landmarks: non-finite coordinates")
    return arr[:, :2].astype(np.float32), arr[:, 2] > 0.5
