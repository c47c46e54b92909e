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

r"""Start ``dfmvr_node`` for a three-camera rig.

    ros2 launch dfmvr dfmvr.launch.py morphable_model:=/path/model.npz \
        left_ns:=/rig/left front_ns:=/rig/front right_ns:=/rig/right backend:=tensorrt device:=cuda

Every argument left empty keeps the value of ``config_file`` (``share/dfmvr/config/dfmvr.yaml`` by default);
a non-empty one overrides the matching parameter. The node configures and activates itself (``autostart``).
"""

import os

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

# launch argument -> node parameter; an empty argument keeps the parameter file's value
PARAMETER_ARGUMENTS = {
    "left_ns": "cameras.left.namespace",
    "front_ns": "cameras.front.namespace",
    "right_ns": "cameras.right.namespace",
    "backend": "reconstructor.backend",
    "device": "reconstructor.device",
    "precision": "reconstructor.precision",
    "engine_cache_dir": "reconstructor.cache_dir",
    "onnx_path": "reconstructor.onnx_path",
    "morphable_model": "reconstructor.morphable_model",
    "checkpoint": "reconstructor.checkpoint",
    "image_transport": "input.image_transport",
    "target_frame": "frames.target_frame",
}

DESCRIPTIONS = {
    "left_ns": "topic namespace of the left camera (<ns>/image_raw, <ns>/camera_info)",
    "front_ns": "topic namespace of the front (reference) camera",
    "right_ns": "topic namespace of the right camera",
    "backend": "tensorrt | onnxruntime | torch",
    "device": "cpu | cuda | cuda:N",
    "precision": "fp32 | fp16 | tf32 (fp16/tf32 need cuda)",
    "engine_cache_dir": "folder of the ONNX exports and TensorRT engines (cache)",
    "onnx_path": "exported network for onnxruntime/tensorrt",
    "morphable_model": "morphable model file (.npz, BFM .mat, ICT folder)",
    "checkpoint": "trained network weights",
    "image_transport": "raw | compressed",
    "target_frame": "publish pose and mesh in this frame (tf2 lookup); empty = reference camera frame",
}


def _default_config():
    try:
        from ament_index_python.packages import get_package_share_directory

        return os.path.join(get_package_share_directory("dfmvr"), "config", "dfmvr.yaml")
    except Exception:  # not installed: run from the source tree
        return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "dfmvr.yaml")


def _as_bool(text):
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got '{text}'")
    return value in ("true", "1")


def node_parameters(values):
    """Parameter overrides from the evaluated launch arguments ``values`` (name -> string).

    Empty arguments are left out so that the parameter file's values stay in force.
    """
    overrides = {}
    for argument, parameter in PARAMETER_ARGUMENTS.items():
        text = values.get(argument, "")
        if text:
            overrides[parameter] = text
    overrides["use_sim_time"] = _as_bool(values.get("use_sim_time", "false"))
    overrides["autostart"] = _as_bool(values.get("autostart", "true"))
    return overrides


def _launch_node(context, *args, **kwargs):
    names = [*PARAMETER_ARGUMENTS, "use_sim_time", "autostart", "config_file", "namespace", "node_name", "log_level"]
    values = {name: LaunchConfiguration(name).perform(context) for name in names}
    return [
        Node(
            package="dfmvr",
            executable="dfmvr_node",
            name=values["node_name"],
            namespace=values["namespace"],
            output="screen",
            emulate_tty=True,
            parameters=[values["config_file"], node_parameters(values)],
            arguments=["--ros-args", "--log-level", values["log_level"]],
        )
    ]


def generate_launch_description():
    """Declare the arguments and start the node."""
    arguments = [
        DeclareLaunchArgument(
            "config_file", default_value=_default_config(), description="ROS 2 parameter file (see config/dfmvr.yaml)"
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use /clock (true when replaying a bag with --clock)"
        ),
        DeclareLaunchArgument(
            "autostart", default_value="true", description="configure and activate the lifecycle node at start-up"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="dfmvr", description="node name"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error"),
    ]
    arguments += [
        DeclareLaunchArgument(name, default_value="", description=DESCRIPTIONS[name]) for name in PARAMETER_ARGUMENTS
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_node)])
