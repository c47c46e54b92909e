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

"""Small synthetic rig bags shared by the make-bag and replay tests (generated once per test session)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dfmvr_ros.make_bag import MakeBagOptions, make_bag
from dfmvr_ros.node_config import NodeConfig

FPS = 15.0
SIZE = (320, 240)
HUMBLE_BAG = {"frames": 5, "fps": FPS, "size": SIZE, "seed": 3, "jitter_ms": 2.0, "drops": (("left", 2),)}
"""Humble, sqlite3, raw rgb8 images; the left camera loses instant 2."""
JAZZY_BAG = {
    "frames": 3,
    "fps": FPS,
    "size": SIZE,
    "seed": 5,
    "compressed": True,
    "distro": "jazzy",
    "storage": "mcap",
}
"""Jazzy, mcap, JPEG CompressedImage."""


def node_config(model: Path, **parameters: Any) -> NodeConfig:
    """The node's defaults for ``model`` with the bags' rate, the torch backend and no detector."""
    values = {
        "reconstructor.morphable_model": str(model),
        "reconstructor.backend": "torch",
        "reconstructor.detector": "none",
        "sync.expected_rate_hz": FPS,
    }
    values.update(parameters)
    return NodeConfig.from_parameters(values)


def generated_bag(tmp_path_factory: Any, model: Any, model_path: Path, name: str, options: dict[str, Any]) -> Path:
    """The bag ``name`` under the session's base temp folder, written on first use (shared between test modules)."""
    path = tmp_path_factory.getbasetemp() / "dfmvr_replay_bags" / name
    if not (path / "metadata.yaml").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_bag(path, model, node_config(model_path), MakeBagOptions(**options), progress=False)
    return path


class ZeroBackend:
    """Stands in for the network where a test is about the replay, not the network: all-zero coefficients (the mean
    face, frontal in each crop's canonical camera), instantly."""

    name = "zero-coefficients"

    def __init__(self, sizes: Any) -> None:
        self.sizes = sizes
        self.calls = 0

    def run(self, images: Any, masks: Any, valid: Any) -> dict[str, np.ndarray]:
        self.calls += 1
        b, v = np.asarray(valid).shape
        s = self.sizes
        return {
            "identity": np.zeros((b, s.identity), np.float32),
            "expression": np.zeros((b, s.expression), np.float32),
            "albedo": np.zeros((b, s.albedo), np.float32),
            "lighting": np.zeros((b, v, 27), np.float32),
            "pose": np.zeros((b, v, 6), np.float32),
        }


def use_zero_backend(monkeypatch: Any, reconstructor: Any) -> ZeroBackend:
    """Swap the reconstructor's network for :class:`ZeroBackend` for one test (``monkeypatch`` restores it)."""
    backend = ZeroBackend(reconstructor.coefficient_sizes)
    monkeypatch.setattr(reconstructor, "_backend", backend)
    return backend
