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

"""ROS-free rosbag2 replay: a recorded rig bag through the node's pipeline, outputs into a new bag (``dfmvr replay``).

What happens, message by message in receive-time order (:class:`~dfmvr_ros.bag_io.BagReader`, sqlite3 or mcap,
metadata v5-v9):

* camera images (the topics the node configuration subscribes to: ``sensor_msgs/Image`` or ``CompressedImage``)
  are decoded (:func:`~dfmvr_ros.image_codec.image_from_message`; a frame that cannot be decoded is counted as a
  bad frame and skipped) and fed to the same :class:`~dfmvr_core.sync.RigSynchronizer` as the node's, with the
  bag's receive time as the clock; the synchronizer is also polled at ``sync.poll_rate_hz`` on that clock, as the
  node's timer does, and flushed at the end of the bag;
* ``CameraInfo`` messages update the camera's intrinsics (the latest one is used, as the node does; without
  any, the rig's intrinsics are used and the report says so);
* **every** matched set is reconstructed, in time order (offline there is no latest-wins dropping), with the
  :class:`~dfmvr_core.inference.reconstructor.FaceReconstructor`, and its outputs are built by the node's own
  :func:`~dfmvr_ros.outputs.build_outputs` and written to ``OUT/output_bag`` (same topics, types and fields as
  ``dfmvr_node``; the topology once, latched; ``/diagnostics`` every ``publish.diagnostics_period_s`` of bag time
  from :class:`~dfmvr_ros.monitor.PipelineMonitor`); the marker and overlay topics, which the node builds only
  for subscribers, are written with ``debug_topics`` (rate-limited as in the node, on the bag clock). Outputs are
  in the reference camera's frame: ``frames.target_frame`` (a tf2 lookup in the node) is refused.

Output receive times are the receive time of the message that completed the set (deterministic: the same bag gives
the same output bag, diagnostics aside); the monitor's latency is that time plus the measured processing time
minus the set's stamp, i.e. the latency of a node keeping up in real time.

Why not :class:`~dfmvr_ros.node_pipeline.NodePipeline`: replay needs each set's
:class:`~dfmvr_core.inference.reconstructor.Reconstruction` (evaluation, overlay files, per-stage timings), optional
ground-truth landmarks passed to ``reconstruct``, and bad frames skipped before they reach the synchronizer; the
pipeline's ``process`` hides the first two and fails the whole set for the third. The pieces the node's outputs
depend on (synchronizer, output builders, monitor, node configuration) are the same objects.

Landmarks: by default the reconstructor's detector finds the faces (``reconstructor.detector``, MediaPipe); with
``landmark_topic_prefix`` (``--gt-landmarks``) they come from the bag's ground-truth topics
(:mod:`dfmvr_ros.replay_ground_truth`), which evaluates the network alone. The report says which.

When the bag holds ``/ground_truth/mesh`` and ``/ground_truth/head_pose`` (``dfmvr make-bag`` writes them) every
set is evaluated (:mod:`dfmvr_ros.replay_evaluation`). Every overlay comes with the set's mesh,
``meshes/<index>_<stamp>.ply`` (rig frame, metres). A corrupt or truncated bag stops the reading, the sets read
so far are still processed, and the output bag and a report with ``"complete": false`` and the error are written.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dfmvr_core.atomic_io import write_json_atomic
from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_core.sync import MatchedSet, RigSynchronizer
from dfmvr_ros.bag_io import METADATA_VERSION_BY_DISTRO, BagError, BagReader, BagWriter
from dfmvr_ros.image_codec import image_from_message
from dfmvr_ros.messages import (
    DistortionIgnoredWarning,
    ImageEncodingError,
    intrinsics_from_camera_info,
    matrix_from_pose,
    mesh_from_topology,
    points_from_cloud,
    stamp_to_ns,
)
from dfmvr_ros.monitor import PipelineMonitor
from dfmvr_ros.node_config import NodeConfig
from dfmvr_ros.outputs import MSGTYPES, build_outputs, diagnostics_message, topology_message
from dfmvr_ros.replay_evaluation import GroundTruthBuffer, SetEvaluation, evaluate_set, summary
from dfmvr_ros.replay_ground_truth import (
    GT_HEAD_POSE_TOPIC,
    GT_MESH_TOPIC,
    GT_TOPOLOGY_TOPIC,
    LANDMARKS_MSGTYPE,
    landmarks_from_message,
    landmarks_topic,
)

__all__ = ["IMAGE_MSGTYPES", "OUTPUT_BAG", "REPORT", "ReplayReport", "check_bag", "replay_bag"]

LOG = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000
IMAGE_MSGTYPES = {"raw": "sensor_msgs/msg/Image", "compressed": "sensor_msgs/msg/CompressedImage"}
OUTPUT_BAG = "output_bag"
REPORT = "report.json"
OVERLAYS = "overlays"
MESHES = "meshes"
LANDMARKS_FROM_GROUND_TRUTH = "ground truth (evaluation of the network alone)"
_DEBUG_OUTPUTS = ("marker", "overlay")
_ALWAYS_OUTPUTS = ("head_pose", "tf", "vertices", "coefficients")


@dataclasses.dataclass
class ReplayReport:
    """The outcome of :func:`replay_bag` (``data`` is what ``report.json`` holds).

    Attributes:
        complete: the whole bag was read (and ``max_sets`` not reached early is still complete).
        error: why reading stopped early (corrupt bag, interrupted), else None.
        sets_processed: synchronized sets reconstructed (with or without a face).
        sets_with_face: sets with at least one valid view (outputs written).
        sets_failed: sets whose reconstruction raised (counted, skipped).
        interrupted: reading stopped on Ctrl-C (KeyboardInterrupt); what was processed is kept.
        output_bag: the output bag directory.
        report_path: ``report.json``.
        data: the full report.
    """

    complete: bool
    error: str | None
    sets_processed: int
    sets_with_face: int
    sets_failed: int
    interrupted: bool
    output_bag: Path
    report_path: Path
    data: dict[str, Any]

    @property
    def exit_code(self) -> int:
        """0: complete and no set failed; 130: interrupted; 1 otherwise."""
        if self.interrupted:
            return 130
        return 0 if self.complete and self.sets_failed == 0 else 1

    def to_dict(self) -> dict[str, Any]:
        """The report (JSON-ready)."""
        return self.data


@dataclasses.dataclass(frozen=True)
class _Frame:
    """A decoded camera frame travelling through the synchronizer."""

    image: np.ndarray
    stamp_ns: int
    decode_ms: float


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "max": None}
    arr = np.asarray(values, dtype=np.float64)
    return {
        "count": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p95": round(float(np.percentile(arr, 95)), 3),
        "max": round(float(arr.max()), 3),
    }


def _distro_of(reader: BagReader) -> str:
    """The output distro matching the input bag: metadata v9+ → jazzy, else humble."""
    version = reader.metadata_version
    return "jazzy" if version is not None and version >= METADATA_VERSION_BY_DISTRO["jazzy"] else "humble"


def _choose_transport(reader: BagReader, config: NodeConfig) -> tuple[str, str | None]:
    """The image transport to read: the configured one, or the other when only the other is in the bag."""
    configured = config.input.image_transport
    for transport in (configured, *(t for t in IMAGE_MSGTYPES if t != configured)):
        topics = [cam.image_topic_for(transport) for cam in config.cameras]
        if all(t in reader.topics for t in topics):
            note = None
            if transport != configured:
                note = (
                    f"input.image_transport is {configured!r} but the bag has only the {transport!r} image topics; "
                    f"reading those"
                )
            return transport, note
    return configured, None


def _input_topics(
    reader: BagReader, config: NodeConfig, landmark_prefix: str | None
) -> tuple[str, str | None, dict[str, str], dict[str, str]]:
    """The transport, its note, ``{camera: image topic}`` and ``{camera: landmark topic}`` (empty without a prefix),
    checked against the bag.

    Raises:
        BagError: an image or landmark topic is missing or has another type (the message lists the bag's topics).
    """
    transport, note = _choose_transport(reader, config)
    image_topics = {cam.name: cam.image_topic_for(transport) for cam in config.cameras}
    try:
        reader.require_topics({topic: [IMAGE_MSGTYPES[transport]] for topic in image_topics.values()})
    except BagError as exc:
        raise BagError(
            f"{exc} -- dfmvr replay needs the image topic of every camera in cameras.names "
            f"{list(config.camera_names)} (set cameras.<name>.namespace / image_topic or input.image_transport to "
            "match the bag)"
        ) from None
    landmark_topics: dict[str, str] = {}
    if landmark_prefix is not None:
        landmark_topics = {c: landmarks_topic(c, landmark_prefix) for c in config.camera_names}
        try:
            reader.require_topics({t: [LANDMARKS_MSGTYPE] for t in landmark_topics.values()})
        except BagError as exc:
            raise BagError(
                f"{exc} -- the landmarks were asked to come from the bag ({landmark_prefix}/<camera>, written by "
                "dfmvr make-bag); use the detector instead"
            ) from None
    return transport, note, image_topics, landmark_topics


def check_bag(
    bag: str | Path, node_config: NodeConfig, *, landmark_topic_prefix: str | None = None, distro: str = "humble"
) -> dict[str, str]:
    """Check, before loading any model, that ``bag`` opens and has what :func:`replay_bag` needs.

    Returns:
        ``{camera: image topic}`` that will be read.

    Raises:
        BagError: as :func:`replay_bag`.
    """
    with BagReader(bag, default_distro=distro) as reader:
        return _input_topics(reader, node_config, landmark_topic_prefix)[2]


def _ticks(next_ns: int, now_ns: int, period_ns: int, limit: int = 100) -> tuple[list[int], int]:
    """Timer ticks due by ``now_ns`` (at most ``limit``: a long gap in the bag fires once per ``limit``) and the next
    tick after ``now_ns``."""
    ticks = []
    while next_ns <= now_ns and len(ticks) < limit:
        ticks.append(next_ns)
        next_ns += period_ns
    if next_ns <= now_ns:
        next_ns += ((now_ns - next_ns) // period_ns + 1) * period_ns
    return ticks, next_ns


def _sync_stats(stats: Any) -> dict[str, Any]:
    return {
        "received": dict(stats.received),
        "complete_sets": stats.complete_sets,
        "partial_sets": stats.partial_sets,
        "missing_in_partial_sets": dict(stats.missing),
        "dropped": {cam: {**dataclasses.asdict(d), "total": d.total} for cam, d in stats.drops.items()},
        "dropped_total": stats.dropped,
        "max_skew_ms": round(stats.max_skew_ns / 1e6, 3),
        "pending": dict(stats.pending),
    }


class _Replay:
    """One replay run (state shared by the reading loop and the set processing)."""

    def __init__(
        self,
        config: NodeConfig,
        reconstructor: Any,
        writer: BagWriter,
        out: Path,
        *,
        landmark_prefix: str | None,
        overlay_every: int,
        debug_topics: bool,
        evaluate: bool,
        evaluate_every: int,
        max_sets: int | None,
        landmark_indices: np.ndarray | None,
    ) -> None:
        self.config = config
        self.reconstructor = reconstructor
        self.writer = writer
        self.types = writer.types
        self.out = out
        self.landmark_prefix = landmark_prefix
        self.overlay_every = overlay_every
        self.debug_topics = debug_topics
        self.evaluate = evaluate
        self.evaluate_every = evaluate_every
        self.max_sets = max_sets
        self.landmark_indices = landmark_indices
        self.order = tuple(reconstructor.camera_names)
        self.faces = np.asarray(reconstructor.faces)
        mean = getattr(reconstructor, "mean_vertices", None)
        self.mean_vertices = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.synchronizer = RigSynchronizer(config.synchronizer_config())
        self.monitor = PipelineMonitor(window_s=max(5.0, 5 * config.publish.diagnostics_period_s))
        self.gt = GroundTruthBuffer(tolerance_ns=config.synchronizer_config().slop_ns)
        self.intrinsics: dict[str, Any] = {}
        self.info_problems: dict[str, str] = {}
        self.landmarks: dict[str, dict[int, np.ndarray]] = {c: {} for c in self.order}
        self.frames_read = {c: 0 for c in self.order}
        self.last_stamp: dict[str, int] = {}
        self.stamp_intervals: dict[str, deque[int]] = {c: deque(maxlen=1000) for c in self.order}
        self.bad_frames = {c: 0 for c in self.order}
        self.bad_frame_errors: list[str] = []
        self.landmarks_missing = {c: 0 for c in self.order}
        self.valid_views = {c: 0 for c in self.order}
        self.stage_ms: dict[str, list[float]] = {}
        self.per_set: list[dict[str, Any]] = []
        self.evaluations: list[SetEvaluation] = []
        self.evaluation_notes: set[str] = set()
        self.overlays: list[str] = []
        self.meshes: list[str] = []
        self.failures: list[str] = []
        self.sets_failed = 0
        self.sets_with_face = 0
        self.pose_sources: dict[str, int] = {}  # sets whose head pose came from the rig or the network
        self.last_marker_ns: int | None = None
        self.last_overlay_ns: int | None = None
        self.stop = False
        self.diagnostics_enabled = False
        self.output_types = {
            key: MSGTYPES[key]
            for key in (*_ALWAYS_OUTPUTS, *(_DEBUG_OUTPUTS if debug_topics else ()))
            if getattr(config.publish, key)
        }

    # ------------------------------------------------------------------ inputs

    def on_image(self, camera: str, msg: Any, now_ns: int) -> None:
        self.frames_read[camera] += 1
        stamp = stamp_to_ns(msg.header.stamp)
        previous = self.last_stamp.get(camera)
        if previous is not None:
            self.stamp_intervals[camera].append(stamp - previous)
        self.last_stamp[camera] = stamp
        started = time.perf_counter()
        try:
            image = image_from_message(msg)
        except ImageEncodingError as exc:
            self.bad_frames[camera] += 1
            if len(self.bad_frame_errors) < 10:
                self.bad_frame_errors.append(f"{camera} at {now_ns} ns: {exc}")
            return
        decode_ms = (time.perf_counter() - started) * 1e3
        for matched in self.synchronizer.add(camera, stamp, _Frame(image, stamp, decode_ms), now_ns=now_ns):
            self.process(matched, now_ns)

    def measured_rates(self) -> dict[str, float | None]:
        """Per camera, the frame rate from the median interval between consecutive header stamps (robust to dropped
        frames); None with fewer than two frames."""
        rates: dict[str, float | None] = {}
        for c in self.order:
            intervals = [d for d in self.stamp_intervals[c] if d > 0]
            rates[c] = NS_PER_S / float(np.median(intervals)) if intervals else None
        return rates

    def on_camera_info(self, camera: str, msg: Any) -> None:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DistortionIgnoredWarning)
                intrinsics = intrinsics_from_camera_info(msg, on_distortion="warn")
        except DfmvrError as exc:
            self.info_problems.setdefault(camera, f"CameraInfo refused ({exc}); previous intrinsics kept")
            return
        for warning in caught:
            self.info_problems.setdefault(camera, str(warning.message))
        self.intrinsics[camera] = intrinsics

    def on_landmarks(self, camera: str, msg: Any) -> None:
        try:
            points, _visible = landmarks_from_message(msg)
        except DfmvrError as exc:
            self.info_problems.setdefault(f"{camera} landmarks", f"landmark message refused ({exc})")
            return
        table = self.landmarks[camera]
        table[stamp_to_ns(msg.header.stamp)] = points
        if len(table) > 4 * self.config.sync.queue_size:
            del table[min(table)]

    def poll(self, now_ns: int) -> None:
        for matched in self.synchronizer.poll(now_ns):
            self.process(matched, now_ns)

    def flush(self, now_ns: int) -> None:
        for matched in self.synchronizer.flush():
            self.process(matched, now_ns)

    # ------------------------------------------------------------------ one set

    def _timing(self, stage: str, ms: float) -> None:
        self.stage_ms.setdefault(stage, []).append(float(ms))

    def _on_demand(self, key: str, rate_hz: float, last_ns: int | None, now: int) -> bool:
        if key not in self.output_types:
            return False
        return rate_hz <= 0 or last_ns is None or now - last_ns >= NS_PER_S / rate_hz

    def process(self, matched: MatchedSet, now_ns: int) -> None:
        if self.stop:
            return
        index = len(self.per_set)
        started = time.perf_counter()
        frames = [matched.items.get(c) for c in self.order]
        images = [f.image if f is not None else None for f in frames]
        decode_ms = sum(f.decode_ms for f in frames if f is not None)
        use_info = self.config.input.use_camera_info
        infos = [self.intrinsics.get(c) if use_info else None for c in self.order]
        landmarks = None
        if self.landmark_prefix is not None:
            landmarks = []
            for c, f in zip(self.order, frames, strict=True):
                points = None if f is None else self.landmarks[c].get(f.stamp_ns)
                if f is not None and points is None:
                    self.landmarks_missing[c] += 1
                landmarks.append(points)
        entry: dict[str, Any] = {
            "index": index,
            "stamp_ns": matched.stamp_ns,
            "cameras": list(matched.cameras),
            "complete": matched.complete,
            "skew_ms": round(matched.skew_ns / 1e6, 3),
            "processed_at_ns": now_ns,
            "sync_delay_ms": round((now_ns - matched.stamp_ns) / 1e6, 3),
        }
        self.per_set.append(entry)
        publish = self.config.publish
        with_marker = self._on_demand("marker", publish.marker_rate_hz, self.last_marker_ns, now_ns)
        with_overlay = self._on_demand("overlay", publish.overlay_rate_hz, self.last_overlay_ns, now_ns)
        try:
            reconstruction = self.reconstructor.reconstruct(images, infos, landmarks=landmarks)
            t_reconstructed = time.perf_counter()
            outputs = build_outputs(
                self.types,
                reconstruction,
                matched.stamp_ns,
                self.config,
                with_marker=with_marker,
                with_overlay=with_overlay,
                overlay_images=images if with_overlay else None,
                faces=self.faces,
            )
        except DfmvrError as exc:  # bad input for this set (e.g. an image not matching its intrinsics): count it
            text = f"{type(exc).__name__}: {exc}"
            self.sets_failed += 1
            if len(self.failures) < 10:
                self.failures.append(f"set {index} ({matched.stamp_ns} ns): {text}")
            self.monitor.record_failure(now_ns, text)
            entry["error"] = text
            self._check_max_sets()
            return
        for output in outputs:
            self.writer.write(output.topic, now_ns, output.message)
        if with_marker and reconstruction.ok:
            self.last_marker_ns = now_ns
        if with_overlay:
            self.last_overlay_ns = now_ns
        t_outputs = time.perf_counter()
        processing_ns = round((t_outputs - started) * 1e9)
        self.monitor.record(
            stamp_ns=matched.stamp_ns,
            done_ns=now_ns + processing_ns,
            processing_ns=processing_ns,
            camera_names=tuple(reconstruction.camera_names),
            valid=tuple(bool(v) for v in reconstruction.valid),
            reasons=tuple(reconstruction.reasons),
            ok=bool(reconstruction.ok),
            pose_source=reconstruction.pose_source if reconstruction.ok else "",
            metric_scale=reconstruction.metric_scale if reconstruction.ok else None,
        )
        entry["ok"] = bool(reconstruction.ok)
        entry["valid"] = {c: bool(v) for c, v in zip(reconstruction.camera_names, reconstruction.valid, strict=True)}
        reasons = {c: r for c, r in zip(reconstruction.camera_names, reconstruction.reasons, strict=True) if r}
        if reasons:
            entry["reasons"] = reasons
        for c, v in entry["valid"].items():
            self.valid_views[c] += int(v)
        if reconstruction.ok:
            self.sets_with_face += 1
            entry["pose_source"] = reconstruction.pose_source
            entry["metric_scale"] = round(float(reconstruction.metric_scale), 5)
            if reconstruction.pose_note:
                entry["pose_note"] = reconstruction.pose_note
            self.pose_sources[reconstruction.pose_source] = self.pose_sources.get(reconstruction.pose_source, 0) + 1
        timings = {"image_decode": decode_ms}
        timings.update({f"reconstruct.{k}": float(v) for k, v in reconstruction.timings_ms.items()})
        timings["outputs"] = (t_outputs - t_reconstructed) * 1e3
        timings["pipeline"] = (t_outputs - started) * 1e3 + decode_ms
        if reconstruction.ok and self.evaluate and index % self.evaluate_every == 0:
            t_eval = time.perf_counter()
            evaluation = self._evaluate(reconstruction, matched.stamp_ns)
            if evaluation is not None:
                self.evaluations.append(evaluation)
                entry["evaluation"] = evaluation.to_dict()
                timings["evaluation"] = (time.perf_counter() - t_eval) * 1e3
        if self.overlay_every and index % self.overlay_every == 0:
            overlay = self._write_overlay(index, matched.stamp_ns, reconstruction, images)
            if overlay is not None:
                entry["overlay"] = overlay
        timings["set_total"] = (time.perf_counter() - started) * 1e3 + decode_ms
        for stage, ms in timings.items():
            self._timing(stage, ms)
        entry["timings_ms"] = {k: round(v, 3) for k, v in timings.items()}
        self._check_max_sets()

    def _check_max_sets(self) -> None:
        if self.max_sets is not None and len(self.per_set) >= self.max_sets:
            self.stop = True

    def _evaluate(self, reconstruction: Any, stamp_ns: int) -> SetEvaluation | None:
        found = self.gt.lookup(stamp_ns)
        if found is None:
            if self.gt.poses_seen or self.gt.meshes_seen:
                self.evaluation_notes.add("some sets had no ground truth within the slop of their stamp")
            return None
        gt_stamp, T_gt, vertices = found
        if self.landmark_indices is None or len(vertices) != len(reconstruction.vertices_rig):
            self.evaluation_notes.add(
                f"the ground-truth mesh has {len(vertices)} vertices, the model {len(reconstruction.vertices_rig)} "
                "(or no landmark indices): the shape metrics need the same topology; only pose errors are given"
            )
        return evaluate_set(
            reconstruction,
            self.faces,
            gt_stamp,
            T_gt,
            vertices,
            self.gt.faces,
            self.landmark_indices,
            mean_vertices=self.mean_vertices,
        )

    def _write_overlay(self, index: int, stamp_ns: int, reconstruction: Any, images: list[Any]) -> str | None:
        """``overlays/<index>_<stamp>.png``: the mesh over each view, side by side (a black panel for a missing
        view)."""
        from dfmvr_core.inference.overlay import draw_overlay, side_by_side
        from dfmvr_core.inference.result_files import overlay_images, write_png

        pictures = overlay_images(reconstruction, images, self.faces)
        present = [p for p in pictures if p is not None]
        if not present:
            return None
        panels = []
        for name, picture in zip(reconstruction.camera_names, pictures, strict=True):
            if picture is None:
                blank = np.zeros_like(present[0])
                picture = draw_overlay(
                    blank, np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.eye(3), label=f"{name}: missing image"
                )
            panels.append(picture)
        relative = Path(OVERLAYS) / f"{index:06d}_{stamp_ns}.png"
        (self.out / OVERLAYS).mkdir(parents=True, exist_ok=True)
        write_png(self.out / relative, side_by_side(panels))
        self.overlays.append(str(relative))
        self._write_mesh(index, stamp_ns, reconstruction)
        return str(relative)

    def _write_mesh(self, index: int, stamp_ns: int, reconstruction: Any) -> None:
        """``meshes/<index>_<stamp>.ply``: the reconstructed mesh in the rig frame (metres), next to each overlay."""
        from dfmvr_core.mesh_io import write_mesh

        if reconstruction.vertices_rig is None:
            return
        relative = Path(MESHES) / f"{index:06d}_{stamp_ns}.ply"
        (self.out / MESHES).mkdir(parents=True, exist_ok=True)
        write_mesh(self.out / relative, reconstruction.vertices_rig, self.faces)
        self.meshes.append(str(relative))

    # ------------------------------------------------------------------ diagnostics

    def diagnostics(self, now_ns: int) -> None:
        if not self.diagnostics_enabled:
            return
        snapshot = self.monitor.snapshot(
            now_ns,
            backend=str(self.reconstructor.backend_name),
            state="replay",
            sync=self.synchronizer.stats,
            extra={"bad_frames": sum(self.bad_frames.values())},
        )
        output = diagnostics_message(self.types, now_ns, self.config, snapshot)
        self.writer.write(output.topic, now_ns, output.message)


def replay_bag(
    bag: str | Path,
    out: str | Path,
    node_config: NodeConfig,
    reconstructor: Any,
    *,
    distro: str | None = None,
    storage: str | None = None,
    max_sets: int | None = None,
    overlay_every: int = 10,
    landmark_topic_prefix: str | None = None,
    landmark_source: str | None = None,
    debug_topics: bool = False,
    evaluate: bool = True,
    evaluate_every: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    landmark_indices: np.ndarray | None = None,
    info: dict[str, Any] | None = None,
    on_message: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Replay ``bag`` through ``reconstructor`` as ``dfmvr_node`` configured by ``node_config`` would process it.

    Writes ``out/output_bag/`` (rosbag2, the node's output topics), ``out/report.json`` and
    ``out/overlays/<set index>_<stamp>.png`` every ``overlay_every`` sets (see the module docstring).

    Args:
        bag: the input bag (directory, or a ``.db3``/``.mcap`` file).
        out: the output folder (created).
        node_config: topics, synchronizer, outputs (``reconstructor.*`` is not used here: ``reconstructor`` is).
        reconstructor: a :class:`~dfmvr_core.inference.reconstructor.FaceReconstructor` (or anything with
            ``camera_names``, ``reference_camera``, ``faces``, ``mean_vertices``, ``backend_name`` and
            ``reconstruct(images, camera_infos, landmarks=...)``).
        distro: ``humble``/``jazzy`` of the output bag (and the fallback message definitions when reading); None =
            the input bag's (metadata v9+ → jazzy, else humble).
        storage: ``sqlite3``/``mcap`` of the output bag; None = the input's.
        max_sets: stop after this many sets (None: all).
        overlay_every: write an overlay PNG every this many sets (0: none).
        landmark_topic_prefix: take the 2D landmarks from ``<prefix>/<camera>`` (e.g.
            :data:`~dfmvr_ros.replay_ground_truth.GT_LANDMARKS_PREFIX`) instead of the detector.
        landmark_source: how the report names the landmarks' source (default: from ``landmark_topic_prefix`` and
            the reconstructor's detector).
        debug_topics: also write the marker and overlay topics (the node builds them only for subscribers).
        evaluate: evaluate against ``/ground_truth/*`` when the bag has it.
        evaluate_every: evaluate every this many sets (the metric's ICP costs about twice the small network).
        overwrite: replace an existing ``out/output_bag``.
        progress: tqdm progress bar over the bag's messages.
        landmark_indices: ``(68,)`` landmark vertex indices for the evaluation's initial alignment (default:
            ``reconstructor.model.landmarks68`` when there is one).
        info: extra key/values for the report (e.g. the network, checkpoint).
        on_message: called with the count of messages read after each one (tests: interrupt mid-way).

    Returns:
        :class:`ReplayReport`; ``report.json`` is written in every case where the bag could be opened.

    Raises:
        BagError: the bag cannot be opened, lacks an image topic of a configured camera (the message lists what the
            bag has), or lacks the landmark topics asked for; ``out/output_bag`` exists without ``overwrite``.
        ConfigError: the reconstructor's rig does not match the node configuration, bad arguments.
    """
    from tqdm import tqdm

    bag = Path(bag)
    out = Path(out)
    if max_sets is not None and (isinstance(max_sets, bool) or not isinstance(max_sets, int) or max_sets < 1):
        raise ConfigError(f"max_sets: expected a positive integer or None, got {max_sets!r}")
    if isinstance(evaluate_every, bool) or not isinstance(evaluate_every, int) or evaluate_every < 1:
        raise ConfigError(f"evaluate_every: expected a positive integer, got {evaluate_every!r}")
    if isinstance(overlay_every, bool) or not isinstance(overlay_every, int) or overlay_every < 0:
        raise ConfigError(f"overlay_every: expected a non-negative integer (0 = no overlays), got {overlay_every!r}")
    node_config.check_rig(tuple(reconstructor.camera_names), reconstructor.reference_camera)
    if node_config.frames.target_frame:
        raise ConfigError(
            f"frames.target_frame: {node_config.frames.target_frame!r} needs tf2 lookups, which the ROS-free replay "
            "does not do; set it to '' (outputs in the reference camera frame) or replay with ROS 2 "
            "(launch/replay.launch.py)"
        )
    wall_start = time.perf_counter()
    reader = BagReader(bag, default_distro=distro or "humble")
    with reader:
        transport, transport_note, image_topics, landmark_topics = _input_topics(
            reader, node_config, landmark_topic_prefix
        )
        info_topics = {c: t for c, t in node_config.camera_info_topics().items() if t in reader.topics}
        has_gt = evaluate and GT_MESH_TOPIC in reader.topics and GT_HEAD_POSE_TOPIC in reader.topics
        gt_topics = [t for t in (GT_HEAD_POSE_TOPIC, GT_MESH_TOPIC, GT_TOPOLOGY_TOPIC) if has_gt and t in reader.topics]
        routes: dict[str, tuple[str, str | None]] = {}
        for c, t in image_topics.items():
            routes[t] = ("image", c)
        for c, t in info_topics.items():
            routes[t] = ("info", c)
        for c, t in landmark_topics.items():
            routes[t] = ("landmarks", c)
        for t in gt_topics:
            routes[t] = (t, None)
        out_distro = distro or _distro_of(reader)
        out_storage = storage or reader.storage
        if landmark_indices is None and getattr(reconstructor, "model", None) is not None:
            landmark_indices = np.asarray(reconstructor.model.landmarks68.cpu().numpy(), dtype=np.int64)
        total = sum(reader.topic_counts.get(t, 0) for t in routes)

        out.mkdir(parents=True, exist_ok=True)
        output_bag = out / OUTPUT_BAG
        error: str | None = None
        interrupted = False
        messages_read = 0
        last_ns = reader.start_ns or 0
        with BagWriter(output_bag, distro=out_distro, storage=out_storage, overwrite=overwrite) as writer:
            run = _Replay(
                node_config,
                reconstructor,
                writer,
                out,
                landmark_prefix=landmark_topic_prefix,
                overlay_every=overlay_every,
                debug_topics=debug_topics,
                evaluate=evaluate,
                evaluate_every=evaluate_every,
                max_sets=max_sets,
                landmark_indices=landmark_indices,
            )
            for key, msgtype in run.output_types.items():
                writer.add_topic(getattr(node_config.topics, key), msgtype)
            if node_config.publish.topology:
                topology = topology_message(
                    writer.types, node_config, run.faces, np.asarray(reconstructor.mean_vertices)
                )
                writer.add_topic(topology.topic, topology.msgtype, latched=True)
                writer.write(topology.topic, last_ns, topology.message)
            writer.add_topic(node_config.topics.diagnostics, MSGTYPES["diagnostics"])
            run.diagnostics_enabled = True
            poll_period = round(NS_PER_S / node_config.sync.poll_rate_hz)
            diag_period = round(NS_PER_S * node_config.publish.diagnostics_period_s)
            next_poll = last_ns + poll_period
            next_diag = last_ns + diag_period
            bar = tqdm(total=total, unit="msg", desc="replay", disable=not progress)
            try:
                for message in reader.messages(list(routes)):
                    now = message.timestamp_ns
                    poll_ticks, next_poll = _ticks(next_poll, now, poll_period)
                    for tick in poll_ticks:
                        if not run.stop:
                            run.poll(tick)
                    diag_ticks, next_diag = _ticks(next_diag, now, diag_period)
                    for tick in diag_ticks:
                        run.diagnostics(tick)
                    kind, camera = routes[message.topic]
                    if kind == "image":
                        run.on_image(camera, message.msg, now)
                    elif kind == "info":
                        run.on_camera_info(camera, message.msg)
                    elif kind == "landmarks":
                        run.on_landmarks(camera, message.msg)
                    elif kind == GT_HEAD_POSE_TOPIC:
                        run.gt.add_pose(stamp_to_ns(message.msg.header.stamp), matrix_from_pose(message.msg))
                    elif kind == GT_MESH_TOPIC:
                        run.gt.add_mesh(stamp_to_ns(message.msg.header.stamp), points_from_cloud(message.msg))
                    elif kind == GT_TOPOLOGY_TOPIC:
                        run.gt.faces = mesh_from_topology(message.msg)[0]
                    messages_read += 1
                    last_ns = now
                    bar.update(1)
                    if on_message is not None:
                        on_message(messages_read)
                    if run.stop:
                        break
            except BagError as exc:
                error = str(exc)
                LOG.error("%s; keeping the %d set(s) processed so far", exc, len(run.per_set))
            except KeyboardInterrupt:
                error = "interrupted (Ctrl-C)"
                interrupted = True
            finally:
                bar.close()
            if not interrupted:
                run.flush(last_ns)
            run.diagnostics(last_ns)
            output_counts = writer.message_counts
        wall_s = time.perf_counter() - wall_start
        bag_info = {
            "path": str(bag),
            "storage": reader.storage,
            "metadata_version": reader.metadata_version,
            "message_count": reader.message_count,
            "start_ns": reader.start_ns,
            "duration_s": None if reader.start_ns is None else round((reader.end_ns - reader.start_ns) / 1e9, 6),
            "topics": {
                t: {"type": m, "count": reader.topic_counts.get(t, 0)} for t, m in sorted(reader.topics.items())
            },
        }
    complete = error is None
    landmarks_label = landmark_source or (
        LANDMARKS_FROM_GROUND_TRUTH
        if landmark_topic_prefix is not None
        else f"detector ({getattr(getattr(reconstructor, 'config', None), 'detector', 'unknown')})"
    )
    sets = len(run.per_set)
    intrinsics_source = {}
    for c in run.order:
        if not node_config.input.use_camera_info:
            intrinsics_source[c] = "rig (input.use_camera_info is false)"
        elif c in run.intrinsics:
            intrinsics_source[c] = f"CameraInfo ({info_topics[c]})"
        elif c in info_topics:
            intrinsics_source[c] = "rig (no usable CameraInfo)"
        else:
            intrinsics_source[c] = f"rig (no CameraInfo topic {node_config.camera_info_topics()[c]} in the bag)"
    rates = run.measured_rates()
    expected = node_config.sync.expected_rate_hz
    warnings_list = []
    slow = {c: r for c, r in rates.items() if r is not None and abs(r - expected) > 0.2 * expected}
    if slow:
        measured = ", ".join(f"{c} {r:.1f} Hz" for c, r in slow.items())
        warnings_list.append(
            f"sync.expected_rate_hz is {expected:g} but the cameras run at {measured}; the synchronizer's waits and "
            f"slop assume the configured rate (pass -p sync.expected_rate_hz=... to match the bag)"
        )
    if transport_note:
        warnings_list.append(transport_note)
    warnings_list.extend(f"{c}: {p}" for c, p in run.info_problems.items())
    warnings_list.extend(sorted(run.evaluation_notes))
    data: dict[str, Any] = {
        "complete": complete,
        "error": error,
        "bag": bag_info,
        "output_bag": str(output_bag),
        "output_distro": out_distro,
        "output_storage": out_storage,
        "output_topics": {t: n for t, n in sorted(output_counts.items())},
        "backend": str(reconstructor.backend_name),
        "landmarks": landmarks_label,
        "image_transport": transport,
        "image_topics": image_topics,
        "intrinsics": intrinsics_source,
        "messages_read": messages_read,
        "frames": {
            c: {"received": run.frames_read[c], "bad": run.bad_frames[c], "landmarks_missing": run.landmarks_missing[c]}
            for c in run.order
        },
        "bad_frame_errors": run.bad_frame_errors,
        "sets": {
            "processed": sets,
            "complete": sum(1 for s in run.per_set if s["complete"]),
            "partial": sum(1 for s in run.per_set if not s["complete"]),
            "with_face": run.sets_with_face,
            "failed": run.sets_failed,
            "max_sets": max_sets,
        },
        "failures": run.failures,
        "sync": {
            "config": {
                "expected_rate_hz": expected,
                "slop_ms": round(run.synchronizer.config.slop_ns / 1e6, 3),
                "queue_size": node_config.sync.queue_size,
                "partial_timeout_s": node_config.sync.partial_timeout_s,
            },
            "measured_rate_hz": {c: None if r is None else round(r, 3) for c, r in rates.items()},
            **_sync_stats(run.synchronizer.stats),
        },
        "drops_per_camera": {
            c: {
                "synchronizer": run.synchronizer.stats.drops[c].total,
                "bad_frames": run.bad_frames[c],
                "missing_in_partial_sets": run.synchronizer.stats.missing.get(c, 0),
            }
            for c in run.order
        },
        "valid_views": dict(run.valid_views),
        "pose_source": dict(sorted(run.pose_sources.items())),
        "latency_ms": {stage: _percentiles(v) for stage, v in sorted(run.stage_ms.items())},
        "throughput": {
            "wall_s": round(wall_s, 3),
            "sets_per_s": round(sets / wall_s, 3) if wall_s > 0 else None,
        },
        "evaluation": summary(run.evaluations) if run.evaluations else None,
        "overlays": run.overlays,
        "meshes": run.meshes,
        "warnings": warnings_list,
        "per_set": run.per_set,
        **(info or {}),
    }
    report_path = out / REPORT
    write_json_atomic(report_path, data)
    report = ReplayReport(
        complete=complete,
        error=error,
        sets_processed=sets,
        sets_with_face=run.sets_with_face,
        sets_failed=run.sets_failed,
        interrupted=interrupted,
        output_bag=output_bag,
        report_path=report_path,
        data=data,
    )
    return report
