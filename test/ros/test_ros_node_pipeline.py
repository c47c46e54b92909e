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

"""NodePipeline: the node's per-frame logic (sync → one worker → outputs) driven without rclpy."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
from ros_output_helpers import (
    CAMERAS,
    INTRINSICS,
    MESH_FACES,
    FakeReconstructor,
    fake_reconstruction,
    gray_images,
    node_config,
    rigid,
)

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_ros.messages import (
    DIAGNOSTIC_LEVELS,
    camera_info_message,
    image_message,
    matrix_from_pose,
    rosbags_types,
    stamp_to_ns,
)
from dfmvr_ros.node_pipeline import NodePipeline, TransformUnavailable

MS = 1_000_000
T0 = 5_000_000_000_000
PERIOD = 33_333_333
TYPES = rosbags_types("humble")


class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


class Harness:
    def __init__(self, reconstructor=None, *, threaded=False, subscribers=(), lookup=None, **overrides):
        self.config = node_config(**overrides)
        self.reconstructor = reconstructor or FakeReconstructor()
        self.clock = Clock()
        self.published = []
        self.subscribers = set(subscribers)
        self.pipeline = NodePipeline(
            self.config,
            self.reconstructor,
            TYPES,
            publish=self.published.append,
            subscription_count=lambda topic: int(topic in self.subscribers),
            now_ns=self.clock,
            lookup_transform=lookup,
            threaded=threaded,
        )
        self.images = gray_images()

    def frame(self, camera: str, k: int, offset_ns: int = 0):
        stamp = T0 + k * PERIOD + offset_ns
        self.clock.t = max(self.clock.t, stamp + 2 * MS)
        img = self.images[CAMERAS.index(camera)]
        return self.pipeline.on_image(camera, image_message(TYPES, stamp, f"{camera}_camera_optical_frame", img))

    def instant(self, k: int, cameras=CAMERAS):
        out = []
        for cam in cameras:
            out += self.frame(cam, k, offset_ns=CAMERAS.index(cam) * MS)
        return out

    def start(self):
        """Instant 0; the synchronizer holds the first set back until the instant before it can no longer come
        (start-up latency sync.partial_timeout_s - one period), so the clock moves on and a poll releases it."""
        out = self.instant(0)
        assert out == []
        self.clock.t += 150 * MS
        return self.pipeline.poll()

    def topics(self):
        return [o.topic for o in self.published]


def test_a_matched_set_is_reconstructed_and_published_with_its_stamp():
    h = Harness()
    info = PinholeIntrinsics(fx=70.0, fy=71.0, cx=31.0, cy=23.0, width=64, height=48)
    h.pipeline.on_camera_info("right", camera_info_message(TYPES, T0, "right_camera_optical_frame", info))
    sets = h.start()
    assert len(sets) == 1 and sets[0].complete
    (images, infos) = h.reconstructor.calls[0]
    for img, expected in zip(images, h.images, strict=True):
        np.testing.assert_array_equal(img, expected)  # decoded from the Image messages, rig order
    assert infos[:2] == [None, None] and infos[2] == info  # CameraInfo intrinsics, rig defaults elsewhere
    assert h.topics() == ["/robot/dfmvr/head_pose", "/tf", "/robot/dfmvr/mesh/vertices", "/robot/dfmvr/coefficients"]
    stamp = sets[0].stamp_ns
    assert stamp == T0 + MS  # the median of the members' stamps
    pose = h.published[0].message
    assert stamp_to_ns(pose.header.stamp) == stamp
    np.testing.assert_allclose(matrix_from_pose(pose), fake_reconstruction().T_rig_from_model, atol=1e-9)
    assert stamp_to_ns(h.published[1].message.transforms[0].header.stamp) == stamp


def test_use_camera_info_false_keeps_rig_intrinsics():
    h = Harness(**{"input.use_camera_info": False})
    h.pipeline.on_camera_info("left", camera_info_message(TYPES, T0, "left_camera_optical_frame", INTRINSICS))
    h.start()
    assert h.reconstructor.calls[0][1] is None


def test_bad_camera_info_is_logged_once_and_ignored(caplog):
    h = Harness()
    msg = camera_info_message(TYPES, T0, "left_camera_optical_frame", INTRINSICS)
    msg.k[:] = 0.0  # uncalibrated
    with caplog.at_level(logging.ERROR, logger="dfmvr_ros.node_pipeline"):
        h.pipeline.on_camera_info("left", msg)
        h.pipeline.on_camera_info("left", msg)
    assert sum("uncalibrated" in r.getMessage() for r in caplog.records) == 1
    h.start()
    assert h.reconstructor.calls[0][1] is None  # nothing usable arrived


def test_silent_camera_gives_partial_sets_after_the_timeout():
    h = Harness()
    assert h.instant(0, cameras=("left", "front")) == []
    h.clock.t += 100 * MS
    assert h.pipeline.poll() == []  # 0.1 s < sync.partial_timeout_s 0.15
    h.clock.t += 60 * MS
    (partial,) = h.pipeline.poll()
    assert partial.missing == ("right",)
    images, _ = h.reconstructor.calls[0]
    assert images[2] is None and images[0] is not None
    diag = h.pipeline.diagnostics("active").message
    status = {s.name: s for s in diag.status}
    assert status["dfmvr: reconstruction"].level == DIAGNOSTIC_LEVELS["WARN"]
    values = {kv.key: kv.value for kv in status["dfmvr: synchronizer"].values}
    assert values["partial_sets"] == "1" and values["missing_in_partial.right"] == "1"


def test_marker_and_overlay_only_with_subscribers_and_rate_limited():
    topics = {"/robot/dfmvr/mesh/marker", "/robot/dfmvr/debug/overlay"}
    h = Harness(subscribers=topics, **{"publish.marker_rate_hz": 5.0, "publish.overlay_rate_hz": 0.0})
    h.start()
    assert "/robot/dfmvr/mesh/marker" in h.topics() and "/robot/dfmvr/debug/overlay" in h.topics()
    h.published.clear()
    h.instant(1)  # 33 ms later: marker rate-limited to 5 Hz, overlay unlimited
    assert "/robot/dfmvr/mesh/marker" not in h.topics() and "/robot/dfmvr/debug/overlay" in h.topics()
    h.published.clear()
    for k in range(2, 13):  # the node clock moves from ~152 ms (first marker) to ~404 ms
        h.instant(k)
    assert h.topics().count("/robot/dfmvr/mesh/marker") == 1  # once 200 ms have passed
    h.subscribers.clear()
    h.published.clear()
    h.instant(20)
    assert not topics & set(h.topics())


def test_target_frame_uses_the_lookup_and_skips_when_unavailable():
    T = rigid((0.0, 0.0, 0.3), (1.0, 0.0, 0.5))
    answers = [TransformUnavailable("extrapolation into the future"), T]
    lookups = []

    def lookup(target, source, stamp_ns):
        lookups.append((target, source, stamp_ns))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    h = Harness(lookup=lookup, **{"frames.target_frame": "base_link"})
    h.start()
    assert h.published == [] and h.pipeline.tf_failures == 1
    h.instant(1)
    assert lookups[1] == ("base_link", "front_camera_optical_frame", T0 + PERIOD + MS)
    pose = h.published[0].message
    assert pose.header.frame_id == "base_link"
    np.testing.assert_allclose(matrix_from_pose(pose), T @ fake_reconstruction().T_rig_from_model, atol=1e-9)
    with pytest.raises(ConfigError, match=r"frames\.target_frame"):
        Harness(**{"frames.target_frame": "base_link"})


def test_rig_mismatch_is_refused():
    class OtherRig(FakeReconstructor):
        camera_names = ("a", "b", "c")

    with pytest.raises(ConfigError, match=r"cameras\.names"):
        Harness(OtherRig())


def test_topology_is_the_mean_mesh():
    h = Harness()
    output = h.pipeline.topology()
    assert output.topic == "/robot/dfmvr/mesh/topology" and len(output.message.triangles) == len(MESH_FACES)
    assert Harness(**{"publish.topology": False}).pipeline.topology() is None


def test_clock_jump_back_resets_the_synchronizer():
    h = Harness()
    h.start()
    assert len(h.instant(1)) == 1
    h.clock.t = T0  # bag restarted: stamps and clock start over
    assert len(h.start()) == 1  # instant 0 again, not dropped as stale
    assert h.pipeline.clock_resets == 1
    assert h.pipeline.synchronizer.stats.drops["left"].stale == 0


def test_worker_keeps_the_latest_set_and_survives_failures():
    block = threading.Event()
    h = Harness(FakeReconstructor(block=block), threaded=True)
    try:
        h.start()
        assert h.reconstructor.started.acquire(timeout=5.0)  # set 0 is in the model
        h.instant(1)  # waits
        h.instant(2)  # replaces set 1
        block.set()
        assert h.pipeline.worker.wait_idle(5.0)
        stamps = [stamp_to_ns(o.message.header.stamp) for o in h.published if o.topic.endswith("head_pose")]
        assert stamps == [T0 + MS, T0 + 2 * PERIOD + MS]
        counters = h.pipeline.worker.counters()
        assert (counters.processed, counters.skipped) == (2, 1)
        values = {kv.key: kv.value for kv in h.pipeline.diagnostics("active").message.status[0].values}
        assert values["sets_skipped_busy"] == "1" and values["sets_processed"] == "2"

        h.reconstructor.fail = True
        h.instant(3)
        assert h.pipeline.worker.wait_idle(5.0)
        assert h.pipeline.worker.failed == 1
        status = h.pipeline.diagnostics("active").message.status[0]
        assert status.level == DIAGNOSTIC_LEVELS["ERROR"] and "illegal memory access" in status.message
        h.reconstructor.fail = False
        h.instant(4)
        assert h.pipeline.worker.wait_idle(5.0) and h.pipeline.worker.processed == 3
    finally:
        block.set()
        assert h.pipeline.close(5.0)
