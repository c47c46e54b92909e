"""Geometry messages: poses, transforms, the face point cloud, the mesh topology and the RViz triangle marker.

Units are metres (REP-103); rotations go in as 3×3 blocks of 4×4 rigid transforms and out as ROS quaternions
``(x, y, z, w)`` with ``w >= 0``. A transform ``T`` given with a parent and a child frame maps points from the
child frame into the parent frame (``p_parent = T @ p_child``), which is what ``geometry_msgs/TransformStamped``
and ``PoseStamped`` (pose of the child in ``header.frame_id``) mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry.rotations import check_rotation_matrix, matrix_to_quaternion, quaternion_to_matrix
from dfmvr_ros.message_types import MessageTypes, build
from dfmvr_ros.msg_common import as_float_array, check_frame_id, field_bytes, header, ns_to_duration

__all__ = [
    "POINT_FIELD_FLOAT32",
    "matrix_from_pose",
    "matrix_from_transform",
    "mesh_from_topology",
    "mesh_topology",
    "point_cloud_xyz",
    "points_from_cloud",
    "pose_stamped",
    "tf_message",
    "transform_stamped",
    "triangle_marker",
]

POINT_FIELD_FLOAT32 = 7
"""``sensor_msgs/PointField.FLOAT32``."""
_POINT_FIELD_FLOAT64 = 8
_MARKER_TRIANGLE_LIST = 11
_MARKER_ADD = 0


def _rigid(name: str, T: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (4, 4) rigid transform; return its unit quaternion (x, y, z, w) and translation (metres)."""
    T = as_float_array(name, T, (4, 4))
    if np.abs(T[3] - (0.0, 0.0, 0.0, 1.0)).max() > 1e-9:
        raise ShapeError(f"{name}: expected a rigid transform with last row (0, 0, 0, 1), got {T[3].tolist()}")
    R = torch.from_numpy(T[:3, :3].copy())
    check_rotation_matrix(f"{name}[:3, :3]", R)
    return matrix_to_quaternion(R).numpy(), T[:3, 3].copy()


def _quaternion(types: MessageTypes, q: np.ndarray) -> Any:
    x, y, z, w = (float(v) for v in q)
    return build(types, "geometry_msgs/msg/Quaternion", x=x, y=y, z=z, w=w)


