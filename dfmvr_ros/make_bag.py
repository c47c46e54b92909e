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

"""A synthetic three-camera rosbag2 of one moving face, with ground truth (``dfmvr make-bag``; no ROS needed).

One subject per bag (identity, albedo and light drawn once from :class:`~dfmvr_core.synthesis.FaceSceneSampler`
with the bag's seed), its head turning smoothly (yaw and pitch sinusoids, ±20° / ±10° by default, a little roll)
while drifting by about a centimetre, and its expression changing smoothly (a few blendshapes fading in and out,
or a few PCA coefficients oscillating). Each capture instant is rendered into every camera of the rig
(:class:`~dfmvr_core.synthesis.SceneRenderer`, ``target="full"``, several instants per render call) and written as
the topics ``dfmvr_node`` subscribes to (from the node configuration):

* ``<namespace>/image_raw`` (``sensor_msgs/Image`` rgb8) or, with ``compressed``, ``<namespace>/image_raw/compressed``
  (``sensor_msgs/CompressedImage``, JPEG as compressed_image_transport writes it);
* ``<namespace>/camera_info`` (``sensor_msgs/CameraInfo``: the rig's intrinsics scaled to the image size);

plus the ground truth of :mod:`dfmvr_ros.replay_ground_truth` (head pose, mesh, topology, 2D landmarks).

Clocks: instant ``k`` is captured at ``t_k = start + k / fps``. Each camera's header stamp is ``t_k`` plus its own
jitter (uniform in ±``jitter_ms``), its receive (record) time the stamp plus a transport delay (uniform in
``transport_delay_ms``); its CameraInfo is recorded 1 µs before the image and its landmarks at the stamp. The ground
truth of instant ``k`` is stamped ``t_k`` and recorded before any image of that instant, so a replay has it when the
set is reconstructed. Messages are written in record-time order. Dropped frames (``drops``) leave out a camera's
image, CameraInfo and landmarks of one instant.

The bag is written atomically (:class:`~dfmvr_ros.bag_io.BagWriter`): it appears at its path only when complete.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.geometry.pose import MODEL_TO_OPTICAL
from dfmvr_core.geometry.rig import RigConfig
from dfmvr_core.geometry.rotations import euler_to_matrix
from dfmvr_ros.bag_io import METADATA_VERSION_BY_DISTRO, STORAGE_PLUGINS, BagWriter
from dfmvr_ros.node_config import NodeConfig
from dfmvr_ros.replay_ground_truth import (
    GT_HEAD_POSE_TOPIC,
    GT_MESH_TOPIC,
    GT_TOPOLOGY_TOPIC,
    LANDMARKS_MSGTYPE,
    landmarks_message,
    landmarks_topic,
)

__all__ = [
    "DEFAULT_START_NS",
    "MakeBagOptions",
    "MakeBagResult",
    "expression_trajectory",
    "head_trajectory",
    "make_bag",
    "parse_drop",
    "parse_size",
    "scaled_rig",
]

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
DEFAULT_START_NS = 1_700_000_000 * NS_PER_S
"""Capture time of the first instant (2023-11-14T22:13:20Z): a fixed epoch keeps bags reproducible."""

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)`` (width, height in pixels).

    Raises:
        ConfigError: not ``WIDTHxHEIGHT`` with both in 16..8192.
    """
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"size: expected WIDTHxHEIGHT in pixels (e.g. 640x480), got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise ConfigError(f"size: expected width and height in 16..8192 pixels, got {width}x{height}")
    return width, height


def parse_drop(text: str) -> tuple[str, int]:
    """``"left:3"`` → ``("left", 3)``: camera ``left`` loses instant 3 (0-based).

    Raises:
        ConfigError: not ``CAMERA:FRAME`` with a non-negative integer frame.
    """
    camera, sep, frame = str(text).rpartition(":")
    if not sep or not camera or not frame.strip().isdigit():
        raise ConfigError(f"drop: expected CAMERA:FRAME (e.g. left:3, frames count from 0), got {text!r}")
    return camera, int(frame)


