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

"""dfmvr_node under rclpy: lifecycle, refused parameters, outputs on a synthetic matched set, QoS mismatch events.

Needs a sourced ROS 2 (Humble or later); skipped elsewhere. The node's per-frame logic is also tested without ROS
in ``test_ros_node_pipeline.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (ROS 2 absent)")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_output_helpers import CAMERAS, FakeReconstructor, fake_reconstruction, gray_images  # noqa: E402

from dfmvr_ros.messages import image_message, matrix_from_pose, rclpy_types, stamp_to_ns  # noqa: E402
from dfmvr_ros.node import DfmvrNode  # noqa: E402

STAMP_NS = 1_700_000_000_000_000_000
PERIOD = 33_333_333


@pytest.fixture()
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    if ctx.ok():
        rclpy.shutdown(context=ctx)


def make_node(context, **params):
    values = {"reconstructor.morphable_model": "/models/face.npz", "autostart": False, **params}
    overrides = [Parameter(name, value=value) for name, value in values.items()]
    return DfmvrNode(
        context=context,
        parameter_overrides=overrides,
        reconstructor_factory=lambda config: FakeReconstructor(),
    )


def spin_until(executor, predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def test_configure_refuses_a_bad_parameter(context):
    node = make_node(context, **{"sync.queue_size": 0})
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.state_label == "unconfigured"
    finally:
        node.destroy_node()
    node = make_node(context, **{"sync.slopp_s": 0.01})  # a typo is refused, not ignored
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.destroy_node()


def test_publishes_pose_topology_and_diagnostics_for_a_matched_set(context):
    node = make_node(context, **{"sync.partial_timeout_s": 0.1})
    helper = rclpy.create_node("dfmvr_test_driver", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(helper)
    types = rclpy_types()
    received: dict[str, list] = {"pose": [], "topology": [], "diagnostics": []}
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        helper.create_subscription(
            types("geometry_msgs/msg/PoseStamped"), "/dfmvr/head_pose", received["pose"].append, 10
        )
        helper.create_subscription(
            types("shape_msgs/msg/Mesh"), "/dfmvr/mesh/topology", received["topology"].append, latched
        )
        helper.create_subscription(
            types("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics", received["diagnostics"].append, 10
        )
        sensor = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        publishers = {
            cam: helper.create_publisher(types("sensor_msgs/msg/Image"), f"/cameras/{cam}/image_raw", sensor)
            for cam in CAMERAS
        }
        assert spin_until(executor, lambda: all(p.get_subscription_count() for p in publishers.values()))
        images = gray_images()
        for k in range(6):
            for cam, img in zip(CAMERAS, images, strict=True):
                msg = image_message(types, STAMP_NS + k * PERIOD, f"{cam}_camera_optical_frame", img)
                publishers[cam].publish(msg)
            executor.spin_once(timeout_sec=0.01)
        assert spin_until(executor, lambda: received["pose"] and received["topology"] and received["diagnostics"])
        pose = received["pose"][0]
        assert pose.header.frame_id == "front_camera_optical_frame"
        assert (stamp_to_ns(pose.header.stamp) - STAMP_NS) % PERIOD == 0
        np.testing.assert_allclose(matrix_from_pose(pose), fake_reconstruction().T_rig_from_model, atol=1e-6)
        assert len(received["topology"][0].triangles) == 8
        names = {s.name for d in received["diagnostics"] for s in d.status}
        assert "dfmvr: reconstruction" in names
    finally:
        executor.shutdown()
        if node.state_label == "active":
            node.trigger_deactivate()
        node.destroy_node()
        helper.destroy_node()


def test_incompatible_qos_is_reported(context):
    node = make_node(context, **{"input.qos.reliability": "reliable"})
    helper = rclpy.create_node("dfmvr_test_qos", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(helper)
    reported: list[str] = []
    node._subscription_qos_warning = lambda topic, event: reported.append(topic)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        helper.create_publisher(
            rclpy_types()("sensor_msgs/msg/Image"),
            "/cameras/left/image_raw",
            QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT),
        )
        assert spin_until(executor, lambda: "/cameras/left/image_raw" in reported)
    finally:
        executor.shutdown()
        node.trigger_deactivate()
        node.destroy_node()
        helper.destroy_node()
