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

r"""Play a rosbag2 into ``dfmvr_node`` and record its outputs into a new bag.

    ros2 launch dfmvr replay.launch.py bag:=rig_bag output_bag:=out/dfmvr_outputs \
        morphable_model:=/path/model.npz

Three processes: ``ros2 bag record -o <output_bag> <output topics>`` and the node (with ``use_sim_time``) start
first; after ``start_delay`` seconds (model loading) ``ros2 bag play <bag> --clock`` plays the input at ``rate``;
when the player exits, the launch waits ``drain_s`` seconds for the last sets, then shuts down (the recorder closes
its bag). Without ROS, ``dfmvr replay`` writes the same outputs (dfmvr_ros.outputs) from the same bag.
"""

import os

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    TimerAction,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

# Output topics of the node, relative to its fully qualified name (dfmvr_ros.node_config.OutputTopics.for_node).
NODE_OUTPUTS = ("head_pose", "mesh/vertices", "mesh/topology", "coefficients")
DEBUG_OUTPUTS = ("mesh/marker", "debug/overlay")  # published only while subscribed: recording them costs time
GLOBAL_OUTPUTS = ("/tf", "/diagnostics")


def output_topics(node_fqn, with_debug=False):
    """Topics recorded for the node named ``node_fqn`` (e.g. ``/dfmvr``)."""
    relative = NODE_OUTPUTS + (DEBUG_OUTPUTS if with_debug else ())
    return [f"{node_fqn.rstrip('/')}/{name}" for name in relative] + list(GLOBAL_OUTPUTS)


def _as_bool(text):
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got '{text}'")
    return value in ("true", "1")


def _processes(context, *args, **kwargs):
    value = {
        name: LaunchConfiguration(name).perform(context)
        for name in (
            "bag",
            "output_bag",
            "rate",
            "start_delay",
            "drain_s",
            "record_debug",
            "namespace",
            "node_name",
            "storage",
        )
    }
    if not value["bag"]:
        raise RuntimeError("replay.launch.py: the bag argument is required (bag:=<rosbag2 folder>)")
    fqn = "/".join(part for part in ("", value["namespace"].strip("/"), value["node_name"]) if part)
    fqn = "/" + fqn.lstrip("/")
    topics = output_topics(fqn, _as_bool(value["record_debug"]))
    record_cmd = ["ros2", "bag", "record", "-o", value["output_bag"]]
    if value["storage"]:
        record_cmd += ["-s", value["storage"]]
    record = ExecuteProcess(cmd=record_cmd + topics, output="screen", name="record")
    play = ExecuteProcess(
        cmd=["ros2", "bag", "play", value["bag"], "--clock", "--rate", value["rate"]],
        output="screen",
        name="play",
    )
    stop_after_play = RegisterEventHandler(
        OnProcessExit(
            target_action=play,
            on_exit=[
                LogInfo(msg=f"bag played; recording the last outputs for {value['drain_s']} s"),
                TimerAction(
                    period=float(value["drain_s"]),
                    actions=[EmitEvent(event=Shutdown(reason="replay finished"))],
                ),
            ],
        )
    )
    return [record, stop_after_play, TimerAction(period=float(value["start_delay"]), actions=[play])]


def generate_launch_description():
    """Declare the arguments, include dfmvr.launch.py with use_sim_time, play and record."""
    here = os.path.dirname(os.path.abspath(__file__))
    node_launch = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(here, "dfmvr.launch.py")),
        launch_arguments={
            "use_sim_time": "true",
            "config_file": LaunchConfiguration("config_file"),
            "morphable_model": LaunchConfiguration("morphable_model"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "backend": LaunchConfiguration("backend"),
            "device": LaunchConfiguration("device"),
            "engine_cache_dir": LaunchConfiguration("engine_cache_dir"),
            "namespace": LaunchConfiguration("namespace"),
            "node_name": LaunchConfiguration("node_name"),
        }.items(),
    )
    config_default = os.path.join(os.path.dirname(here), "config", "dfmvr.yaml")
    try:
        from ament_index_python.packages import get_package_share_directory

        config_default = os.path.join(get_package_share_directory("dfmvr"), "config", "dfmvr.yaml")
    except Exception:  # not installed: run from the source tree
        pass
    arguments = [
        DeclareLaunchArgument("bag", default_value="", description="input rosbag2 (folder)"),
        DeclareLaunchArgument(
            "output_bag", default_value="dfmvr_outputs", description="output rosbag2 folder (must not exist)"
        ),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument(
            "start_delay", default_value="5.0", description="seconds between starting the node and playing the bag"
        ),
        DeclareLaunchArgument("drain_s", default_value="3.0", description="seconds recorded after the bag ends"),
        DeclareLaunchArgument(
            "record_debug",
            default_value="false",
            description="also record ~/mesh/marker and ~/debug/overlay (makes the node build them)",
        ),
        DeclareLaunchArgument("storage", default_value="", description="recorder storage id (sqlite3, mcap)"),
        DeclareLaunchArgument("config_file", default_value=config_default, description="ROS 2 parameter file"),
        DeclareLaunchArgument("morphable_model", default_value="", description="morphable model file"),
        DeclareLaunchArgument("checkpoint", default_value="", description="trained network weights"),
        DeclareLaunchArgument("backend", default_value="", description="tensorrt | onnxruntime | torch"),
        DeclareLaunchArgument("device", default_value="", description="cpu | cuda | cuda:N"),
        DeclareLaunchArgument("engine_cache_dir", default_value="", description="ONNX/TensorRT engine cache"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="dfmvr", description="node name"),
    ]
    return LaunchDescription([*arguments, node_launch, OpaqueFunction(function=_processes)])
