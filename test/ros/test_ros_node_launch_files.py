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

"""The launch files agree with the node's parameters and output topics (read statically: no ROS needed)."""

from __future__ import annotations

import ast
from pathlib import Path

from dfmvr_ros.node_config import OutputTopics, default_parameters, load_node_config

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


def constants(path: Path) -> dict:
    """Module-level constants of a launch file (``NAME = literal``), without importing it (launch is a ROS package)."""
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def test_launch_arguments_map_to_real_parameters():
    mapping = constants(LAUNCH / "dfmvr.launch.py")["PARAMETER_ARGUMENTS"]
    parameters = default_parameters()
    assert set(mapping.values()) <= set(parameters), set(mapping.values()) - set(parameters)
    assert set(constants(LAUNCH / "dfmvr.launch.py")["DESCRIPTIONS"]) == set(mapping)
    for name in ("left_ns", "backend", "engine_cache_dir", "morphable_model"):
        assert name in mapping


def test_replay_records_every_output_topic_of_the_node():
    c = constants(LAUNCH / "replay.launch.py")
    fqn = "/robot/dfmvr"
    recorded = {f"{fqn}/{name}" for name in c["NODE_OUTPUTS"] + c["DEBUG_OUTPUTS"]} | set(c["GLOBAL_OUTPUTS"])
    assert recorded == set(OutputTopics.for_node(fqn).all().values())


def test_launch_files_reference_the_shipped_config():
    for name in ("dfmvr.launch.py", "replay.launch.py"):
        text = (LAUNCH / name).read_text()
        assert "'config', 'dfmvr.yaml'" in text or '"config", "dfmvr.yaml"' in text
        compile(text, name, "exec")
    config = load_node_config(LAUNCH.parent / "config" / "dfmvr.yaml", overrides={"reconstructor.morphable_model": "m"})
    assert config.autostart is True
