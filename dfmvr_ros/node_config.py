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

"""The node's validated configuration, built from flat ROS parameters or from ``config/dfmvr.yaml`` (no rclpy).

``dfmvr_node`` and the ROS-free ``dfmvr replay`` read the same parameters into the same :class:`NodeConfig`, so
they subscribe to / read the same topics, synchronize the same way, run the same reconstructor and publish /
write the same outputs.

Parameters are flat, dot-separated names as ROS 2 has them (``sync.slop_s``); in a parameter file they may be
nested mappings under ``ros__parameters`` (see ``config/dfmvr.yaml``, the reference of every parameter and its
default). ROS 2 parameters cannot be null, so an *optional* value is switched off with its type's empty value:
``""`` for paths and frame names, ``0`` for ``sync.slop_s`` (= half a period), ``sync.partial_timeout_s``
(= degraded mode off), ``reconstructor.num_threads`` (= library default) and the ``*_rate_hz`` rate limits
(= no limit).

Every invalid value raises :class:`~dfmvr_core.errors.ConfigError` whose message starts with the parameter's full
name, e.g. ``sync.queue_size: expected 1..1000 frames per camera, got 0``; an unknown parameter (a typo) is
refused the same way, so a misspelt setting never silently falls back to its default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError
from dfmvr_core.inference.default_model import DEFAULT_CHECKPOINT
from dfmvr_core.inference.reconstructor_config import ReconstructorConfig
from dfmvr_core.sync import RigSynchronizerConfig

__all__ = [
    "DEFAULT_NODE_NAME",
    "IGNORED_PARAMETERS",
    "CameraSettings",
    "FrameSettings",
    "InputSettings",
    "NodeConfig",
    "OutputTopics",
    "PublishSettings",
    "QosSettings",
    "SyncSettings",
    "default_parameters",
    "flatten_parameters",
    "load_node_config",
    "read_parameter_file",
]

DEFAULT_NODE_NAME = "dfmvr"
DEFAULT_CAMERAS = ("left", "front", "right")

IGNORED_PARAMETERS = ("use_sim_time", "start_type_description_service")
"""Parameters every rclpy node declares itself (plus any ``qos_overrides.*``); not part of :class:`NodeConfig`."""

_NAME_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TOPIC = re.compile(r"^~?/?[A-Za-z_{][A-Za-z0-9_{}]*(/[A-Za-z_{][A-Za-z0-9_{}]*)*$")
_FRAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")

RELIABILITIES = ("best_effort", "reliable", "system_default")
DURABILITIES = ("volatile", "transient_local", "system_default")
IMAGE_TRANSPORTS = ("raw", "compressed")
_CAMERA_KEYS = ("namespace", "frame_id", "image_topic", "info_topic")


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def _check_number(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    if (value <= low if low_open else value < low) or value > high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ConfigError(f"{name}: expected a value in {interval}, got {value!r}")
    return float(value)


def _check_topic(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _TOPIC.match(value):
        raise ConfigError(
            f"{name}: expected a ROS topic name (letters, digits, '_', '/'-separated, no trailing '/'), got {value!r}"
        )
    return value


def _check_frame(name: str, value: Any, *, allow_empty: bool = False) -> str:
    if allow_empty and value == "":
        return value
    if not isinstance(value, str) or not _FRAME.match(value):
        raise ConfigError(
            f"{name}: expected a tf2 frame id (no whitespace, no leading '/'{', or empty' if allow_empty else ''}), "
            f"got {value!r}"
        )
    return value


# ---------------------------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class CameraSettings:
    """One camera of the rig as the node sees it.

    Attributes:
        name: the camera's name in the rig (``left``, ``front``, ``right``); also the parameter namespace
            ``cameras.<name>.*``.
        namespace: topic namespace of the camera driver, e.g. ``/cameras/left``; the node subscribes to
            ``<namespace>/image_raw`` (``image_raw/compressed`` with ``input.image_transport: compressed``) and
            ``<namespace>/camera_info``.
        frame_id: the camera's optical frame (x right, y down, z forward); the reference camera's is the rig
            frame the outputs are expressed in.
        image_topic: overrides the image topic (``""`` = derived from ``namespace``).
        info_topic: overrides the camera-info topic (``""`` = ``<namespace>/camera_info``).
    """

    name: str
    namespace: str
    frame_id: str
    image_topic: str = ""
    info_topic: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_TOKEN.match(self.name):
            raise ConfigError(
                f"cameras.names: camera names must be parameter tokens (a letter, then letters, digits or '_'), "
                f"got {self.name!r}"
            )
        prefix = f"cameras.{self.name}"
        _check_topic(f"{prefix}.namespace", self.namespace)
        _check_frame(f"{prefix}.frame_id", self.frame_id)
        for key in ("image_topic", "info_topic"):
            value = getattr(self, key)
            if value != "":
                _check_topic(f"{prefix}.{key}", value)

    def image_topic_for(self, transport: str) -> str:
        """The image topic for ``transport``: ``<ns>/image_raw`` (raw) or ``<ns>/image_raw/compressed``."""
        if self.image_topic:
            return self.image_topic
        base = f"{self.namespace}/image_raw"
        return base if transport == "raw" else f"{base}/{transport}"

    @property
    def camera_info_topic(self) -> str:
        """``info_topic`` or ``<namespace>/camera_info``."""
        return self.info_topic or f"{self.namespace}/camera_info"


@dataclass(frozen=True)
class QosSettings:
    """QoS of the image and camera-info subscriptions (default: sensor data, as camera drivers publish).

    Attributes:
        reliability: ``best_effort`` (default; a reliable publisher still matches), ``reliable`` (matches only
            reliable publishers) or ``system_default``.
        durability: ``volatile`` (default), ``transient_local`` or ``system_default``.
        depth: history depth (keep last), 1..1000.
    """

    reliability: str = "best_effort"
    durability: str = "volatile"
    depth: int = 5

    def __post_init__(self) -> None:
        _check_choice("reliability", self.reliability, RELIABILITIES)
        _check_choice("durability", self.durability, DURABILITIES)
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or not 1 <= self.depth <= 1000:
            raise ConfigError(f"depth: expected an integer in 1..1000, got {self.depth!r}")


@dataclass(frozen=True)
class InputSettings:
    """How images come in.

    Attributes:
        image_transport: ``raw`` (``sensor_msgs/Image``) or ``compressed`` (``sensor_msgs/CompressedImage``).
        qos: the subscriptions' QoS.
        use_camera_info: pass each camera's latest ``CameraInfo`` intrinsics to the reconstructor (the rig's
            default intrinsics are used until one arrives, and always when False).
    """

    image_transport: str = "raw"
    qos: QosSettings = field(default_factory=QosSettings)
    use_camera_info: bool = True

    def __post_init__(self) -> None:
        _check_choice("image_transport", self.image_transport, IMAGE_TRANSPORTS)


@dataclass(frozen=True)
class SyncSettings:
    """The rig synchronizer's settings (see :class:`~dfmvr_core.sync.RigSynchronizerConfig`) plus the node's poll timer.

    Attributes:
        expected_rate_hz: the cameras' nominal frame rate, Hz.
        slop_s: largest spread of a set, seconds; None (parameter ``0``) = half a frame period.
        queue_size: frames queued per camera.
        partial_timeout_s: degraded mode: emit a partial set after this wait, seconds; None (parameter ``0``) =
            off (incomplete instants are dropped after the reorder window).
        poll_rate_hz: how often the node calls ``RigSynchronizer.poll`` so that partial sets come out while a
            camera is silent, Hz.
    """

    expected_rate_hz: float = 30.0
    slop_s: float | None = None
    queue_size: int = 10
    partial_timeout_s: float | None = 0.15
    poll_rate_hz: float = 20.0

    def __post_init__(self) -> None:
        rate = _check_number("poll_rate_hz", self.poll_rate_hz, 0.0, 1000.0, low_open=True)
        object.__setattr__(self, "poll_rate_hz", rate)

    def synchronizer_config(self, cameras: Sequence[str]) -> RigSynchronizerConfig:
        """The :class:`~dfmvr_core.sync.RigSynchronizerConfig` for ``cameras`` (validated there)."""
        return RigSynchronizerConfig(
            cameras=tuple(cameras),
            slop_s=self.slop_s,
            expected_rate_hz=self.expected_rate_hz,
            queue_size=self.queue_size,
            partial_timeout_s=self.partial_timeout_s,
        )


@dataclass(frozen=True)
class FrameSettings:
    """Frames of the outputs.

    Attributes:
        reference_frame: the rig frame (the reference camera's optical frame); ``""`` = that camera's
            ``frame_id``.
        target_frame: ``""`` = publish in the reference frame; otherwise pose, TF, vertices and marker are
            expressed in this frame, with the transform looked up in tf2 at the set's stamp.
        face_frame: child frame of the head-pose TF (the model frame: x to the viewer's right, y up, z out of
            the face).
        tf_timeout_s: how long the worker waits for the target-frame transform, seconds.
    """

    reference_frame: str = ""
    target_frame: str = ""
    face_frame: str = "face"
    tf_timeout_s: float = 0.05

    def __post_init__(self) -> None:
        _check_frame("reference_frame", self.reference_frame, allow_empty=True)
        _check_frame("target_frame", self.target_frame, allow_empty=True)
        _check_frame("face_frame", self.face_frame)
        object.__setattr__(self, "tf_timeout_s", _check_number("tf_timeout_s", self.tf_timeout_s, 0.0, 10.0))


@dataclass(frozen=True)
class PublishSettings:
    """What is published, and how often the costly debug outputs are.

    Attributes:
        head_pose: ``~/head_pose`` (``geometry_msgs/PoseStamped``).
        tf: the ``<output frame> → face_frame`` transform on ``/tf``.
        vertices: ``~/mesh/vertices`` (``sensor_msgs/PointCloud2``, xyz float32, metres).
        topology: ``~/mesh/topology`` (``shape_msgs/Mesh``, latched, once).
        coefficients: ``~/coefficients`` (``std_msgs/Float32MultiArray``, labelled layout).
        marker: ``~/mesh/marker`` (``visualization_msgs/Marker`` TRIANGLE_LIST), only while subscribed.
        marker_rate_hz: the marker's rate limit, Hz (``0`` = every set).
        marker_color: RGBA in [0, 1].
        marker_lifetime_s: the marker disappears after this long without an update, seconds (``0`` = never).
        overlay: ``~/debug/overlay`` (``sensor_msgs/Image``, mesh over each view, side by side), only while
            subscribed.
        overlay_rate_hz: the overlay's rate limit, Hz (``0`` = every set).
        overlay_scale: each view is scaled by this before drawing, in (0, 1].
        diagnostics_period_s: ``/diagnostics`` period, seconds.
    """

    head_pose: bool = True
    tf: bool = True
    vertices: bool = True
    topology: bool = True
    coefficients: bool = True
    marker: bool = True
    marker_rate_hz: float = 5.0
    marker_color: tuple[float, ...] = (0.55, 0.80, 1.0, 0.9)
    marker_lifetime_s: float = 1.0
    overlay: bool = True
    overlay_rate_hz: float = 2.0
    overlay_scale: float = 0.5
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("marker_rate_hz", "overlay_rate_hz"):
            object.__setattr__(self, name, _check_number(name, getattr(self, name), 0.0, 1000.0))
        color = self.marker_color
        if len(color) != 4:
            raise ConfigError(f"marker_color: expected 4 values (r, g, b, a) in [0, 1], got {list(color)!r}")
        object.__setattr__(
            self, "marker_color", tuple(_check_number(f"marker_color[{i}]", c, 0.0, 1.0) for i, c in enumerate(color))
        )
        object.__setattr__(
            self, "marker_lifetime_s", _check_number("marker_lifetime_s", self.marker_lifetime_s, 0.0, 3600.0)
        )
        object.__setattr__(
            self, "overlay_scale", _check_number("overlay_scale", self.overlay_scale, 0.0, 1.0, low_open=True)
        )
        object.__setattr__(
            self,
            "diagnostics_period_s",
            _check_number("diagnostics_period_s", self.diagnostics_period_s, 0.0, 3600.0, low_open=True),
        )


@dataclass(frozen=True)
class OutputTopics:
    """Absolute names of the output topics (not parameters: remap them with ROS remapping rules).

    ``~/x`` of a node whose fully qualified name is ``/ns/dfmvr`` is ``/ns/dfmvr/x``; :meth:`for_node` gives
    that expansion so that the ROS-free replay writes the topics the node would publish.
    """

    head_pose: str = f"/{DEFAULT_NODE_NAME}/head_pose"
    vertices: str = f"/{DEFAULT_NODE_NAME}/mesh/vertices"
    topology: str = f"/{DEFAULT_NODE_NAME}/mesh/topology"
    marker: str = f"/{DEFAULT_NODE_NAME}/mesh/marker"
    coefficients: str = f"/{DEFAULT_NODE_NAME}/coefficients"
    overlay: str = f"/{DEFAULT_NODE_NAME}/debug/overlay"
    tf: str = "/tf"
    diagnostics: str = "/diagnostics"

    @classmethod
    def for_node(cls, node_fqn: str = f"/{DEFAULT_NODE_NAME}") -> OutputTopics:
        """The topics of the node whose fully qualified name is ``node_fqn`` (e.g. ``/robot/dfmvr``)."""
        if not isinstance(node_fqn, str) or not node_fqn.startswith("/") or not _TOPIC.match(node_fqn):
            raise ConfigError(f"node_fqn: expected a fully qualified node name like '/dfmvr', got {node_fqn!r}")
        return cls(
            head_pose=f"{node_fqn}/head_pose",
            vertices=f"{node_fqn}/mesh/vertices",
            topology=f"{node_fqn}/mesh/topology",
            marker=f"{node_fqn}/mesh/marker",
            coefficients=f"{node_fqn}/coefficients",
            overlay=f"{node_fqn}/debug/overlay",
        )

    def all(self) -> dict[str, str]:
        """``{output: topic}`` for every output."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------- NodeConfig


@dataclass(frozen=True)
class NodeConfig:
    """Everything ``dfmvr_node`` and ``dfmvr replay`` need, validated.

    Attributes:
        cameras: the rig's cameras in view order (``cameras.names``).
        reference_camera: the camera whose optical frame is the rig frame (``cameras.reference``); must be
            the reconstructor rig's reference camera.
        reconstructor: the :class:`~dfmvr_core.inference.reconstructor_config.ReconstructorConfig`
            (parameters ``reconstructor.*``).
        input: image transport and QoS (``input.*``).
        sync: synchronizer settings (``sync.*``).
        frames: output frames (``frames.*``).
        publish: output toggles and rates (``publish.*``).
        topics: absolute output topic names (from the node's name, not parameters).
        autostart: configure and activate the lifecycle node at start-up (``autostart``).
    """

    cameras: tuple[CameraSettings, ...]
    reference_camera: str
    reconstructor: ReconstructorConfig
    input: InputSettings = field(default_factory=InputSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    frames: FrameSettings = field(default_factory=FrameSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    topics: OutputTopics = field(default_factory=OutputTopics)
    autostart: bool = True

    def __post_init__(self) -> None:
        cameras = tuple(self.cameras)
        if not cameras:
            raise ConfigError("cameras.names: expected at least one camera name")
        names = [c.name for c in cameras]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"cameras.names: duplicate camera name {name!r}; expected unique names")
        object.__setattr__(self, "cameras", cameras)
        if self.reference_camera not in names:
            raise ConfigError(
                f"cameras.reference: expected one of cameras.names {names}, got {self.reference_camera!r}"
            )
        transports = [c.image_topic_for(self.input.image_transport) for c in cameras]
        infos = [c.camera_info_topic for c in cameras]
        for i, topic in enumerate(transports + infos):
            if topic in (transports + infos)[:i]:
                raise ConfigError(f"cameras: two inputs share the topic {topic!r}; expected one topic per camera input")
        try:
            self.sync.synchronizer_config(names)
        except ConfigError as exc:
            raise ConfigError(f"sync.{exc}") from None

    # ------------------------------------------------------------------ derived values

    @property
    def camera_names(self) -> tuple[str, ...]:
        """Camera names in view order."""
        return tuple(c.name for c in self.cameras)

    def camera(self, name: str) -> CameraSettings:
        """The settings of camera ``name``."""
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"camera {name!r} is not configured; expected one of {list(self.camera_names)}")

    @property
    def reference_frame(self) -> str:
        """The rig frame: ``frames.reference_frame`` or the reference camera's ``frame_id``."""
        return self.frames.reference_frame or self.camera(self.reference_camera).frame_id

    @property
    def output_frame(self) -> str:
        """Frame of the pose, TF, vertices and marker: ``frames.target_frame`` or the reference frame."""
        return self.frames.target_frame or self.reference_frame

    def synchronizer_config(self) -> RigSynchronizerConfig:
        """The rig synchronizer's configuration (cameras in view order)."""
        return self.sync.synchronizer_config(self.camera_names)

    def image_topics(self) -> dict[str, str]:
        """``{camera: image topic}`` for the configured transport."""
        return {c.name: c.image_topic_for(self.input.image_transport) for c in self.cameras}

    def camera_info_topics(self) -> dict[str, str]:
        """``{camera: camera_info topic}``."""
        return {c.name: c.camera_info_topic for c in self.cameras}

    def check_rig(self, camera_names: Sequence[str], reference_camera: str) -> None:
        """Check that the loaded reconstructor's rig has the configured cameras and reference camera.

        Raises:
            ConfigError: naming ``cameras.names`` or ``cameras.reference``.
        """
        if sorted(camera_names) != sorted(self.camera_names):
            raise ConfigError(
                f"cameras.names: {list(self.camera_names)} do not match the reconstructor rig's cameras "
                f"{list(camera_names)} (reconstructor.rig)"
            )
        if reference_camera != self.reference_camera:
            raise ConfigError(
                f"cameras.reference: {self.reference_camera!r} is not the reconstructor rig's reference camera "
                f"{reference_camera!r} (reconstructor.rig)"
            )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any], *, node_fqn: str = f"/{DEFAULT_NODE_NAME}") -> NodeConfig:
        """Build from flat parameters (``{"sync.slop_s": 0.0, ...}``, what ``rclpy`` holds); missing ones take
        their defaults (:func:`default_parameters`).

        Args:
            parameters: flat dotted names → values (bool, int, float, str, or lists of them). Nested mappings are
                flattened first, so a parameter file's ``ros__parameters`` mapping works too.
            node_fqn: the node's fully qualified name; gives the output topics.

        Raises:
            ConfigError: an unknown parameter, a wrong type or an invalid value; the message starts with the
                parameter's name.
        """
        flat = {
            k: v
            for k, v in flatten_parameters(parameters).items()
            if k not in IGNORED_PARAMETERS and not k.startswith("qos_overrides.")
        }
        names_value = flat.pop("cameras.names", list(DEFAULT_CAMERAS))
        if isinstance(names_value, str) or not isinstance(names_value, (list, tuple)):
            raise ConfigError(f"cameras.names: expected a list of camera names, got {names_value!r}")
        names = tuple(names_value)
        if not names:
            raise ConfigError("cameras.names: expected at least one camera name")
        for i, name in enumerate(names):
            if not isinstance(name, str) or not _NAME_TOKEN.match(name):
                raise ConfigError(
                    f"cameras.names[{i}]: expected a parameter token (a letter, then letters, digits or '_'), "
                    f"got {name!r}"
                )
            if name in names[:i]:
                raise ConfigError(f"cameras.names: duplicate camera name {name!r}; expected unique names")
        defaults = default_parameters(names)
        unknown = sorted(set(flat) - set(defaults))
        if unknown:
            bad = unknown[0]
            section = bad.split(".")[0]
            known = sorted(k for k in defaults if k.split(".")[0] == section)
            if bad.startswith("cameras.") and bad.count(".") >= 2 and bad.split(".")[1] not in names:
                raise ConfigError(
                    f"{bad}: camera {bad.split('.')[1]!r} is not in cameras.names {list(names)}; add it there or "
                    "remove its parameters"
                )
            hint = f"; parameters of '{section}': {known}" if known else f"; known sections: {_sections(defaults)}"
            raise ConfigError(f"{bad}: unknown parameter{hint}")
        values = {**defaults, **flat}
        values["cameras.names"] = list(names)

        cameras = []
        for name in names:
            raw = {key: values[f"cameras.{name}.{key}"] for key in _CAMERA_KEYS}
            for key, value in raw.items():
                if not isinstance(value, str):
                    raise ConfigError(f"cameras.{name}.{key}: expected a string, got {type(value).__name__} {value!r}")
            cameras.append(CameraSettings(name=name, **raw))
        reference = values["cameras.reference"]
        if not isinstance(reference, str):
            raise ConfigError(f"cameras.reference: expected a camera name, got {reference!r}")

        if values["reconstructor.morphable_model"] in ("", None):
            raise ConfigError(
                "reconstructor.morphable_model: required; expected the morphable model file (.npz, BFM .mat or an "
                "ICT FaceXModel folder)"
            )
        sections: dict[str, Any] = {}
        for section_name, section_cls in (
            ("input", InputSettings),
            ("sync", SyncSettings),
            ("frames", FrameSettings),
            ("publish", PublishSettings),
            ("reconstructor", ReconstructorConfig),
        ):
            tree = _nest({k[len(section_name) + 1 :]: v for k, v in values.items() if k.startswith(f"{section_name}.")})
            tree = _optional_from_empty(section_cls, tree)
            sections[section_name] = from_mapping(section_cls, tree, section_name)
        autostart = values["autostart"]
        if not isinstance(autostart, bool):
            raise ConfigError(f"autostart: expected true or false, got {autostart!r}")
        return cls(
            cameras=tuple(cameras),
            reference_camera=reference,
            reconstructor=sections["reconstructor"],
            input=sections["input"],
            sync=sections["sync"],
            frames=sections["frames"],
            publish=sections["publish"],
            topics=OutputTopics.for_node(node_fqn),
            autostart=autostart,
        )

    def to_parameters(self) -> dict[str, Any]:
        """The flat parameters that rebuild this config (``NodeConfig.from_parameters(c.to_parameters()) == c``
        for the same node name); optional values as their empty value (``""``/``0``)."""
        out: dict[str, Any] = {"autostart": self.autostart, "cameras.names": list(self.camera_names)}
        out["cameras.reference"] = self.reference_camera
        for cam in self.cameras:
            for key in _CAMERA_KEYS:
                out[f"cameras.{cam.name}.{key}"] = getattr(cam, key)
        for section_name in ("input", "sync", "frames", "publish", "reconstructor"):
            out.update(_dataclass_to_parameters(getattr(self, section_name), section_name))
        return out


