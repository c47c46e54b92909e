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

"""``dfmvr_node``: the ROS 2 lifecycle node (rclpy) around :class:`~dfmvr_ros.node_pipeline.NodePipeline`.

Run plainly it configures and activates itself (parameter ``autostart``, default true)::

    ros2 run dfmvr dfmvr_node --ros-args --params-file config/dfmvr.yaml -p reconstructor.morphable_model:=model.npz

With ``autostart:=false`` it waits for a lifecycle manager (``ros2 lifecycle set /dfmvr configure`` ...).

Transitions:
    * configure: reads every parameter into a :class:`~dfmvr_ros.node_config.NodeConfig` (an invalid or unknown
      parameter fails the transition with a log line naming it), loads the reconstructor (model, weights, backend;
      an unreadable file fails the transition naming the file), creates the publishers.
    * activate: subscribes to the cameras, starts the model-owning worker and the poll timer, publishes the mesh
      topology once (latched).
    * deactivate: unsubscribes, stops the worker. cleanup: drops publishers and the reconstructor.

Parameters are read at configure time; to change them, ``deactivate`` + ``cleanup``, set them, ``configure`` +
``activate`` again. ``/diagnostics`` is published in every state.

Subscriptions are plain rclpy subscriptions (``message_filters`` is not needed: matching is done by the rig
synchronizer, see :mod:`dfmvr_ros.node_pipeline` for why), with sensor-data QoS by default; a publisher whose QoS
cannot match (e.g. a best-effort camera and ``input.qos.reliability: reliable``) is reported as a warning through
the subscription's ``incompatible_qos`` event callback, not silently ignored.

rclpy and the ROS message packages are imported only by this module.
"""

from __future__ import annotations

import array
import sys
from typing import Any

import numpy as np

from dfmvr_core.errors import DfmvrError
from dfmvr_core.inference import MissingDependencyError

try:
    import rclpy
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.duration import Duration
    from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.time import Time
except ImportError as _exc:  # pragma: no cover - exercised only without ROS 2
    raise MissingDependencyError(
        f"dfmvr_ros.node needs ROS 2 (rclpy): {_exc}; source /opt/ros/<distro>/setup.bash. "
        "The ROS-free parts (dfmvr replay, dfmvr_ros.node_config, dfmvr_ros.outputs) work without it."
    ) from None

try:  # Iron and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

from dfmvr_ros.messages import matrix_from_transform, rclpy_types
from dfmvr_ros.node_config import DEFAULT_CAMERAS, DEFAULT_NODE_NAME, NodeConfig, default_parameters
from dfmvr_ros.node_pipeline import NodePipeline, TransformUnavailable
from dfmvr_ros.outputs import MSGTYPES, Output

__all__ = ["DfmvrNode", "main"]

_RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
    "system_default": ReliabilityPolicy.SYSTEM_DEFAULT,
}
_DURABILITY = {
    "volatile": DurabilityPolicy.VOLATILE,
    "transient_local": DurabilityPolicy.TRANSIENT_LOCAL,
    "system_default": DurabilityPolicy.SYSTEM_DEFAULT,
}
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100)  # as tf2_ros.TransformBroadcaster
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def _policy_name(kind: Any) -> str:
    try:
        from rclpy.qos import qos_policy_name_from_kind

        return str(qos_policy_name_from_kind(kind))
    except Exception:  # the helper's signature changed between distributions
        return str(kind)


def _plain(value: Any) -> Any:
    """rclpy parameter values as plain Python (``array.array`` → list)."""
    if isinstance(value, (array.array, tuple)):
        return list(value)
    return value