def _point(types: MessageTypes, p: Sequence[float]) -> Any:
    return build(types, "geometry_msgs/msg/Point", x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _points(types: MessageTypes, points: np.ndarray) -> list[Any]:
    """(N, 3) → list of ``geometry_msgs/Point`` (the class looked up once: this runs per vertex)."""
    point_cls = types("geometry_msgs/msg/Point")
    return [point_cls(x=x, y=y, z=z) for x, y, z in np.asarray(points, dtype=np.float64).reshape(-1, 3).tolist()]


def _vector3(types: MessageTypes, v: Sequence[float]) -> Any:
    return build(types, "geometry_msgs/msg/Vector3", x=float(v[0]), y=float(v[1]), z=float(v[2]))


def pose_stamped(types: MessageTypes, stamp_ns: int, frame_id: str, T: np.ndarray) -> Any:
    """``geometry_msgs/PoseStamped``: the pose ``T`` ((4, 4) rigid, metres) of an object in ``frame_id``.

    Raises:
        ShapeError: ``T`` not a finite rigid transform (rotation block checked to 1e-4), bad stamp or frame.
    """
    q, t = _rigid("T", T)
    pose = build(types, "geometry_msgs/msg/Pose", position=_point(types, t), orientation=_quaternion(types, q))
    return build(
        types,
        "geometry_msgs/msg/PoseStamped",
        header=header(types, stamp_ns, check_frame_id("frame_id", frame_id)),
        pose=pose,
    )


def transform_stamped(types: MessageTypes, stamp_ns: int, parent_frame: str, child_frame: str, T: np.ndarray) -> Any:
    """``geometry_msgs/TransformStamped`` ``parent_frame ← child_frame``: ``p_parent = T @ p_child`` (metres)."""
    parent = check_frame_id("parent_frame", parent_frame)
    child = check_frame_id("child_frame", child_frame)
    if parent == child:
        raise ShapeError(f"transform_stamped: parent and child frame are both {parent!r}; expected two frames")
    q, t = _rigid("T", T)
    transform = build(
        types, "geometry_msgs/msg/Transform", translation=_vector3(types, t), rotation=_quaternion(types, q)
    )
    return build(
        types,
        "geometry_msgs/msg/TransformStamped",
        header=header(types, stamp_ns, parent),
        child_frame_id=child,
        transform=transform,
    )


def tf_message(types: MessageTypes, transforms: Sequence[Any]) -> Any:
    """``tf2_msgs/TFMessage`` holding ``transforms`` (``TransformStamped`` messages, e.g. from
    :func:`transform_stamped`), published on ``/tf`` or ``/tf_static``."""
    return build(types, "tf2_msgs/msg/TFMessage", transforms=list(transforms))


def _quat_matrix(q: Any) -> np.ndarray:
    quat = torch.tensor((q.x, q.y, q.z, q.w), dtype=torch.float64)
    return quaternion_to_matrix(quat).numpy()


def matrix_from_pose(msg: Any) -> np.ndarray:
    """``geometry_msgs/Pose`` or ``PoseStamped`` → (4, 4) float64 transform (inverse of :func:`pose_stamped`)."""
    pose = msg.pose if hasattr(msg, "pose") else msg
    T = np.eye(4)
    T[:3, :3] = _quat_matrix(pose.orientation)
    T[:3, 3] = (pose.position.x, pose.position.y, pose.position.z)
    return T


def matrix_from_transform(msg: Any) -> np.ndarray:
    """``geometry_msgs/Transform`` or ``TransformStamped`` → (4, 4) float64 ``T`` with ``p_parent = T @ p_child``."""
    transform = msg.transform if hasattr(msg, "transform") else msg
    T = np.eye(4)
    T[:3, :3] = _quat_matrix(transform.rotation)
    T[:3, 3] = (transform.translation.x, transform.translation.y, transform.translation.z)
    return T


def point_cloud_xyz(types: MessageTypes, stamp_ns: int, frame_id: str, points: np.ndarray) -> Any:
    """``sensor_msgs/PointCloud2`` of ``points`` ((N, 3) float, metres, in ``frame_id``), stored as float32.

    Byte for byte what ``sensor_msgs_py.point_cloud2.create_cloud_xyz32`` produces on a little-endian host:
    fields ``x, y, z`` FLOAT32 (count 1) at offsets 0/4/8, ``point_step`` 12, ``row_step`` 12·N,
    ``height`` 1, ``width`` N, ``is_bigendian`` False, ``is_dense`` False (as create_cloud sets it), data the
    little-endian float32 triplets in point order.

    Raises:
        ShapeError: not (N, 3) or non-finite values.
    """
    pts = as_float_array("points", points, (None, 3), dtype=np.dtype("<f4"))
    fields = [
        build(types, "sensor_msgs/msg/PointField", name=name, offset=offset, datatype=POINT_FIELD_FLOAT32, count=1)
        for name, offset in (("x", 0), ("y", 4), ("z", 8))
    ]
    n = pts.shape[0]
    return build(
        types,
        "sensor_msgs/msg/PointCloud2",
        header=header(types, stamp_ns, check_frame_id("frame_id", frame_id)),
        height=1,
        width=n,
        fields=fields,
        is_bigendian=False,
        point_step=12,
        row_step=12 * n,
        data=types.uint8_array(pts),
        is_dense=False,
    )


def points_from_cloud(msg: Any) -> np.ndarray:
    """``sensor_msgs/PointCloud2`` → (H·W, 3) float32 ``x, y, z`` (inverse of :func:`point_cloud_xyz`).

    Reads any cloud whose ``x``, ``y``, ``z`` fields are FLOAT32 or FLOAT64, at any offsets, with any
    ``point_step``/``row_step`` padding and either byte order; other fields are skipped. Organised clouds
    (``height > 1``) come back flattened row by row.

    Raises:
        ShapeError: a missing or non-float x/y/z field, or steps and data size that disagree.
    """
    fields = {f.name: f for f in msg.fields}
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    endian = ">" if msg.is_bigendian else "<"
    formats, offsets = [], []
    for axis in "xyz":
        field = fields.get(axis)
        if field is None:
            raise ShapeError(f"PointCloud2: no {axis!r} field; fields are {sorted(fields)}")
        if int(field.datatype) not in (POINT_FIELD_FLOAT32, _POINT_FIELD_FLOAT64):
            raise ShapeError(f"PointCloud2: field {axis!r} has datatype {field.datatype}; expected FLOAT32 or FLOAT64")
        size = 4 if int(field.datatype) == POINT_FIELD_FLOAT32 else 8
        if int(field.offset) + size > point_step:
            raise ShapeError(
                f"PointCloud2: field {axis!r} (offset {field.offset}, {size} bytes) exceeds point_step {point_step}"
            )
        formats.append(f"{endian}f{size}")
        offsets.append(int(field.offset))
    data = field_bytes(msg.data)
    if height * width == 0:
        return np.zeros((0, 3), np.float32)
    if row_step < width * point_step:
        raise ShapeError(f"PointCloud2: row_step {row_step} < width {width} × point_step {point_step}")
    if data.size != row_step * height:
        raise ShapeError(
            f"PointCloud2: data has {data.size} bytes; expected row_step {row_step} × height {height} = "
            f"{row_step * height}"
        )
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": formats, "offsets": offsets, "itemsize": point_step})
    rows = np.ascontiguousarray(data.reshape(height, row_step)[:, : width * point_step])
    cloud = rows.view(dtype).reshape(-1)
    return np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1).astype(np.float32)


