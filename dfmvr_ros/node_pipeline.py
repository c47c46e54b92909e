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

"""The node's work, without rclpy: frames in, synchronized sets to one model-owning worker, messages out.

:class:`NodePipeline` is everything ``dfmvr_node`` does between its subscriptions and its publishers; the rclpy
node (:mod:`dfmvr_ros.node`) only wires ROS to it (callbacks → :meth:`NodePipeline.on_image` /
:meth:`~NodePipeline.on_camera_info` / :meth:`~NodePipeline.poll`, :class:`~dfmvr_ros.outputs.Output` →
publisher). Keeping it free of rclpy lets the tests drive the node's whole per-frame logic on machines without ROS
(messages built with :func:`dfmvr_ros.messages.rosbags_types`).

Threads: the subscription callbacks and the poll timer call :meth:`on_image` / :meth:`poll` (serialized by a lock;
the synchronizer is not thread-safe); matched sets go to a :class:`~dfmvr_core.sync.worker.LatestWinsWorker` whose
one thread owns the reconstructor (decoding, inference, message building and publishing happen there). When the
worker is busy the newest set replaces the waiting one (counted as skipped in ``/diagnostics``).

Why not message_filters' ``ApproximateTimeSynchronizer``: on a camera rig it pairs frames of different instants for
good after one dropped frame when its slop exceeds half a period, it emits sets out of time order when arrivals are
shuffled, and it has no degraded mode for a camera that stopped (see :mod:`dfmvr_core.sync`); the node therefore
subscribes with plain subscriptions and matches with :class:`~dfmvr_core.sync.RigSynchronizer`.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dfmvr_core.sync import MatchedSet, RigSynchronizer
from dfmvr_core.sync.worker import LatestWinsWorker
from dfmvr_ros.image_codec import image_from_message
from dfmvr_ros.messages import DistortionIgnoredWarning, MessageTypes, intrinsics_from_camera_info, stamp_to_ns
from dfmvr_ros.monitor import PipelineMonitor
from dfmvr_ros.node_config import NodeConfig
from dfmvr_ros.outputs import Output, build_outputs, diagnostics_message, topology_message

__all__ = ["Job", "NodePipeline", "TransformUnavailable"]

LOG = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000


class TransformUnavailable(Exception):
    """Raised by a ``lookup_transform`` callable when tf2 has no transform (the set's geometric outputs are skipped)."""


@dataclass(frozen=True)
class Job:
    """One matched set handed to the worker.

    Attributes:
        matched: the synchronizer's set (items are the image messages).
        intrinsics: ``{camera: PinholeIntrinsics}`` from the latest ``CameraInfo`` at hand-over time.
        submitted_ns: when it was handed over (node clock, ns).
    """

    matched: MatchedSet
    intrinsics: dict[str, Any]
    submitted_ns: int


class NodePipeline:
    """Synchronize, reconstruct and build the outputs of ``dfmvr_node``.

    Args:
        config: the validated node configuration.
        reconstructor: a :class:`~dfmvr_core.inference.reconstructor.FaceReconstructor` (or anything with
            ``camera_names``, ``reference_camera``, ``faces``, ``mean_vertices``, ``backend_name`` and
            ``reconstruct(images, camera_infos)``); only the worker thread calls ``reconstruct``.
        types: message classes (:func:`~dfmvr_ros.messages.rclpy_types` in the node).
        publish: ``publish(output)`` sends one :class:`~dfmvr_ros.outputs.Output` (called on the worker thread).
        subscription_count: ``subscription_count(topic) -> int``; the marker and the overlay are built only when
            their topic has subscribers.
        now_ns: the node's clock (ROS time, simulated during bag replays), integer ns.
        lookup_transform: ``lookup_transform(target_frame, source_frame, stamp_ns) -> (4, 4) T_target_from_source``
            raising :class:`TransformUnavailable`; required when ``frames.target_frame`` is set.
        logger: a :class:`logging.Logger` or an rclpy logger (``info``/``warning``/``error`` taking a string).
        threaded: True (the node): a worker thread processes the sets; False: :meth:`on_image` processes them
            inline (deterministic tests, offline use).

    Raises:
        ConfigError: the reconstructor's rig does not have the configured cameras/reference camera, or a target
            frame is configured without ``lookup_transform``.
    """

    def __init__(
        self,
        config: NodeConfig,
        reconstructor: Any,
        types: MessageTypes,
        *,
        publish: Callable[[Output], None],
        subscription_count: Callable[[str], int],
        now_ns: Callable[[], int],
        lookup_transform: Callable[[str, str, int], np.ndarray] | None = None,
        logger: Any = None,
        threaded: bool = True,
    ) -> None:
        from dfmvr_core.errors import ConfigError

        config.check_rig(tuple(reconstructor.camera_names), reconstructor.reference_camera)
        if config.frames.target_frame and lookup_transform is None:
            raise ConfigError("frames.target_frame: set, but no tf2 lookup is available to this pipeline")
        self.config = config
        self.reconstructor = reconstructor
        self.types = types
        self._publish = publish
        self._subscription_count = subscription_count
        self._now_ns = now_ns
        self._lookup = lookup_transform
        self._log = logger if logger is not None else LOG
        self._camera_order = tuple(reconstructor.camera_names)
        self._faces = np.asarray(reconstructor.faces)
        self.synchronizer = RigSynchronizer(config.synchronizer_config())
        self.monitor = PipelineMonitor(window_s=max(5.0, 5 * config.publish.diagnostics_period_s))
        self._lock = threading.Lock()
        self._intrinsics: dict[str, Any] = {}
        self._info_errors: dict[str, str] = {}
        self._last_clock: int | None = None
        self._last_marker_ns: int | None = None
        self._last_overlay_ns: int | None = None
        self.tf_failures = 0
        self.clock_resets = 0
        self.worker = LatestWinsWorker(self.process, name="dfmvr-model", logger=self._log) if threaded else None

    # ------------------------------------------------------------------ inputs (executor threads)

    def on_camera_info(self, camera: str, msg: Any) -> None:
        """Keep ``camera``'s latest intrinsics (used when ``input.use_camera_info``); a bad CameraInfo is logged
        (once per distinct problem) and the previous intrinsics are kept."""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DistortionIgnoredWarning)
                intrinsics = intrinsics_from_camera_info(msg, on_distortion="warn")
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            if self._info_errors.get(camera) != text:
                self._info_errors[camera] = text
                self._log.error(f"camera {camera!r}: CameraInfo refused, keeping the previous intrinsics ({text})")
            return
        for warning in caught:
            if self._info_errors.get(camera) != str(warning.message):
                self._info_errors[camera] = str(warning.message)
                self._log.warning(f"camera {camera!r}: {warning.message}")
        with self._lock:
            self._intrinsics[camera] = intrinsics

    def on_image(self, camera: str, msg: Any) -> list[MatchedSet]:
        """Feed one image message to the synchronizer; the sets it completes go to the worker. Returns them."""
        stamp_ns = stamp_to_ns(msg.header.stamp)
        with self._lock:
            now = self._clock()
            matched = self.synchronizer.add(camera, stamp_ns, msg, now_ns=now)
            jobs = self._jobs(matched, now)
        self._dispatch(jobs)
        return matched

    def poll(self) -> list[MatchedSet]:
        """Release the sets whose wait ended (partial sets while a camera is silent); call it from a timer."""
        with self._lock:
            now = self._clock()
            matched = self.synchronizer.poll(now)
            jobs = self._jobs(matched, now)
        self._dispatch(jobs)
        return matched

    def _clock(self) -> int:
        """The node clock; a jump back (a bag restarted with ``--clock``) resets the synchronizer and the window."""
        now = int(self._now_ns())
        if self._last_clock is not None and now < self._last_clock:
            self.synchronizer.reset()
            self.monitor.reset()
            self._last_marker_ns = self._last_overlay_ns = None
            self.clock_resets += 1
            self._log.warning(
                f"clock jumped back by {(self._last_clock - now) / 1e9:.3f} s (bag restarted?); synchronizer reset"
            )
        self._last_clock = now
        return now

    def _jobs(self, matched: list[MatchedSet], now: int) -> list[Job]:
        infos = dict(self._intrinsics) if self.config.input.use_camera_info else {}
        return [Job(m, infos, now) for m in matched]

    def _dispatch(self, jobs: list[Job]) -> None:
        for job in jobs:
            if self.worker is not None:
                self.worker.submit(job)
            else:
                self.process(job)

    # ------------------------------------------------------------------ the worker

    def _on_demand(self, topic: str, rate_hz: float, last_ns: int | None, now: int) -> bool:
        if self._subscription_count(topic) <= 0:
            return False
        return rate_hz <= 0 or last_ns is None or now - last_ns >= NS_PER_S / rate_hz

    def process(self, job: Job) -> list[Output]:
        """Reconstruct one set and publish its outputs (the worker thread). Returns what was published.

        A failure is recorded for ``/diagnostics`` and re-raised (the worker logs and counts it).
        """
        started = time.perf_counter()
        matched = job.matched
        try:
            images = [
                image_from_message(matched.items[name]) if name in matched.items else None
                for name in self._camera_order
            ]
            infos = [job.intrinsics.get(name) for name in self._camera_order] if job.intrinsics else None
            reconstruction = self.reconstructor.reconstruct(images, infos)
            T_target = None
            if self.config.frames.target_frame:
                try:
                    T_target = self._lookup(
                        self.config.frames.target_frame, self.config.reference_frame, matched.stamp_ns
                    )
                except TransformUnavailable as exc:
                    self.tf_failures += 1
                    self._log.warning(
                        f"no transform {self.config.reference_frame} -> {self.config.frames.target_frame} at "
                        f"{matched.stamp_ns} ns ({exc}); set skipped"
                    )
                    return []
            now = int(self._now_ns())
            publish = self.config.publish
            topics = self.config.topics
            with_marker = publish.marker and self._on_demand(
                topics.marker, publish.marker_rate_hz, self._last_marker_ns, now
            )
            with_overlay = publish.overlay and self._on_demand(
                topics.overlay, publish.overlay_rate_hz, self._last_overlay_ns, now
            )
            outputs = build_outputs(
                self.types,
                reconstruction,
                matched.stamp_ns,
                self.config,
                with_marker=with_marker,
                with_overlay=with_overlay,
                overlay_images=images if with_overlay else None,
                faces=self._faces,
                T_target_from_reference=T_target,
            )
            for output in outputs:
                self._publish(output)
            if with_marker and reconstruction.ok:
                self._last_marker_ns = now
            if with_overlay:
                self._last_overlay_ns = now
        except Exception as exc:
            self.monitor.record_failure(int(self._now_ns()), f"{type(exc).__name__}: {exc}")
            raise
        self.monitor.record(
            stamp_ns=matched.stamp_ns,
            done_ns=int(self._now_ns()),
            processing_ns=round((time.perf_counter() - started) * 1e9),
            camera_names=tuple(reconstruction.camera_names),
            valid=tuple(bool(v) for v in reconstruction.valid),
            reasons=tuple(reconstruction.reasons),
            ok=bool(reconstruction.ok),
            pose_source=reconstruction.pose_source if reconstruction.ok else "",
            metric_scale=reconstruction.metric_scale if reconstruction.ok else None,
        )
        return outputs

    # ------------------------------------------------------------------ other outputs

    def topology(self) -> Output | None:
        """The latched ``~/mesh/topology`` message (None when ``publish.topology`` is off)."""
        if not self.config.publish.topology:
            return None
        return topology_message(self.types, self.config, self._faces, np.asarray(self.reconstructor.mean_vertices))

    def diagnostics(self, state: str) -> Output:
        """The ``/diagnostics`` message now, for lifecycle state ``state``."""
        now = int(self._now_ns())
        with self._lock:
            sync_stats = self.synchronizer.stats
        snapshot = self.monitor.snapshot(
            now,
            backend=str(self.reconstructor.backend_name),
            state=state,
            sync=sync_stats,
            worker=self.worker.counters() if self.worker is not None else None,
            extra={"tf_failures": self.tf_failures, "clock_resets": self.clock_resets},
        )
        return diagnostics_message(self.types, now, self.config, snapshot)

    def close(self, timeout: float | None = 5.0) -> bool:
        """Stop the worker (the set being processed finishes); True when it has stopped."""
        return self.worker.close(timeout) if self.worker is not None else True