# ---------------------------------------------------------------------------------------------- helpers


def _sections(defaults: Mapping[str, Any]) -> list[str]:
    return sorted({k.split(".")[0] for k in defaults})


def _empty_value(annotation: Any) -> Any:
    """The ROS-parameter stand-in for None of an ``X | None`` field: ``""`` for str/Path, ``0`` for numbers."""
    args = [a for a in typing.get_args(annotation) if a is not types.NoneType]
    inner = args[0] if args else str
    if inner in (int, float):
        return inner(0)
    return ""


def _is_optional(annotation: Any) -> bool:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return union and type(None) in typing.get_args(annotation)


def _optional_from_empty(cls: type, tree: Mapping[str, Any]) -> dict[str, Any]:
    """Map ROS parameters' empty values (``""``, ``0``) of ``X | None`` fields of ``cls`` to None, recursively."""
    hints = typing.get_type_hints(cls)
    out = dict(tree)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            continue
        annotation = hints[f.name]
        value = out[f.name]
        if dataclasses.is_dataclass(annotation) and isinstance(value, Mapping):
            out[f.name] = _optional_from_empty(annotation, value)
        elif _is_optional(annotation) and not isinstance(value, bool) and value in ("", 0):
            out[f.name] = None
    return out


def _dataclass_to_parameters(obj: Any, prefix: str) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = getattr(obj, f.name)
        key = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(_dataclass_to_parameters(value, key))
        elif value is None:
            out[key] = _empty_value(hints[f.name])
        elif isinstance(value, Path):
            out[key] = str(value)
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def flatten_parameters(parameters: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → flat dotted names (``{"sync": {"slop_s": 0}}`` → ``{"sync.slop_s": 0}``); flat input is
    returned as is."""
    if not isinstance(parameters, Mapping):
        where = prefix.rstrip(".") or "parameters"
        raise ConfigError(f"{where}: expected a mapping of parameters, got {type(parameters).__name__}")
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{prefix}{key!r}: expected a parameter name (a string)")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_parameters(value, f"{name}."))
        else:
            if name in out:
                raise ConfigError(f"{name}: given twice")
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def default_parameters(camera_names: Sequence[str] = DEFAULT_CAMERAS) -> dict[str, Any]:
    """Every parameter the node declares, with its default, for a rig with ``camera_names`` (flat names).

    ``reconstructor.morphable_model`` defaults to ``""``, which :meth:`NodeConfig.from_parameters` refuses: the
    model must be given. ``reconstructor.checkpoint`` defaults to ``"default"``, the embedded trained model (the
    library's :class:`ReconstructorConfig` keeps ``None``, fresh weights); ``""`` runs fresh weights, with a warning.
    """
    out: dict[str, Any] = {"autostart": True, "cameras.names": list(camera_names)}
    out["cameras.reference"] = "front" if "front" in camera_names else (camera_names[0] if camera_names else "")
    for name in camera_names:
        out[f"cameras.{name}.namespace"] = f"/cameras/{name}"
        out[f"cameras.{name}.frame_id"] = f"{name}_camera_optical_frame"
        out[f"cameras.{name}.image_topic"] = ""
        out[f"cameras.{name}.info_topic"] = ""
    for section_name, obj in (
        ("input", InputSettings()),
        ("sync", SyncSettings()),
        ("frames", FrameSettings()),
        ("publish", PublishSettings()),
    ):
        out.update(_dataclass_to_parameters(obj, section_name))
    out.update(_dataclass_to_parameters(ReconstructorConfig(morphable_model=Path("unset")), "reconstructor"))
    out["reconstructor.morphable_model"] = ""
    out["reconstructor.checkpoint"] = DEFAULT_CHECKPOINT
    return out


def _matches_node(key: str, node_name: str, namespace: str) -> bool:
    """Whether a parameter-file key addresses the node (rcl's rules for the common forms: ``/**``, ``name``,
    ``/name``, ``/ns/name``, ``/**/name``)."""
    fqn = f"{namespace.rstrip('/')}/{node_name}"
    return key in ("/**", "**", node_name, fqn, f"/**/{node_name}") or (namespace == "/" and key == f"/{node_name}")


def read_parameter_file(path: str | Path, node_name: str = DEFAULT_NODE_NAME, namespace: str = "/") -> dict[str, Any]:
    """The flat parameters a ROS 2 parameter file gives the node ``namespace/node_name``.

    Sections addressing the node (``/**``, ``<name>``, ``/<ns>/<name>``, ``/**/<name>``) are merged in file order,
    later ones overriding earlier ones, as ``rcl`` does.

    Raises:
        ConfigError: missing file, invalid YAML, no ``ros__parameters`` for the node.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameter file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of node names to {{ros__parameters: ...}}")
    merged: dict[str, Any] = {}
    found = False
    for key, section in data.items():
        if not isinstance(key, str) or not _matches_node(key, node_name, namespace):
            continue
        if not isinstance(section, Mapping) or "ros__parameters" not in section:
            raise ConfigError(f"{path}: section {key!r} has no 'ros__parameters' mapping")
        try:
            merged.update(flatten_parameters(section["ros__parameters"] or {}))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        found = True
    if not found:
        raise ConfigError(
            f"{path}: no parameters for node {namespace.rstrip('/')}/{node_name}; expected a top-level '/**' or "
            f"'{node_name}' key holding 'ros__parameters'"
        )
    return merged


def load_node_config(
    path: str | Path,
    *,
    node_name: str = DEFAULT_NODE_NAME,
    namespace: str = "/",
    overrides: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """:class:`NodeConfig` from a ROS 2 parameter file (e.g. ``config/dfmvr.yaml``) plus flat ``overrides``.

    Raises:
        ConfigError: as :func:`read_parameter_file` and :meth:`NodeConfig.from_parameters`; the message names the
            file and the parameter.
    """
    parameters = read_parameter_file(path, node_name, namespace)
    parameters.update(flatten_parameters(overrides or {}))
    fqn = f"{namespace.rstrip('/')}/{node_name}"
    try:
        return NodeConfig.from_parameters(parameters, node_fqn=fqn)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