def _faces(faces: Any, n_vertices: int) -> np.ndarray:
    arr = np.asarray(faces)
    if arr.dtype.kind not in "iu":
        raise ShapeError(f"faces: expected integer vertex indices, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ShapeError(f"faces: expected shape (F, 3), got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_vertices):
        raise ShapeError(
            f"faces: indices must lie in [0, {n_vertices}) for {n_vertices} vertices, got [{arr.min()}, {arr.max()}]"
        )
    return arr.astype(np.int64)


def mesh_topology(types: MessageTypes, faces: np.ndarray, vertices: np.ndarray) -> Any:
    """``shape_msgs/Mesh``: ``vertices`` ((N, 3) float, metres) and triangles ``faces`` ((F, 3) int, indices
    into ``vertices``, counter-clockwise seen from outside). Published once on a latched topic so that
    subscribers of the per-frame point cloud (same vertex order) can rebuild the surface.

    Raises:
        ShapeError: wrong shapes, non-finite vertices, or indices out of range.
    """
    verts = as_float_array("vertices", vertices, (None, 3))
    tris = _faces(faces, verts.shape[0]).astype(np.uint32)
    triangle_cls = types("shape_msgs/msg/MeshTriangle")
    return build(
        types,
        "shape_msgs/msg/Mesh",
        triangles=[triangle_cls(vertex_indices=tri) for tri in tris],
        vertices=_points(types, verts),
    )


def mesh_from_topology(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """``shape_msgs/Mesh`` → ``(faces (F, 3) int64, vertices (N, 3) float64 metres)``."""
    faces = np.array([list(t.vertex_indices) for t in msg.triangles], dtype=np.int64).reshape(-1, 3)
    vertices = np.array([(p.x, p.y, p.z) for p in msg.vertices], dtype=np.float64).reshape(-1, 3)
    return faces, vertices


def triangle_marker(
    types: MessageTypes,
    stamp_ns: int,
    frame_id: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    ns: str = "dfmvr",
    marker_id: int = 0,
    color: tuple[float, float, float, float] = (0.8, 0.7, 0.6, 1.0),
    lifetime_s: float = 0.5,
) -> Any:
    """``visualization_msgs/Marker`` TRIANGLE_LIST of the mesh, for RViz.

    ``points`` are ``vertices[faces].reshape(-1, 3)`` (three consecutive points per triangle, metres, in
    ``frame_id``), identity pose, unit scale, one RGBA ``color`` in [0, 1], action ADD, ``lifetime_s`` so a
    face that is lost disappears. Every other field (texture, mesh file, ...) is left empty.

    Raises:
        ShapeError: bad shapes/indices, a colour outside [0, 1], a negative lifetime.
    """
    verts = as_float_array("vertices", vertices, (None, 3))
    tris = _faces(faces, verts.shape[0])
    rgba = as_float_array("color", color, (4,))
    if rgba.min() < 0.0 or rgba.max() > 1.0:
        raise ShapeError(f"color: expected RGBA values in [0, 1], got {rgba.tolist()}")
    if isinstance(marker_id, bool) or not isinstance(marker_id, (int, np.integer)) or not -(2**31) <= marker_id < 2**31:
        raise ShapeError(f"marker_id: expected an int32, got {marker_id!r}")
    points = _points(types, verts[tris])
    identity = build(
        types,
        "geometry_msgs/msg/Pose",
        position=_point(types, (0.0, 0.0, 0.0)),
        orientation=_quaternion(types, np.array((0.0, 0.0, 0.0, 1.0))),
    )
    empty = types.uint8_array(np.zeros(0, np.uint8))
    return build(
        types,
        "visualization_msgs/msg/Marker",
        header=header(types, stamp_ns, check_frame_id("frame_id", frame_id)),
        ns=str(ns),
        id=int(marker_id),
        type=_MARKER_TRIANGLE_LIST,
        action=_MARKER_ADD,
        pose=identity,
        scale=_vector3(types, (1.0, 1.0, 1.0)),
        color=build(
            types, "std_msgs/msg/ColorRGBA", r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3])
        ),
        lifetime=ns_to_duration(types, lifetime_s, "lifetime_s"),
        frame_locked=False,
        points=points,
        colors=[],
        texture_resource="",
        texture=build(types, "sensor_msgs/msg/CompressedImage", header=header(types, 0, ""), format="", data=empty),
        uv_coordinates=[],
        text="",
        mesh_resource="",
        mesh_file=build(types, "visualization_msgs/msg/MeshFile", filename="", data=empty),
        mesh_use_embedded_materials=False,
    )
