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

"""What the node publishes for one reconstruction, as ``(topic, msgtype, message)`` triples (no rclpy).

The node (with :func:`dfmvr_ros.messages.rclpy_types`) publishes these triples and the ROS-free replay (with
:func:`dfmvr_ros.messages.rosbags_types`) writes them into the output bag, so the bag holds what the node would
have published, topic for topic and field for field.

Frames (REP-103, metres): the reconstructor gives the head pose ``T_rig_from_model`` and the vertices in the rig
frame, the reference camera's optical frame (``config.reference_frame``). With ``frames.target_frame`` set the
caller passes ``T_target_from_reference`` (the node looks it up in tf2 at the set's stamp) and every geometric output
is re-expressed in the target frame (``config.output_frame``). Every header carries the synchronized stamp.

=================  ======================================  ======================================================
output             message                                 content
=================  ======================================  ======================================================
head pose          ``geometry_msgs/PoseStamped``           ``T_out_from_model``: the face frame in the output frame
TF                 ``tf2_msgs/TFMessage`` on ``/tf``       ``output frame → frames.face_frame``, same transform
vertices           ``sensor_msgs/PointCloud2``             (N, 3) float32 xyz, metres, output frame; the vertex
                                                           order of the topology
topology           ``shape_msgs/Mesh`` (latched)           triangles + the mean face (model frame), once
marker             ``visualization_msgs/Marker``           TRIANGLE_LIST in the output frame (only on demand)
coefficients       ``std_msgs/Float32MultiArray``          identity | expression | albedo | lighting (V,27) |
                                                           pose (V,6), labelled (:mod:`dfmvr_ros.msg_coefficients`)
overlay            ``sensor_msgs/Image`` rgb8              mesh over each view, side by side (only on demand)
diagnostics        ``diagnostic_msgs/DiagnosticArray``     rate, latency, drops, valid views, backend
=================  ======================================  ======================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import cv2
import numpy as np

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_ros.messages import (
    COEFFICIENT_BLOCKS,
    DIAGNOSTIC_LEVELS,
    MessageTypes,
    coefficients_array,
    diagnostic_array,
    image_message,
    mesh_topology,
    point_cloud_xyz,
    pose_stamped,
    tf_message,
    transform_stamped,
    triangle_marker,
)
from dfmvr_ros.monitor import DiagnosticsSnapshot
from dfmvr_ros.node_config import NodeConfig

__all__ = [
    "MSGTYPES",
    "Output",
    "build_outputs",
    "diagnostics_message",
    "overlay_image",
    "topology_message",
]

MSGTYPES = {
    "head_pose": "geometry_msgs/msg/PoseStamped",
    "tf": "tf2_msgs/msg/TFMessage",
    "vertices": "sensor_msgs/msg/PointCloud2",
    "topology": "shape_msgs/msg/Mesh",
    "marker": "visualization_msgs/msg/Marker",
    "coefficients": "std_msgs/msg/Float32MultiArray",
    "overlay": "sensor_msgs/msg/Image",
    "diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}
"""Message type of each output (keys are the fields of :class:`~dfmvr_ros.node_config.OutputTopics`)."""

MARKER_NAMESPACE = "dfmvr_face"
DIAGNOSTIC_PREFIX = "dfmvr"


class Output(NamedTuple):
    """One message to publish: the absolute topic, the full type name (``"geometry_msgs/msg/PoseStamped"``) and
    the message built by the types provider."""

    topic: str
    msgtype: str
    message: Any


def _output(config: NodeConfig, key: str, message: Any) -> Output:
    return Output(getattr(config.topics, key), MSGTYPES[key], message)


def _rigid_or_identity(T: np.ndarray | None, name: str) -> np.ndarray:
    if T is None:
        return np.eye(4)
    arr = np.asarray(T, dtype=np.float64)
    if arr.shape != (4, 4) or not np.all(np.isfinite(arr)):
        raise ShapeError(f"{name}: expected a finite (4, 4) transform, got shape {arr.shape}")
    return arr


def build_outputs(
    types: MessageTypes,
    reconstruction: Any,
    stamp_ns: int,
    config: NodeConfig,
    *,
    with_marker: bool = False,
    with_overlay: bool = False,
    overlay_images: Sequence[np.ndarray | None] | None = None,
    faces: np.ndarray | None = None,
    T_target_from_reference: np.ndarray | None = None,
) -> list[Output]:
    """The messages for one reconstruction, in publishing order (pose, TF, vertices, coefficients, marker, overlay).

    Args:
        types: message classes (:func:`~dfmvr_ros.messages.rclpy_types` or
            :func:`~dfmvr_ros.messages.rosbags_types`).
        reconstruction: a :class:`~dfmvr_core.inference.reconstructor.Reconstruction`; when ``ok`` is False only the
            overlay (showing why each view is invalid) is built.
        stamp_ns: the synchronized set's stamp, integer ns; every header carries it.
        config: which outputs (``publish.*``), their topics and frames.
        with_marker: build the marker (the node passes "someone subscribes and the rate limit allows").
        with_overlay: build the overlay (same rule); needs ``overlay_images``.
        overlay_images: per camera in ``reconstruction.camera_names`` order, the input ``(H, W, 3)`` uint8 RGB image
            or None.
        faces: ``(F, 3)`` int triangles of the mesh (``FaceReconstructor.faces``); needed by the marker and overlay.
        T_target_from_reference: ``(4, 4)`` float64, the reference frame in ``frames.target_frame``; required when
            a target frame is configured, refused otherwise.

    Raises:
        ConfigError: a target frame without its transform (or a transform without a target frame), marker or
            overlay requested without ``faces``/``overlay_images``.
        ShapeError: malformed reconstruction fields (from the message constructors).
    """
    publish = config.publish
    if config.frames.target_frame and T_target_from_reference is None:
        raise ConfigError(
            f"frames.target_frame: {config.frames.target_frame!r} is set but no T_target_from_reference was given"
        )
    if not config.frames.target_frame and T_target_from_reference is not None:
        raise ConfigError("frames.target_frame: empty, but a T_target_from_reference was given")
    want_marker = with_marker and publish.marker
    want_overlay = with_overlay and publish.overlay
    if (want_marker or want_overlay) and faces is None:
        raise ConfigError("faces: the marker and the overlay need the mesh triangles (FaceReconstructor.faces)")
    if want_overlay and overlay_images is None:
        raise ConfigError("overlay_images: the overlay needs the input images")

    out: list[Output] = []
    frame = config.output_frame
    if reconstruction.ok:
        T_out_from_ref = _rigid_or_identity(T_target_from_reference, "T_target_from_reference")
        T_out_from_model = T_out_from_ref @ np.asarray(reconstruction.T_rig_from_model, dtype=np.float64)
        vertices_ref = np.asarray(reconstruction.vertices_rig, dtype=np.float64)
        vertices = vertices_ref @ T_out_from_ref[:3, :3].T + T_out_from_ref[:3, 3]
        if publish.head_pose:
            out.append(_output(config, "head_pose", pose_stamped(types, stamp_ns, frame, T_out_from_model)))
        if publish.tf:
            transform = transform_stamped(types, stamp_ns, frame, config.frames.face_frame, T_out_from_model)
            out.append(_output(config, "tf", tf_message(types, [transform])))
        if publish.vertices:
            out.append(_output(config, "vertices", point_cloud_xyz(types, stamp_ns, frame, vertices)))
        if publish.coefficients:
            out.append(_output(config, "coefficients", coefficients_message(types, reconstruction.coefficients)))
        if want_marker:
            marker = triangle_marker(
                types,
                stamp_ns,
                frame,
                vertices,
                faces,
                ns=MARKER_NAMESPACE,
                marker_id=0,
                color=publish.marker_color,
                lifetime_s=publish.marker_lifetime_s,
            )
            out.append(_output(config, "marker", marker))
    if want_overlay:
        picture = overlay_image(reconstruction, overlay_images, faces, scale=publish.overlay_scale)
        frame_id = config.camera(config.reference_camera).frame_id
        out.append(_output(config, "overlay", image_message(types, stamp_ns, frame_id, picture, "rgb8")))
    return out


def coefficients_message(types: MessageTypes, coefficients: Mapping[str, np.ndarray]) -> Any:
    """``std_msgs/Float32MultiArray`` of the reconstruction's coefficient blocks in
    :data:`~dfmvr_ros.messages.COEFFICIENT_BLOCKS` order (blocks the model does not have are left out).

    Raises:
        ShapeError: a block name outside :data:`~dfmvr_ros.messages.COEFFICIENT_BLOCKS`, or no block.
    """
    unknown = sorted(set(coefficients) - set(COEFFICIENT_BLOCKS))
    if unknown:
        raise ShapeError(f"coefficients: unknown block {unknown[0]!r}; expected blocks of {list(COEFFICIENT_BLOCKS)}")
    blocks = {name: np.asarray(coefficients[name]) for name in COEFFICIENT_BLOCKS if name in coefficients}
    return coefficients_array(types, blocks)


def topology_message(types: MessageTypes, config: NodeConfig, faces: np.ndarray, vertices: np.ndarray) -> Output:
    """The latched ``~/mesh/topology`` output: ``faces`` ((F, 3) int) and ``vertices`` ((N, 3) float metres,
    the mean face in the model frame) as ``shape_msgs/Mesh``. Publish it once, with transient-local QoS."""
    return _output(config, "topology", mesh_topology(types, faces, vertices))


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return np.ascontiguousarray(image)
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _scaled_K(intrinsics: Any, sx: float, sy: float) -> np.ndarray:
    """Camera matrix of an image resized by (sx, sy), with integer pixel coordinates at pixel centres."""
    return np.array(
        [
            [intrinsics.fx * sx, 0.0, (intrinsics.cx + 0.5) * sx - 0.5],
            [0.0, intrinsics.fy * sy, (intrinsics.cy + 0.5) * sy - 0.5],
            [0.0, 0.0, 1.0],
        ]
    )


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(image.copy())
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 80, 80), 2, cv2.LINE_AA)
    return out


def overlay_image(
    reconstruction: Any,
    images: Sequence[np.ndarray | None],
    faces: np.ndarray | None,
    *,
    scale: float = 0.5,
) -> np.ndarray:
    """The debug picture: each camera's image scaled by ``scale``, the mesh drawn over the valid views
    (:func:`dfmvr_core.inference.overlay.draw_overlay`), the reason written on the invalid ones, side by side.

    Args:
        reconstruction: needs ``camera_names``, ``valid``, ``reasons``, ``ok``, ``vertices_camera`` (V, N, 3),
            ``landmarks_2d`` (V, 68, 2) and ``intrinsics`` (per view, with fx, fy, cx, cy).
        images: per view ``(H, W, 3)`` uint8 RGB or None (a black panel the size of the others).
        faces: ``(F, 3)`` int triangles (may be None when nothing is valid).
        scale: in (0, 1].

    Returns:
        ``(H', W', 3)`` uint8 RGB.

    Raises:
        ShapeError: ``images`` does not have one entry per camera, or an image is not (H, W, 3) uint8.
    """
    from dfmvr_core.inference.overlay import draw_overlay, side_by_side

    names = tuple(reconstruction.camera_names)
    if len(images) != len(names):
        raise ShapeError(f"overlay_images: expected {len(names)} images ({', '.join(names)}), got {len(images)}")
    for name, image in zip(names, images, strict=True):
        if image is not None and (
            not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8
        ):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ShapeError(f"overlay_images[{name!r}]: expected (H, W, 3) uint8 RGB, got {got}")
    present = [img for img in images if img is not None]
    if present:
        blank_shape = _scaled(present[0], scale).shape
    else:
        blank_shape = (max(1, round(480 * scale)), max(1, round(640 * scale)), 3)
    intrinsics = getattr(reconstruction, "intrinsics", None)
    panels = []
    for i, (name, image) in enumerate(zip(names, images, strict=True)):
        reason = reconstruction.reasons[i] if reconstruction.reasons[i] else "invalid"
        if image is None:
            panels.append(_label(np.zeros(blank_shape, np.uint8), f"{name}: {reason}"))
            continue
        small = _scaled(image, scale)
        if not (reconstruction.ok and bool(reconstruction.valid[i])) or faces is None or intrinsics is None:
            panels.append(_label(small, f"{name}: {reason}"))
            continue
        sy, sx = small.shape[0] / image.shape[0], small.shape[1] / image.shape[1]
        K = _scaled_K(intrinsics[i], sx, sy)
        landmarks = None
        if reconstruction.landmarks_2d is not None:
            landmarks = (np.asarray(reconstruction.landmarks_2d[i], dtype=np.float64) + 0.5) * (sx, sy) - 0.5
        panels.append(
            draw_overlay(small, reconstruction.vertices_camera[i], faces, K, landmarks_2d=landmarks, label=name)
        )
    return side_by_side(panels)


def _level(snapshot: DiagnosticsSnapshot, n_cameras: int, stale_after_s: float) -> tuple[int, str]:
    if not snapshot.backend:
        return DIAGNOSTIC_LEVELS["ERROR"], f"no reconstructor loaded (state {snapshot.state})"
    if snapshot.failures_in_window:
        return DIAGNOSTIC_LEVELS["ERROR"], f"{snapshot.failures_in_window} failed set(s): {snapshot.last_failure}"
    if snapshot.state == "active" and (
        snapshot.seconds_since_output is None or snapshot.seconds_since_output > stale_after_s
    ):
        return DIAGNOSTIC_LEVELS["STALE"], "no synchronized set processed recently"
    if snapshot.seconds_since_output is not None and not snapshot.last_valid_views:
        return DIAGNOSTIC_LEVELS["WARN"], "no face in the last set"
    if snapshot.last_valid_views and len(snapshot.last_valid_views) < n_cameras:
        return DIAGNOSTIC_LEVELS["WARN"], f"{len(snapshot.last_valid_views)}/{n_cameras} views valid"
    return DIAGNOSTIC_LEVELS["OK"], f"{snapshot.rate_hz:.1f} Hz"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def diagnostics_message(
    types: MessageTypes,
    stamp_ns: int,
    config: NodeConfig,
    snapshot: DiagnosticsSnapshot,
    *,
    node_name: str = DIAGNOSTIC_PREFIX,
) -> Output:
    """``/diagnostics``: two statuses, ``<node_name>: reconstruction`` (rate, latency, processing time, valid views,
    backend, failures, worker's skipped sets, the last set's pose source and face-size factor) and
    ``<node_name>: synchronizer`` (sets, partial sets, drops per camera and reason, largest skew).

    Levels: ERROR with no reconstructor or failures in the window; STALE when active but nothing was processed for
    3 diagnostic periods (at least 2 s); WARN when the last set had no face or not every view; OK otherwise. The
    synchronizer is WARN when frames were dropped or partial sets emitted.
    """
    n_cameras = len(config.camera_names)
    stale_after = max(2.0, 3 * config.publish.diagnostics_period_s)
    level, message = _level(snapshot, n_cameras, stale_after)
    values: dict[str, Any] = {
        "state": snapshot.state,
        "backend": snapshot.backend or "none",
        "rate_hz": f"{snapshot.rate_hz:.2f}",
        "window_s": f"{snapshot.window_s:g}",
        "latency_ms_mean": _fmt(snapshot.latency_ms_mean),
        "latency_ms_max": _fmt(snapshot.latency_ms_max),
        "processing_ms_mean": _fmt(snapshot.processing_ms_mean),
        "valid_views": ",".join(snapshot.last_valid_views) or "none",
        "valid_view_count": f"{len(snapshot.last_valid_views)}/{n_cameras}",
        "sets_processed": snapshot.sets_processed,
        "sets_without_face": snapshot.sets_without_face,
        "failures": snapshot.failures,
        "seconds_since_output": _fmt(snapshot.seconds_since_output, 2),
    }
    if snapshot.last_pose_source:
        values["pose_source"] = snapshot.last_pose_source
        values["metric_scale"] = _fmt(snapshot.last_metric_scale, 4)
    for camera, reason in snapshot.last_reasons.items():
        values[f"invalid.{camera}"] = reason
    if snapshot.worker is not None:
        values["sets_skipped_busy"] = snapshot.worker.skipped
        values["sets_submitted"] = snapshot.worker.submitted
    values.update(snapshot.extra)
    statuses = [(f"{node_name}: reconstruction", level, message, values, "dfmvr")]
    if snapshot.sync is not None:
        sync = snapshot.sync
        sync_values: dict[str, Any] = {
            "complete_sets": sync.complete_sets,
            "partial_sets": sync.partial_sets,
            "dropped_frames": sync.dropped,
            "max_skew_ms": f"{sync.max_skew_ns / 1e6:.2f}",
        }
        for camera in config.camera_names:
            drops = sync.drops.get(camera)
            sync_values[f"received.{camera}"] = sync.received.get(camera, 0)
            sync_values[f"missing_in_partial.{camera}"] = sync.missing.get(camera, 0)
            if drops is not None:
                for reason in ("overflow", "stale", "unmatched", "duplicate"):
                    sync_values[f"dropped.{camera}.{reason}"] = getattr(drops, reason)
        sync_level = DIAGNOSTIC_LEVELS["WARN"] if (sync.dropped or sync.partial_sets) else DIAGNOSTIC_LEVELS["OK"]
        sync_message = f"{sync.sets_emitted} sets, {sync.partial_sets} partial, {sync.dropped} frames dropped"
        statuses.append((f"{node_name}: synchronizer", sync_level, sync_message, sync_values, "dfmvr"))
    return _output(config, "diagnostics", diagnostic_array(types, stamp_ns, statuses))
