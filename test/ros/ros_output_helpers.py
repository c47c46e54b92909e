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

"""A fake reconstruction and a node configuration for the output tests (no model, no network)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.inference.reconstructor import Reconstruction
from dfmvr_ros.node_config import NodeConfig, default_parameters

CAMERAS = ("left", "front", "right")
STAMP_NS = 1_700_000_123_456_789_012
# A small closed mesh (octahedron, 5 cm radius), counter-clockwise from outside.
MESH_VERTICES = np.array(
    [[0.05, 0, 0], [-0.05, 0, 0], [0, 0.05, 0], [0, -0.05, 0], [0, 0, 0.05], [0, 0, -0.05]], dtype=np.float32
)
MESH_FACES = np.array(
    [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]], dtype=np.int32
)
INTRINSICS = PinholeIntrinsics(fx=160.0, fy=160.0, cx=31.5, cy=23.5, width=64, height=48)


def rigid(rotvec: tuple[float, float, float], t: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


def transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)


def _reconstruction(**fields: Any) -> Reconstruction:
    """The real :class:`Reconstruction`, with the fields outputs do not read defaulted."""
    defaults = {"crops": (), "masks": None, "timings_ms": {}, "T_camera_from_model_fused": None}
    return Reconstruction(**{**defaults, **fields})


def fake_reconstruction(valid: tuple[bool, ...] = (True, True, True)) -> Reconstruction:
    """The octahedron 0.7 m in front of every camera (each camera's own pose puts it on its optical axis)."""
    valid_arr = np.array(valid, dtype=bool)
    reasons = tuple(None if v else "no face detected" for v in valid)
    if not valid_arr.any():
        return _reconstruction(
            camera_names=CAMERAS,
            valid=valid_arr,
            reasons=reasons,
            ok=False,
            coefficients=None,
            vertices_model=None,
            vertices_rig=None,
            vertices_camera=None,
            T_rig_from_model=None,
            T_camera_from_model=None,
            landmarks_2d=None,
            intrinsics=(INTRINSICS,) * 3,
        )
    T_rig = rigid((0.1, -0.2, 0.05), (0.01, -0.02, 0.7))
    T_cams = np.stack([rigid((0.0, yaw, 0.0), (0.0, 0.0, 0.7)) for yaw in (0.6, 0.0, -0.6)])
    rng = np.random.default_rng(0)
    coefficients = {
        "identity": rng.normal(size=7).astype(np.float32),
        "expression": rng.uniform(size=4).astype(np.float32),
        "albedo": rng.normal(size=5).astype(np.float32),
        "lighting": rng.normal(size=(3, 27)).astype(np.float32),
        "pose": rng.normal(size=(3, 6)).astype(np.float32),
    }
    vertices_camera = np.stack([transform(T, MESH_VERTICES) for T in T_cams])
    K = np.array([[INTRINSICS.fx, 0, INTRINSICS.cx], [0, INTRINSICS.fy, INTRINSICS.cy], [0, 0, 1]])
    projected = vertices_camera @ K.T
    landmarks = (projected[..., :2] / projected[..., 2:]).astype(np.float32)
    return _reconstruction(
        camera_names=CAMERAS,
        valid=valid_arr,
        reasons=reasons,
        ok=True,
        coefficients=coefficients,
        vertices_model=MESH_VERTICES.copy(),
        vertices_rig=transform(T_rig, MESH_VERTICES),
        vertices_camera=vertices_camera,
        T_rig_from_model=T_rig,
        T_camera_from_model=T_cams,
        landmarks_2d=landmarks,
        intrinsics=(INTRINSICS,) * 3,
        timings_ms={"total": 12.0},
    )


def node_config(**overrides: Any) -> NodeConfig:
    params = default_parameters(CAMERAS)
    params["reconstructor.morphable_model"] = "/models/face.npz"
    params.update(overrides)
    return NodeConfig.from_parameters(params, node_fqn="/robot/dfmvr")


def gray_images(seed: int = 0) -> list[np.ndarray]:
    """Noisy grey (R = G = B) 64×48 images, one per camera."""
    rng = np.random.default_rng(seed)
    return [np.repeat(rng.integers(90, 110, size=(48, 64, 1), dtype=np.uint8), 3, axis=2) for _ in CAMERAS]


class FakeReconstructor:
    """Records its inputs; the result marks missing images invalid (no network)."""

    camera_names = CAMERAS
    reference_camera = "front"
    faces = MESH_FACES
    mean_vertices = MESH_VERTICES
    backend_name = "fake:cpu"

    def __init__(self, block: threading.Event | None = None, fail: bool = False) -> None:
        self.calls: list[tuple[list, list | None]] = []
        self.block = block
        self.started = threading.Semaphore(0)
        self.fail = fail

    def reconstruct(self, images, camera_infos=None):
        self.calls.append((images, camera_infos))
        self.started.release()
        if self.block is not None:
            assert self.block.wait(5.0)
        if self.fail:
            raise RuntimeError("CUDA error: an illegal memory access")
        return fake_reconstruction(tuple(img is not None for img in images))