@dataclasses.dataclass(frozen=True)
class MakeBagOptions:
    """What the synthetic bag holds (validated).

    Attributes:
        frames: capture instants, 1..100000.
        fps: instants per second, (0, 1000].
        seed: non-negative; the subject, its motion, the jitter and the delays depend only on it.
        jitter_ms: each header stamp is the instant plus uniform(±jitter_ms), milliseconds, at most a quarter of
            the frame period (so that a set's spread stays under half a period, the synchronizer's default slop).
        transport_delay_ms: (low, high) receive delay after the header stamp, milliseconds, low > 0.
        drops: ``(camera, frame)`` pairs left out of the bag.
        compressed: JPEG ``CompressedImage`` instead of rgb8 ``Image``.
        jpeg_quality: 1..100.
        distro: ``humble`` (metadata v5) or ``jazzy`` (v9).
        storage: ``sqlite3`` or ``mcap``.
        size: (width, height) of the images in pixels; None = the rig's own size. The rig's intrinsics are scaled
            to it.
        batch: instants rendered per renderer call (speed vs. memory).
        yaw_amplitude_deg, pitch_amplitude_deg, roll_amplitude_deg: head rotation amplitudes, degrees.
        yaw_period_s, pitch_period_s: periods of the yaw and pitch sinusoids, seconds.
        drift_m: amplitude of the head's translation drift per axis (depth: twice this), metres.
        expression_changes: how many blendshapes (or PCA coefficients) vary over time.
        ground_truth_landmarks: write ``/ground_truth/landmarks/<camera>``.
        start_ns: capture time of instant 0, integer ns.
    """

    frames: int = 30
    fps: float = 15.0
    seed: int = 0
    jitter_ms: float = 2.0
    transport_delay_ms: tuple[float, float] = (1.0, 4.0)
    drops: tuple[tuple[str, int], ...] = ()
    compressed: bool = False
    jpeg_quality: int = 90
    distro: str = "humble"
    storage: str = "sqlite3"
    size: tuple[int, int] | None = (640, 480)
    batch: int = 4
    yaw_amplitude_deg: float = 20.0
    pitch_amplitude_deg: float = 10.0
    roll_amplitude_deg: float = 3.0
    yaw_period_s: float = 4.0
    pitch_period_s: float = 3.0
    drift_m: float = 0.01
    expression_changes: int = 6
    ground_truth_landmarks: bool = True
    start_ns: int = DEFAULT_START_NS

    def __post_init__(self) -> None:
        def integer(name: str, low: int, high: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ConfigError(f"{name}: expected an integer in {low}..{high}, got {value!r}")
            object.__setattr__(self, name, int(value))

        def number(name: str, low: float, high: float, *, low_open: bool = False) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name}: expected a finite number, got {value!r}")
            if (value <= low if low_open else value < low) or value > high:
                interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
                raise ConfigError(f"{name}: expected a value in {interval}, got {value!r}")
            object.__setattr__(self, name, float(value))
            return float(value)

        integer("frames", 1, 100_000)
        fps = number("fps", 0.0, 1000.0, low_open=True)
        integer("seed", 0, 2**63 - 1)
        period_ms = 1000.0 / fps
        number("jitter_ms", 0.0, period_ms / 4)
        delay = tuple(self.transport_delay_ms)
        if len(delay) != 2 or not all(isinstance(d, (int, float)) and math.isfinite(d) for d in delay):
            raise ConfigError(f"transport_delay_ms: expected (low, high) milliseconds, got {self.transport_delay_ms!r}")
        if not 0 < delay[0] <= delay[1] <= 1000:
            raise ConfigError(f"transport_delay_ms: expected 0 < low <= high <= 1000 ms, got {delay!r}")
        object.__setattr__(self, "transport_delay_ms", (float(delay[0]), float(delay[1])))
        drops = []
        for item in self.drops:
            camera, frame = parse_drop(item) if isinstance(item, str) else item
            if not 0 <= int(frame) < self.frames:
                raise ConfigError(f"drops: frame {frame} of camera {camera!r} is outside 0..{self.frames - 1}")
            drops.append((str(camera), int(frame)))
        object.__setattr__(self, "drops", tuple(sorted(set(drops))))
        integer("jpeg_quality", 1, 100)
        if self.distro not in METADATA_VERSION_BY_DISTRO:
            raise ConfigError(f"distro: expected one of {sorted(METADATA_VERSION_BY_DISTRO)}, got {self.distro!r}")
        if self.storage not in STORAGE_PLUGINS:
            raise ConfigError(f"storage: expected one of {list(STORAGE_PLUGINS)}, got {self.storage!r}")
        if self.size is not None:
            size = parse_size(self.size) if isinstance(self.size, str) else tuple(self.size)
            if len(size) != 2:
                raise ConfigError(f"size: expected (width, height), got {self.size!r}")
            object.__setattr__(self, "size", parse_size(f"{size[0]}x{size[1]}"))
        integer("batch", 1, 64)
        number("yaw_amplitude_deg", 0.0, 80.0)
        number("pitch_amplitude_deg", 0.0, 80.0)
        number("roll_amplitude_deg", 0.0, 80.0)
        number("yaw_period_s", 0.0, 3600.0, low_open=True)
        number("pitch_period_s", 0.0, 3600.0, low_open=True)
        number("drift_m", 0.0, 0.5)
        integer("expression_changes", 0, 1000)
        integer("start_ns", 0, 2**62)

    @property
    def period_ns(self) -> int:
        """Frame period, ns."""
        return round(NS_PER_S / self.fps)