class DfmvrNode(LifecycleNode):
    """The dfmvr lifecycle node (see the module docstring).

    Args:
        node_name: the node's name (default ``dfmvr``).
        reconstructor_factory: builds the reconstructor from a ``ReconstructorConfig`` (default:
            ``FaceReconstructor``); tests pass a fake.
        **kwargs: passed to :class:`rclpy.lifecycle.LifecycleNode` (e.g. ``parameter_overrides``, ``namespace``).
    """

    def __init__(self, node_name: str = DEFAULT_NODE_NAME, *, reconstructor_factory: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("automatically_declare_parameters_from_overrides", True)
        super().__init__(node_name, **kwargs)
        self._reconstructor_factory = reconstructor_factory
        self._declare_defaults()
        self._msg_types = rclpy_types()
        self._node_config: NodeConfig | None = None
        self._reconstructor: Any = None
        self._pipeline: NodePipeline | None = None
        self._publishers_by_topic: dict[str, Any] = {}
        self._subscriptions_list: list[Any] = []
        self._poll_timer: Any = None
        self._tf_buffer: Any = None
        self._tf_listener: Any = None
        self._lifecycle_label = "unconfigured"
        period = self.get_parameter("publish.diagnostics_period_s").value
        period = float(period) if isinstance(period, (int, float)) and period > 0 else 1.0  # validated at configure
        self._diagnostics_pub = self.create_publisher(self._msg_types(MSGTYPES["diagnostics"]), "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(max(period, 0.05), self._publish_diagnostics)

    # ------------------------------------------------------------------ parameters

    def _declare_defaults(self) -> None:
        """Declare every parameter not given as an override, with its default (overrides were declared by rclpy
        with their own types; ``dynamic_typing`` lets ``sync.slop_s: 0`` (an int) stand for a float)."""
        names = list(DEFAULT_CAMERAS)
        if self.has_parameter("cameras.names"):
            value = _plain(self.get_parameter("cameras.names").value)
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                names = value
        descriptor = ParameterDescriptor(dynamic_typing=True)
        for name, default in default_parameters(names).items():
            if not self.has_parameter(name):
                self.declare_parameter(name, default, descriptor)

    def _parameter_values(self) -> dict[str, Any]:
        params = self.get_parameters_by_prefix("")
        return {name: _plain(getattr(p, "value", p)) for name, p in params.items()}

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters, load the reconstructor, create the publishers."""
        try:
            config = NodeConfig.from_parameters(self._parameter_values(), node_fqn=self.get_fully_qualified_name())
        except DfmvrError as exc:
            self.get_logger().error(f"configure refused: invalid parameter: {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            reconstructor = self._build_reconstructor(config)
            config.check_rig(tuple(reconstructor.camera_names), reconstructor.reference_camera)
        except DfmvrError as exc:  # bad model/checkpoint/ONNX file, missing dependency, rig mismatch: named
            self.get_logger().error(f"configure refused: {exc}")
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # anything else the backends raise (e.g. an ONNX Runtime or CUDA error)
            self.get_logger().error(f"configure refused: loading the reconstructor failed: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._node_config = config
        self._reconstructor = reconstructor
        self._create_publishers(config)
        if config.frames.target_frame:
            from tf2_ros import Buffer, TransformListener

            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, self)
        self._lifecycle_label = "inactive"
        self.get_logger().info(
            f"configured: cameras {list(config.camera_names)} ({config.input.image_transport}), backend "
            f"{reconstructor.backend_name}, outputs in {config.output_frame!r}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe, start the worker and the poll timer, publish the topology."""
        config = self._node_config
        assert config is not None, "activate before configure"
        try:
            self._pipeline = NodePipeline(
                config,
                self._reconstructor,
                self._msg_types,
                publish=self._publish,
                subscription_count=self._subscription_count,
                now_ns=lambda: self.get_clock().now().nanoseconds,
                lookup_transform=self._lookup_transform if config.frames.target_frame else None,
                logger=self.get_logger(),
            )
        except DfmvrError as exc:
            self.get_logger().error(f"activate refused: {exc}")
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        self._subscribe(config)
        self._poll_timer = self.create_timer(1.0 / config.sync.poll_rate_hz, self._pipeline.poll)
        topology = self._pipeline.topology()
        if topology is not None:
            self._publish(topology)
        self._lifecycle_label = "active"
        topics = ", ".join(config.image_topics().values())
        self.get_logger().info(f"active: listening to {topics}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker (the set being processed finishes)."""
        self._stop_inputs()
        self._lifecycle_label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Drop the publishers and the reconstructor."""
        self._release()
        self._lifecycle_label = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything."""
        self._stop_inputs()
        self._release()
        self._lifecycle_label = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Back to unconfigured after an error in a transition."""
        self._stop_inputs()
        self._release()
        self._lifecycle_label = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ pieces

    def _build_reconstructor(self, config: NodeConfig) -> Any:
        if self._reconstructor_factory is not None:
            return self._reconstructor_factory(config.reconstructor)
        from dfmvr_core.inference.reconstructor import FaceReconstructor

        reconstructor = FaceReconstructor(config.reconstructor)
        reconstructor.warmup()
        return reconstructor

    def _create_publishers(self, config: NodeConfig) -> None:
        publish = config.publish
        wanted = {
            "head_pose": publish.head_pose,
            "tf": publish.tf,
            "vertices": publish.vertices,
            "topology": publish.topology,
            "coefficients": publish.coefficients,
            "marker": publish.marker,
            "overlay": publish.overlay,
        }
        callbacks = PublisherEventCallbacks(incompatible_qos=self._publisher_qos_warning)
        for key, enabled in wanted.items():
            if not enabled:
                continue
            topic = getattr(config.topics, key)
            qos = TF_QOS if key == "tf" else LATCHED_QOS if key == "topology" else OUTPUT_QOS
            self._publishers_by_topic[topic] = self.create_lifecycle_publisher(
                self._msg_types(MSGTYPES[key]), topic, qos, event_callbacks=callbacks
            )

    def _input_qos(self, config: NodeConfig) -> QoSProfile:
        qos = config.input.qos
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=qos.depth,
            reliability=_RELIABILITY[qos.reliability],
            durability=_DURABILITY[qos.durability],
        )

    def _subscribe(self, config: NodeConfig) -> None:
        qos = self._input_qos(config)
        image_type = self._msg_types(
            "sensor_msgs/msg/Image" if config.input.image_transport == "raw" else "sensor_msgs/msg/CompressedImage"
        )
        info_type = self._msg_types("sensor_msgs/msg/CameraInfo")
        pipeline = self._pipeline
        assert pipeline is not None
        for camera in config.cameras:
            image_topic = camera.image_topic_for(config.input.image_transport)
            for topic, msg_type, callback in (
                (image_topic, image_type, lambda msg, name=camera.name: pipeline.on_image(name, msg)),
                (camera.camera_info_topic, info_type, lambda msg, name=camera.name: pipeline.on_camera_info(name, msg)),
            ):
                events = SubscriptionEventCallbacks(
                    incompatible_qos=lambda event, topic=topic: self._subscription_qos_warning(topic, event)
                )
                self._subscriptions_list.append(
                    self.create_subscription(msg_type, topic, callback, qos, event_callbacks=events)
                )

    def _subscription_qos_warning(self, topic: str, event: Any) -> None:
        qos = self._node_config.input.qos if self._node_config else None
        self.get_logger().warning(
            f"{topic}: {event.total_count} publisher(s) with incompatible QoS "
            f"(policy {_policy_name(event.last_policy_kind)}) cannot deliver to this subscription "
            f"(reliability {qos.reliability if qos else '?'}, durability {qos.durability if qos else '?'}); "
            f"compare with `ros2 topic info -v {topic}` and set input.qos.* to match"
        )

    def _publisher_qos_warning(self, event: Any) -> None:
        self.get_logger().warning(
            f"a subscriber requested an incompatible QoS (policy {_policy_name(event.last_policy_kind)}) on one of "
            f"the outputs; it receives nothing (outputs are reliable/volatile, topology transient-local)"
        )

    def _publish(self, output: Output) -> None:
        publisher = self._publishers_by_topic.get(output.topic)
        if publisher is not None:
            publisher.publish(output.message)

    def _subscription_count(self, topic: str) -> int:
        publisher = self._publishers_by_topic.get(topic)
        return 0 if publisher is None else publisher.get_subscription_count()

    def _lookup_transform(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        from tf2_ros import TransformException

        timeout = Duration(nanoseconds=round(self._node_config.frames.tf_timeout_s * 1e9))
        try:
            msg = self._tf_buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns), timeout=timeout)
        except TransformException as exc:
            raise TransformUnavailable(str(exc)) from None
        return matrix_from_transform(msg)

    def _publish_diagnostics(self) -> None:
        if self._pipeline is not None:
            output = self._pipeline.diagnostics(self._lifecycle_label)
            self._diagnostics_pub.publish(output.message)
            return
        from dfmvr_ros.messages import diagnostic_array

        level = 2 if self._lifecycle_label == "unconfigured" else 0
        message = "not configured" if self._lifecycle_label == "unconfigured" else self._lifecycle_label
        backend = getattr(self._reconstructor, "backend_name", "none")
        status = (
            "dfmvr: reconstruction",
            level,
            message,
            {"state": self._lifecycle_label, "backend": backend},
        )
        now = self.get_clock().now().nanoseconds
        self._diagnostics_pub.publish(diagnostic_array(self._msg_types, now, [status]))

    def _stop_inputs(self) -> None:
        for subscription in self._subscriptions_list:
            self.destroy_subscription(subscription)
        self._subscriptions_list.clear()
        if self._poll_timer is not None:
            self.destroy_timer(self._poll_timer)
            self._poll_timer = None
        if self._pipeline is not None:
            if not self._pipeline.close(timeout=10.0):
                self.get_logger().warning("the worker is still processing a set; it stops after it")
            self._pipeline = None

    def _release(self) -> None:
        destroy = getattr(self, "destroy_lifecycle_publisher", None) or self.destroy_publisher
        for publisher in self._publishers_by_topic.values():
            destroy(publisher)
        self._publishers_by_topic.clear()
        self._tf_listener = None
        self._tf_buffer = None
        self._reconstructor = None
        self._node_config = None

    @property
    def state_label(self) -> str:
        """``unconfigured`` / ``inactive`` / ``active`` / ``finalized``."""
        return self._lifecycle_label


def main(args: list[str] | None = None) -> int:
    """Entry point of ``dfmvr_node`` (``ros2 run dfmvr dfmvr_node``)."""
    rclpy.init(args=args)
    node = DfmvrNode()
    try:
        if bool(node.get_parameter("autostart").value):
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error(
                    "autostart: configure failed (see above); the node stays unconfigured: fix the parameter, then "
                    f"`ros2 lifecycle set {node.get_fully_qualified_name()} configure`"
                )
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        if node.state_label == "active" and rclpy.ok():
            node.trigger_deactivate()
        node.on_shutdown(None)  # stops the worker thread even when the context is already shut down
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
