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

"""Running figures of the reconstruction pipeline for ``/diagnostics`` (pure Python, no ROS).

:class:`PipelineMonitor` is told about every processed set (:meth:`PipelineMonitor.record`) and every failure, and
turns them into a :class:`DiagnosticsSnapshot` over a sliding time window: output rate, latency from the capture
stamp to the end of publishing, processing time, valid views, failures. The node (on its diagnostics timer) and the
ROS-free replay (once per output period) feed the snapshot to :func:`dfmvr_ros.outputs.diagnostics_message`.

Times are integer nanoseconds on one clock, the one the stamps use (the ROS clock, simulated time during a bag
replay), so latency is ``done_ns - stamp_ns``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DiagnosticsSnapshot", "PipelineMonitor"]

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class DiagnosticsSnapshot:
    """The pipeline's state at one moment.

    Attributes:
        now_ns: when the snapshot was taken, ns.
        backend: the reconstructor's backend name (``""`` while none is loaded).
        state: the node's lifecycle state (``unconfigured``, ``inactive``, ``active``; ``replay`` offline).
        window_s: the window the rates and means cover, seconds.
        rate_hz: processed sets per second in the window.
        latency_ms_mean, latency_ms_max: capture stamp → outputs published, ms, in the window (None: no set).
        processing_ms_mean: reconstruction + message building time, ms, in the window (None: no set).
        last_valid_views: the cameras valid in the last processed set (empty: none yet or no face).
        last_reasons: ``{camera: reason}`` of the invalid views of the last processed set.
        last_pose_source: where the last set's head pose came from (``rig`` triangulation or ``network``; "" none).
        last_metric_scale: the face-size factor the rig gave the last set (None: not measured).
        sets_processed, sets_without_face, failures: totals since start.
        failures_in_window: failures in the window.
        last_failure: the last failure's message ("" if none).
        seconds_since_output: since the last processed set (None: none yet).
        sync: the synchronizer's :class:`~dfmvr_core.sync.SyncStats` (None offline without one).
        worker: the worker's :class:`~dfmvr_core.sync.worker.WorkerCounters` (None when not threaded).
        extra: more key/values to show (e.g. TF lookup failures).
    """

    now_ns: int
    backend: str
    state: str
    window_s: float
    rate_hz: float
    latency_ms_mean: float | None
    latency_ms_max: float | None
    processing_ms_mean: float | None
    last_valid_views: tuple[str, ...]
    last_reasons: dict[str, str]
    sets_processed: int
    sets_without_face: int
    failures: int
    failures_in_window: int
    last_failure: str
    seconds_since_output: float | None
    sync: Any = None
    worker: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    last_pose_source: str = ""
    last_metric_scale: float | None = None


@dataclass(frozen=True)
class _Sample:
    done_ns: int
    latency_ns: int
    processing_ns: int


class PipelineMonitor:
    """Thread-safe accumulator of what the pipeline did (the worker records, a timer takes snapshots).

    Args:
        window_s: length of the sliding window for rates and means, seconds (> 0).
    """

    def __init__(self, window_s: float = 5.0) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s: expected a positive number of seconds, got {window_s!r}")
        self._window_ns = round(window_s * NS_PER_S)
        self._lock = threading.Lock()
        self._samples: deque[_Sample] = deque()
        self._failure_times: deque[int] = deque()
        self._processed = 0
        self._no_face = 0
        self._failures = 0
        self._last_failure = ""
        self._last_done: int | None = None
        self._last_valid: tuple[str, ...] = ()
        self._last_reasons: dict[str, str] = {}
        self._last_pose: tuple[str, float | None] = ("", None)

    def record(
        self,
        *,
        stamp_ns: int,
        done_ns: int,
        processing_ns: int,
        camera_names: Sequence[str],
        valid: Sequence[bool],
        reasons: Sequence[str | None],
        ok: bool,
        pose_source: str = "",
        metric_scale: float | None = None,
    ) -> None:
        """One processed set: its capture stamp, when its outputs were published, how long it took, its views, where
        its head pose came from (and the rig's face-size factor)."""
        with self._lock:
            self._samples.append(_Sample(int(done_ns), int(done_ns) - int(stamp_ns), int(processing_ns)))
            self._processed += 1
            if not ok:
                self._no_face += 1
            self._last_done = int(done_ns)
            self._last_pose = (str(pose_source), None if metric_scale is None else float(metric_scale))
            self._last_valid = tuple(name for name, v in zip(camera_names, valid, strict=True) if v)
            self._last_reasons = {
                name: str(reason)
                for name, v, reason in zip(camera_names, valid, reasons, strict=True)
                if not v and reason is not None
            }
            self._trim(int(done_ns))

    def record_failure(self, now_ns: int, message: str) -> None:
        """A set whose processing raised."""
        with self._lock:
            self._failures += 1
            self._failure_times.append(int(now_ns))
            self._last_failure = str(message)
            self._trim(int(now_ns))

    def snapshot(
        self,
        now_ns: int,
        *,
        backend: str,
        state: str,
        sync: Any = None,
        worker: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> DiagnosticsSnapshot:
        """The figures at ``now_ns`` (the window ends there)."""
        with self._lock:
            self._trim(int(now_ns))
            samples = list(self._samples)
            window_s = self._window_ns / NS_PER_S
            latencies = [s.latency_ns / 1e6 for s in samples]
            return DiagnosticsSnapshot(
                now_ns=int(now_ns),
                backend=backend,
                state=state,
                window_s=window_s,
                rate_hz=len(samples) / window_s,
                latency_ms_mean=sum(latencies) / len(latencies) if latencies else None,
                latency_ms_max=max(latencies) if latencies else None,
                processing_ms_mean=sum(s.processing_ns for s in samples) / len(samples) / 1e6 if samples else None,
                last_valid_views=self._last_valid,
                last_reasons=dict(self._last_reasons),
                sets_processed=self._processed,
                sets_without_face=self._no_face,
                failures=self._failures,
                failures_in_window=len(self._failure_times),
                last_failure=self._last_failure,
                seconds_since_output=None if self._last_done is None else (int(now_ns) - self._last_done) / NS_PER_S,
                sync=sync,
                worker=worker,
                extra=dict(extra or {}),
                last_pose_source=self._last_pose[0],
                last_metric_scale=self._last_pose[1],
            )

    def reset(self) -> None:
        """Forget the window (e.g. after the clock jumped back); totals are kept."""
        with self._lock:
            self._samples.clear()
            self._failure_times.clear()
            self._last_done = None

    def _trim(self, now_ns: int) -> None:
        start = now_ns - self._window_ns
        while self._samples and self._samples[0].done_ns <= start:
            self._samples.popleft()
        while self._failure_times and self._failure_times[0] <= start:
            self._failure_times.popleft()