@dataclasses.dataclass(frozen=True)
class MakeBagResult:
    """What :func:`make_bag` wrote.

    Attributes:
        path: the bag directory.
        frames: capture instants.
        cameras: camera names, view order.
        image_size: (width, height) pixels.
        topic_counts: messages per topic.
        dropped: the ``(camera, frame)`` pairs left out.
        wall_s: total time, seconds.
        render_s: time spent rendering, seconds.
        bytes: size of the bag on disk.
    """

    path: Path
    frames: int
    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    topic_counts: dict[str, int]
    dropped: tuple[tuple[str, int], ...]
    wall_s: float
    render_s: float
    bytes: int

    @property
    def frames_per_s(self) -> float:
        """Capture instants written per second of wall time (all cameras)."""
        return self.frames / self.wall_s if self.wall_s > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "path": str(self.path),
            "frames": self.frames,
            "cameras": list(self.cameras),
            "image_size": list(self.image_size),
            "topic_counts": dict(self.topic_counts),
            "dropped": [f"{c}:{f}" for c, f in self.dropped],
            "wall_s": round(self.wall_s, 3),
            "render_s": round(self.render_s, 3),
            "frames_per_s": round(self.frames_per_s, 3),
            "bytes": self.bytes,
        }


def scaled_rig(rig: RigConfig, size: tuple[int, int] | None) -> RigConfig:
    """``rig`` with every camera's intrinsics scaled to ``size`` = (width, height) (None: unchanged).

    Focal lengths scale with the image; the principal point keeps its place with pixel centres at integers
    (``c' = (c + 0.5)·s − 0.5``).
    """
    if size is None:
        return rig
    width, height = size
    cameras = []
    for cam in rig.cameras:
        k = cam.intrinsics
        sx, sy = width / k.width, height / k.height
        cx, cy = (k.cx + 0.5) * sx - 0.5, (k.cy + 0.5) * sy - 0.5
        scaled = PinholeIntrinsics(fx=k.fx * sx, fy=k.fy * sy, cx=cx, cy=cy, width=width, height=height)
        cameras.append(dataclasses.replace(cam, intrinsics=scaled))
    return dataclasses.replace(rig, cameras=tuple(cameras))


