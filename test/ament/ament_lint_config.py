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

"""What the ament lint tests check, in one place (read by the four test_*.py beside it).

The tests run with Debian's ``python3-ament-*`` packages and the system Python (``tools/run_ament_lint.sh``); in the
project's venv they are skipped.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# flake8 and pep257 check the whole Python tree.
PYTHON_PATHS = ["dfmvr_core", "dfmvr_ros", "training", "test", "launch", "bench", "setup.py"]

# flake8 reads the [flake8] section of setup.cfg (line length 120 as ruff; the ignores are documented there).
FLAKE8_CONFIG = "setup.cfg"

# pep257 (pydocstyle): Google convention (which already skips D203 D204 D213 D215 D400 D401 D404 D406 D407 D408
# D409 D413), plus:
#   D100-D107  missing docstrings: as ament's own convention (private helpers and tests need none);
#   D205 D415  a summary may wrap over two lines (no blank line right after its first line, no period there);
#   D209       closing quotes may end the last text line of a short multi-line docstring;
#   D402       a summary may name the call it documents (``NodeConfig.from_parameters(c.to_parameters()) == c``);
#   D403       misfires on code identifiers opening a summary (``rclpy``, ``ImageNet``, ``ConfigError``);
#   D412       misfires on prose headings that happen to be Google section names ("Methods:");
#   D417       ``Args:`` documents the arguments that need it, not necessarily all.
PEP257_CONVENTION = "google"
PEP257_ADD_IGNORE = [
    "D100", "D101", "D102", "D103", "D104", "D105", "D106", "D107",
    "D205", "D209", "D402", "D403", "D412", "D415", "D417",
]  # fmt: skip

# ament_copyright checks the files that carry the Apache-2.0 header (package.xml's licence). Applying it to the
# whole tree is a separate, tree-wide change (see the README, "ROS 2 node": lint).
COPYRIGHT_FILES = [
    "dfmvr_core/sync/worker.py",
    "dfmvr_ros/monitor.py",
    "dfmvr_ros/node.py",
    "dfmvr_ros/node_config.py",
    "dfmvr_ros/node_pipeline.py",
    "dfmvr_ros/outputs.py",
    "launch/dfmvr.launch.py",
    "launch/replay.launch.py",
    "test/ament/ament_lint_config.py",
    "test/ament/test_copyright.py",
    "test/ament/test_flake8.py",
    "test/ament/test_pep257.py",
    "test/ament/test_xmllint.py",
    "test/core/sync/test_sync_worker.py",
    "test/ros/ros_output_helpers.py",
    "test/ros/test_ros_node_config.py",
    "test/ros/test_ros_node_launch_files.py",
    "test/ros/test_ros_node_lifecycle.py",
    "test/ros/test_ros_node_pipeline.py",
    "test/ros/test_ros_outputs_build.py",
    "test/ros/test_ros_outputs_diagnostics.py",
]

XML_FILES = ["package.xml"]
