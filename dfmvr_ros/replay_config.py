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

"""The node configuration of the ROS-free commands (``dfmvr replay``, ``dfmvr make-bag``).

Both read the node's own parameter file (``config/dfmvr.yaml``, :func:`dfmvr_ros.node_config.load_node_config`)
or, without one, the node's defaults, plus overrides given as flat ROS parameter names, so that a replay subscribes
to, synchronizes and publishes exactly what ``dfmvr_node`` would with the same parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dfmvr_core.errors import ConfigError
from dfmvr_ros.node_config import DEFAULT_NODE_NAME, NodeConfig, load_node_config

__all__ = ["node_config_from", "parse_parameter"]


def parse_parameter(text: str) -> tuple[str, Any]:
    """``"sync.expected_rate_hz=15"`` → ``("sync.expected_rate_hz", 15)``: the value is read as YAML, as
    ``ros2 run ... -p name:=value`` does (``true``, ``0.5``, ``[a, b]``, ``""``).

    Raises:
        ConfigError: no ``=``, an empty name or a value that is not YAML.
    """
    name, sep, value = str(text).partition("=")
    name = name.strip().rstrip(":")
    if not sep or not name:
        raise ConfigError(f"--param: expected NAME=VALUE (e.g. sync.expected_rate_hz=15), got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--param {name}: the value {value!r} is not valid YAML ({exc})") from None
    return name, parsed


def node_config_from(
    config_file: str | Path | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    parameters: Sequence[str] = (),
    node_name: str = DEFAULT_NODE_NAME,
    namespace: str = "/",
) -> NodeConfig:
    """The validated :class:`NodeConfig` from a parameter file (None: the node's defaults) and overrides.

    Args:
        config_file: a ROS 2 parameter file (``config/dfmvr.yaml``) or None.
        overrides: flat parameter names → values; None values are skipped (flags not given), paths become strings.
        parameters: ``NAME=VALUE`` strings (``--param``), applied after ``overrides``.
        node_name, namespace: the node's name and namespace (they give the output topics ``/<ns>/<name>/...``).

    Raises:
        ConfigError: naming the file and the parameter.
    """
    flat: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in (overrides or {}).items()}
    flat = {k: v for k, v in flat.items() if v is not None}
    flat.update(dict(parse_parameter(p) for p in parameters))
    if config_file is not None:
        return load_node_config(config_file, node_name=node_name, namespace=namespace, overrides=flat)
    fqn = f"{namespace.rstrip('/')}/{node_name}"
    return NodeConfig.from_parameters(flat, node_fqn=fqn)