def head_trajectory(
    times_s: np.ndarray, options: MakeBagOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth head motion: ``(T, 3)`` (pitch, yaw, roll) degrees and ``(T, 3)`` offsets of the face centre (rig
    frame, metres) at ``times_s``.

    yaw = A_yaw·sin(2πt/P_yaw + φ), pitch = A_pitch·sin(2πt/P_pitch + φ'), roll = A_roll·sin(2πt/5 s + φ''); the
    centre drifts by ``drift_m`` in x and y and ``2·drift_m`` in depth on slower sinusoids (7, 5 and 6 s). The phases
    come from ``rng``, so the seed changes the motion.
    """
    t = np.asarray(times_s, dtype=np.float64)
    phase = rng.uniform(0.0, 2.0 * math.pi, 6)
    o = options
    yaw = o.yaw_amplitude_deg * np.sin(2 * math.pi * t / o.yaw_period_s + phase[0])
    pitch = o.pitch_amplitude_deg * np.sin(2 * math.pi * t / o.pitch_period_s + phase[1])
    roll = o.roll_amplitude_deg * np.sin(2 * math.pi * t / 5.0 + phase[2])
    drift = np.stack(
        (
            o.drift_m * np.sin(2 * math.pi * t / 7.0 + phase[3]),
            o.drift_m * np.sin(2 * math.pi * t / 5.0 + phase[4]),
            2 * o.drift_m * np.sin(2 * math.pi * t / 6.0 + phase[5]),
        ),
        axis=-1,
    )
    return np.stack((pitch, yaw, roll), axis=-1), drift


def expression_trajectory(
    times_s: np.ndarray, size: int, kind: str, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Smoothly varying expression coefficients ``(T, size)`` float32.

    Blendshape models (``kind == "blendshape"``, weights in [0, 1]): ``count`` random blendshapes fade in and out,
    ``w = w_max·(1 − cos(2πt/P + φ))/2`` with ``w_max`` in [0.3, 0.8] and ``P`` in [1.5, 4] s. PCA models: ``count``
    of the first 10 coefficients oscillate, ``0.7·sin(2πt/P + φ)``.
    """
    t = np.asarray(times_s, dtype=np.float64)[:, None]
    out = np.zeros((t.shape[0], size), dtype=np.float64)
    if size == 0 or count == 0:
        return out.astype(np.float32)
    if kind == "blendshape":
        chosen = rng.choice(size, size=min(count, size), replace=False)
        w_max = rng.uniform(0.3, 0.8, chosen.size)
        period = rng.uniform(1.5, 4.0, chosen.size)
        phase = rng.uniform(0.0, 2 * math.pi, chosen.size)
        out[:, chosen] = w_max * 0.5 * (1.0 - np.cos(2 * math.pi * t / period + phase))
    else:
        chosen = rng.choice(min(size, 10), size=min(count, size, 10), replace=False)
        period = rng.uniform(1.5, 4.0, chosen.size)
        phase = rng.uniform(0.0, 2 * math.pi, chosen.size)
        out[:, chosen] = 0.7 * np.sin(2 * math.pi * t / period + phase)
    return out.astype(np.float32)


class _OrderedWriter:
    """Buffers messages and writes them to a :class:`BagWriter` in record-time order (ties: insertion order)."""

    def __init__(self, bag: BagWriter) -> None:
        self.bag = bag
        self._heap: list[tuple[int, int, str, Any]] = []
        self._seq = 0

    def push(self, topic: str, record_ns: int, msg: Any) -> None:
        heapq.heappush(self._heap, (int(record_ns), self._seq, topic, msg))
        self._seq += 1

    def flush_before(self, limit_ns: int | None = None) -> None:
        while self._heap and (limit_ns is None or self._heap[0][0] < limit_ns):
            record_ns, _, topic, msg = heapq.heappop(self._heap)
            self.bag.write(topic, record_ns, msg)


def _load_model(model: Any) -> Any:
    from dfmvr_core.morphable import MorphableModel, load_morphable_model

    if isinstance(model, MorphableModel):
        return model
    return load_morphable_model(Path(model))


def make_bag(
    path: str | Path,
    model: Any,
    node_config: NodeConfig,
    options: MakeBagOptions | None = None,
    *,
    rig: RigConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> MakeBagResult:
    """Render and write a synthetic rig bag (see the module docstring).

    Args:
        path: the bag directory to create.
        model: a :class:`~dfmvr_core.morphable.MorphableModel` or its file (``.npz``, BFM ``.mat``, ICT folder).
        node_config: gives the camera topics, frame ids and the reference (rig) frame.
        options: :class:`MakeBagOptions` (default: 30 instants at 15 fps, 640×480, humble sqlite3).
        rig: the camera rig (extrinsics and intrinsics before scaling to ``options.size``); None = the
            reconstructor rig named by ``node_config.reconstructor.rig``, else the built-in default rig.
        overwrite: replace an existing bag at ``path``.
        progress: show a tqdm progress bar.

    Returns:
        :class:`MakeBagResult`.

    Raises:
        ConfigError: bad options, a camera of ``drops`` or of the node config that the rig does not have.
        BagError: ``path`` exists (without ``overwrite``) or cannot be written.
        ModelFileError: an unreadable model file.
    """
    from tqdm import tqdm

    from dfmvr_core.geometry.rig import load_rig_config
    from dfmvr_core.synthesis import FaceSceneSampler, SceneConfig, SceneRenderer, scene_seed
    from dfmvr_ros.image_codec import compressed_image_message
    from dfmvr_ros.messages import camera_info_message, image_message, mesh_topology, point_cloud_xyz, pose_stamped

    options = options or MakeBagOptions()
    started = time.perf_counter()
    target = BagWriter(path, distro=options.distro, storage=options.storage, overwrite=overwrite)  # checks the path
    if rig is None:
        rig = load_rig_config(node_config.reconstructor.rig) if node_config.reconstructor.rig else RigConfig()
    rig = scaled_rig(rig, options.size)
    rig_names = tuple(c.name for c in rig.cameras)
    node_config.check_rig(rig_names, rig.reference_camera)
    for camera, _ in options.drops:
        if camera not in rig_names:
            raise ConfigError(f"drops: unknown camera {camera!r}; expected one of {list(rig_names)}")
    dropped = set(options.drops)
    model = _load_model(model).to(dtype=torch.float32)
    scene_config = SceneConfig(rig=rig, side_yaw="fixed")
    base = FaceSceneSampler(model, scene_config).sample(scene_seed(options.seed, 0))
    renderer = SceneRenderer(model, scene_config, device="cpu")
    width, height = rig.cameras[0].intrinsics.width, rig.cameras[0].intrinsics.height

    motion_rng = np.random.default_rng([options.seed, 1])
    clock_rng = np.random.default_rng([options.seed, 2])
    times_s = np.arange(options.frames) / options.fps
    angles, drift = head_trajectory(times_s, options, motion_rng)
    expressions = expression_trajectory(
        times_s, model.coefficient_sizes.expression, model.expression_kind, options.expression_changes, motion_rng
    )
    mean = model.mean_shape.detach().cpu().double()
    face_centre = mean[model.landmarks68.cpu()].mean(dim=0).numpy()
    centre_rig = np.array((0.0, 0.0, rig.subject_distance_m))
    R_model_to_rig = np.asarray(MODEL_TO_OPTICAL, np.float64)
    rotations = R_model_to_rig @ euler_to_matrix(torch.tensor(np.radians(angles))).numpy()

    V = len(rig_names)
    transport = "compressed" if options.compressed else "raw"
    image_topics = {c: node_config.camera(c).image_topic_for(transport) for c in rig_names}
    info_topics = {c: node_config.camera(c).camera_info_topic for c in rig_names}
    frames = {c: node_config.camera(c).frame_id for c in rig_names}
    reference_frame = node_config.reference_frame
    jitter_ns = round(options.jitter_ms * NS_PER_MS)
    lead_ns = jitter_ns + NS_PER_MS  # ground truth is recorded this long before its instant

    with target as bag:
        types = bag.types
        image_type = "sensor_msgs/msg/CompressedImage" if options.compressed else "sensor_msgs/msg/Image"
        for c in rig_names:
            bag.add_topic(image_topics[c], image_type)
            bag.add_topic(info_topics[c], "sensor_msgs/msg/CameraInfo")
            if options.ground_truth_landmarks:
                bag.add_topic(landmarks_topic(c), LANDMARKS_MSGTYPE)
        bag.add_topic(GT_HEAD_POSE_TOPIC, "geometry_msgs/msg/PoseStamped")
        bag.add_topic(GT_MESH_TOPIC, "sensor_msgs/msg/PointCloud2")
        bag.add_topic(GT_TOPOLOGY_TOPIC, "shape_msgs/msg/Mesh", latched=True)
        writer = _OrderedWriter(bag)
        neutral = model.decode_shape(
            torch.as_tensor(base.identity)[None], torch.zeros(1, model.coefficient_sizes.expression)
        )[0]
        faces = model.triangles.cpu().numpy()
        topology = mesh_topology(types, faces, neutral.cpu().numpy())
        writer.push(GT_TOPOLOGY_TOPIC, options.start_ns - lead_ns - NS_PER_MS, topology)

        render_s = 0.0
        bar = tqdm(total=options.frames, unit="frame", desc="make-bag", disable=not progress)
        try:
            for first in range(0, options.frames, options.batch):
                indices = range(first, min(first + options.batch, options.frames))
                scenes = []
                for k in indices:
                    T = np.eye(4)
                    T[:3, :3] = rotations[k]
                    T[:3, 3] = centre_rig + drift[k] - rotations[k] @ face_centre
                    scenes.append(
                        dataclasses.replace(
                            base, expression=expressions[k], T_rig_from_model=T, head_angles_deg=angles[k]
                        )
                    )
                t_render = time.perf_counter()
                renderings = renderer.render(scenes, target="full")
                render_s += time.perf_counter() - t_render
                for k, scene, rendering in zip(indices, scenes, renderings, strict=True):
                    t_k = options.start_ns + round(k * NS_PER_S / options.fps)
                    T = scene.T_rig_from_model
                    gt_ns = t_k - lead_ns
                    writer.push(GT_HEAD_POSE_TOPIC, gt_ns, pose_stamped(types, t_k, reference_frame, T))
                    vertices_rig = rendering.vertices.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
                    writer.push(GT_MESH_TOPIC, gt_ns, point_cloud_xyz(types, t_k, reference_frame, vertices_rig))
                    jitter = clock_rng.integers(-jitter_ns, jitter_ns, V, endpoint=True)
                    delay = clock_rng.uniform(*options.transport_delay_ms, V) * NS_PER_MS
                    for v, c in enumerate(rig_names):
                        if (c, k) in dropped:
                            continue
                        stamp = t_k + int(jitter[v])
                        record = stamp + round(delay[v])
                        image = rendering.images[v]
                        if options.compressed:
                            msg = compressed_image_message(types, stamp, frames[c], image, "jpeg", options.jpeg_quality)
                        else:
                            msg = image_message(types, stamp, frames[c], image, "rgb8")
                        info = camera_info_message(types, stamp, frames[c], rig.cameras[v].intrinsics)
                        writer.push(info_topics[c], record - 1000, info)
                        writer.push(image_topics[c], record, msg)
                        if options.ground_truth_landmarks:
                            lm = landmarks_message(
                                types, stamp, frames[c], rendering.landmarks_2d[v], rendering.landmark_visibility[v]
                            )
                            writer.push(landmarks_topic(c), stamp, lm)
                    next_ns = options.start_ns + round((k + 1) * NS_PER_S / options.fps)
                    writer.flush_before(next_ns - lead_ns)
                    bar.update(1)
            writer.flush_before(None)
        finally:
            bar.close()
        counts = bag.message_counts
    wall = time.perf_counter() - started
    size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    return MakeBagResult(
        path=Path(path),
        frames=options.frames,
        cameras=rig_names,
        image_size=(width, height),
        topic_counts=counts,
        dropped=options.drops,
        wall_s=wall,
        render_s=render_s,
        bytes=size,
    )
