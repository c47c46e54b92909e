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

"""PipelineMonitor figures and the /diagnostics message built from them."""

from __future__ import annotations

import pytest
from ros_output_helpers import CAMERAS, node_config

from dfmvr_core.sync import RigSynchronizer
from dfmvr_core.sync.worker import WorkerCounters
from dfmvr_ros.messages import DIAGNOSTIC_LEVELS, rosbags_types, stamp_to_ns
from dfmvr_ros.monitor import PipelineMonitor
from dfmvr_ros.outputs import diagnostics_message

MS = 1_000_000
S = 1_000_000_000
T0 = 1_000 * S


def record(monitor, stamp_ns, latency_ms, processing_ms=20.0, valid=(True, True, True)):
    monitor.record(
        stamp_ns=stamp_ns,
        done_ns=stamp_ns + round(latency_ms * MS),
        processing_ns=round(processing_ms * MS),
        camera_names=CAMERAS,
        valid=valid,
        reasons=tuple(None if v else "no face detected" for v in valid),
        ok=any(valid),
    )


def statuses(types, config, snapshot):
    output = diagnostics_message(types, T0, config, snapshot)
    assert output.topic == "/diagnostics" and output.msgtype == "diagnostic_msgs/msg/DiagnosticArray"
    msg = types.typestore.deserialize_cdr(types.typestore.serialize_cdr(output.message, output.msgtype), output.msgtype)
    assert stamp_to_ns(msg.header.stamp) == T0
    return {s.name: (s.level, s.message, {kv.key: kv.value for kv in s.values}) for s in msg.status}


def test_monitor_rate_latency_window():
    monitor = PipelineMonitor(window_s=2.0)
    for i in range(40):  # 20 Hz for 2 s, latency 30..69 ms
        record(monitor, T0 + i * 50 * MS, latency_ms=30 + i)
    last_done = T0 + 39 * 50 * MS + 69 * MS
    snap = monitor.snapshot(last_done, backend="onnxruntime:CPUExecutionProvider", state="active")
    assert snap.rate_hz == pytest.approx(20.0, abs=1.0)
    assert snap.latency_ms_max == pytest.approx(69.0)
    assert snap.processing_ms_mean == pytest.approx(20.0)
    assert snap.sets_processed == 40 and snap.seconds_since_output == 0.0
    later = monitor.snapshot(last_done + 3 * S, backend="x", state="active")
    assert later.rate_hz == 0.0 and later.latency_ms_mean is None and later.seconds_since_output == 3.0
    assert later.sets_processed == 40  # totals survive the window


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_levels_and_values(distro):
    types = rosbags_types(distro)
    config = node_config()
    monitor = PipelineMonitor(window_s=5.0)
    name = "dfmvr: reconstruction"

    snap = monitor.snapshot(T0, backend="", state="unconfigured")
    assert statuses(types, config, snap)[name][0] == DIAGNOSTIC_LEVELS["ERROR"]

    snap = monitor.snapshot(T0, backend="torch:cpu:fp32", state="active")
    assert statuses(types, config, snap)[name][0] == DIAGNOSTIC_LEVELS["STALE"]

    record(monitor, T0 - 100 * MS, latency_ms=40)
    level, message, values = statuses(types, config, monitor.snapshot(T0, backend="torch:cpu:fp32", state="active"))[
        name
    ]
    assert level == DIAGNOSTIC_LEVELS["OK"]
    assert values["backend"] == "torch:cpu:fp32" and values["valid_views"] == "left,front,right"
    assert values["latency_ms_mean"] == "40.0" and values["valid_view_count"] == "3/3"
    assert "pose_source" not in values  # not reported by this set

    monitor.record(
        stamp_ns=T0 - 80 * MS, done_ns=T0 - 40 * MS, processing_ns=20 * MS, camera_names=CAMERAS,
        valid=(True, True, True), reasons=(None, None, None), ok=True, pose_source="rig", metric_scale=1.0432,
    )  # fmt: skip
    values = statuses(types, config, monitor.snapshot(T0, backend="b", state="active"))[name][2]
    assert values["pose_source"] == "rig" and values["metric_scale"] == "1.0432"

    record(monitor, T0 - 50 * MS, latency_ms=40, valid=(True, False, True))
    level, message, values = statuses(types, config, monitor.snapshot(T0, backend="b", state="active"))[name]
    assert level == DIAGNOSTIC_LEVELS["WARN"] and "2/3" in message
    assert values["invalid.front"] == "no face detected"

    record(monitor, T0 - 10 * MS, latency_ms=5, valid=(False, False, False))
    level, message, values = statuses(types, config, monitor.snapshot(T0, backend="b", state="active"))[name]
    assert level == DIAGNOSTIC_LEVELS["WARN"] and "no face" in message and values["sets_without_face"] == "1"

    monitor.record_failure(T0, "ShapeError: image: expected (H, W, 3) uint8")
    worker = WorkerCounters(submitted=10, processed=6, skipped=3, failed=1, pending=0, busy=False)
    level, message, values = statuses(
        types, config, monitor.snapshot(T0, backend="b", state="active", worker=worker, extra={"tf_failures": 2})
    )[name]
    assert level == DIAGNOSTIC_LEVELS["ERROR"] and "ShapeError" in message
    assert values["sets_skipped_busy"] == "3" and values["tf_failures"] == "2"


def test_synchronizer_status_reports_drops_and_partial_sets():
    types = rosbags_types("humble")
    config = node_config()
    sync = RigSynchronizer(config.synchronizer_config())
    period = 33_333_333
    for k in range(10):
        for cam in CAMERAS:
            if cam == "right" and k == 2:
                continue  # right drops one frame -> a partial set after the timeout
            sync.add(cam, T0 + k * period, object(), now_ns=T0 + k * period)
    sync.add("left", T0, object())  # stale: older than emitted sets
    stats = sync.stats
    assert stats.partial_sets == 1
    snap = PipelineMonitor().snapshot(T0, backend="b", state="active", sync=stats)
    level, message, values = statuses(types, config, snap)["dfmvr: synchronizer"]
    assert level == DIAGNOSTIC_LEVELS["WARN"]
    assert values["partial_sets"] == "1" and values["missing_in_partial.right"] == "1"
    assert values["dropped.left.stale"] == "1" and values["received.right"] == "9"
    assert "1 partial" in message
