"""Draw random multi-view face scenes: a face (3DMM coefficients), its pose in the rig, the cameras, the light.

A scene holds numbers only (no images): :func:`~dfmvr_core.synthesis.render.render_scenes` turns it into views.
Sampling uses a numpy ``Generator`` (PCG64), so a scene depends only on its seed, not on torch's version, the
thread count or the device. :func:`scene_seed` derives the seed of sample ``index`` of a stream, so datasets and
bags can be generated in any order, resumed, or in parallel and still be identical.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.pose import MODEL_TO_OPTICAL
from dfmvr_core.geometry.rig import CameraRig
from dfmvr_core.geometry.rotations import euler_to_matrix
from dfmvr_core.morphable import MorphableModel, sh_basis
from dfmvr_core.morphable.lighting import SH_COEFFICIENTS
from dfmvr_core.synthesis.config import SceneConfig

__all__ = ["FaceScene", "FaceSceneSampler", "scene_seed"]

_SEED_MASK = (1 << 63) - 1


def scene_seed(seed: int, index: int, stream: int = 0) -> int:
    """The seed of sample ``index`` in stream ``stream`` of a generation run seeded with ``seed``.

    ``numpy.random.SeedSequence(entropy=seed, spawn_key=(stream, index))`` hashes all three numbers into the
    generator state, so different streams (e.g. a dataset's ``train`` and ``benchmark`` splits) and indices give
    independent, non-overlapping sequences for the same ``seed``.

    Args:
        seed: non-negative integer run seed; index: non-negative sample index; stream: non-negative stream id.

    Returns:
        A non-negative integer < 2**63 for :meth:`FaceSceneSampler.sample`.
    """
    for name, value in (("seed", seed), ("index", index), ("stream", stream)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(f"{name}: expected a non-negative integer, got {value!r}")
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(stream), int(index))).generate_state(1, np.uint64)
    return int(state[0]) & _SEED_MASK


@dataclasses.dataclass(frozen=True)
class FaceScene:
    """One random scene: a face posed in a camera rig and lit. All arrays are numpy, CPU.

    Frames: model (x viewer's right, y up, z towards the viewer, metres); rig = the reference camera's optical
    frame; each camera's optical frame (x right, y down, z forward).

    Attributes:
        seed: the seed it was drawn from (None when drawn from a caller's generator).
        identity: (K_id,) float32 coefficients (the model's full identity size; unused components are 0).
        expression: (K_exp,) float32 (blendshape weights in [0, 1] or PCA coefficients).
        albedo: (K_tex,) float32.
        T_rig_from_model: (4, 4) float64, metres.
        camera_names: V names in view order.
        T_camera_from_rig: (V, 4, 4) float64, metres.
        K: (V, 3, 3) float64 camera matrices, pixels of the full image.
        image_size: ``(height, width)`` of the full images, pixels.
        camera_azimuth_deg: (V,) float64, each camera's azimuth around the subject (Table V's side yaw).
        head_angles_deg: (3,) float64 (pitch, yaw, roll) of the head relative to facing the reference camera.
        lighting: (V, 27) float32 SH coefficients per view, in that camera's optical frame.
        light_direction_rig: (3,) float64 unit vector towards the light, rig frame.
        crop_jitter: (V, 3) float64 per view ``(du, dv, log_scale)``: crop-box centre shift in box sides and the
            log of the box-side multiplier (see :func:`~dfmvr_core.synthesis.render.crop_boxes`).
        image_seed: seed of the per-view image randomness (backgrounds, degradation).
    """

    seed: int | None
    identity: np.ndarray
    expression: np.ndarray
    albedo: np.ndarray
    T_rig_from_model: np.ndarray
    camera_names: tuple[str, ...]
    T_camera_from_rig: np.ndarray
    K: np.ndarray
    image_size: tuple[int, int]
    camera_azimuth_deg: np.ndarray
    head_angles_deg: np.ndarray
    lighting: np.ndarray
    light_direction_rig: np.ndarray
    crop_jitter: np.ndarray
    image_seed: int

    @property
    def num_views(self) -> int:
        return len(self.camera_names)

    @property
    def T_camera_from_model(self) -> np.ndarray:
        """(V, 4, 4) float64: each camera(optical)-from-model transform, metres."""
        return self.T_camera_from_rig @ self.T_rig_from_model


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int | None = None) -> np.ndarray | float:
    return rng.uniform(bounds[0], bounds[1], size)


class FaceSceneSampler:
    """Draws :class:`FaceScene` s for one morphable model and one :class:`SceneConfig`.

    Placement: the mean face's landmark centroid (its visual centre; the model origin differs between ICT and
    BFM) is put on the reference camera's optical axis at a random distance, shifted by the position jitter; the
    head turns about that point by the random (pitch, yaw, roll), starting from facing the reference camera.
    """

    def __init__(self, model: MorphableModel, config: SceneConfig | None = None) -> None:
        self.model = model
        self.config = config or SceneConfig()
        if not isinstance(self.config, SceneConfig):
            raise ConfigError(f"config: expected a SceneConfig, got {type(self.config).__name__}")
        sizes = model.coefficient_sizes
        k = self.config.identity_components
        if k is not None and k > sizes.identity:
            raise ConfigError(f"identity_components: {k} exceeds the model's {sizes.identity} identity components")
        self._identity_components = sizes.identity if k is None else k
        self._sizes = sizes
        mean = model.mean_shape.detach().cpu().double()
        self._face_centre = mean[model.landmarks68.cpu()].mean(dim=0).numpy()
        basis = sh_basis(torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))[0]
        self._dc_unit = float(basis[0])  # irradiance of a unit DC coefficient
        self._band1_unit = float(basis[1])  # irradiance of a unit band-1 coefficient along the normal
        self._fixed_rig = CameraRig(self.config.rig)

    # ------------------------------------------------------------------ pieces
    def _coefficients(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg, sizes = self.config, self._sizes
        identity = np.zeros(sizes.identity, np.float64)
        identity[: self._identity_components] = rng.standard_normal(self._identity_components) * cfg.identity_std
        if self.model.expression_kind == "blendshape":
            active = rng.random(sizes.expression) < cfg.expression_probability
            expression = rng.uniform(0.0, cfg.expression_max_weight, sizes.expression) * active
        else:
            expression = rng.standard_normal(sizes.expression) * cfg.expression_std
        albedo = rng.standard_normal(sizes.albedo) * cfg.albedo_std
        return identity.astype(np.float32), expression.astype(np.float32), albedo.astype(np.float32)

    def _rig(self, rng: np.random.Generator) -> CameraRig:
        cfg = self.config
        if cfg.side_yaw == "fixed":
            return self._fixed_rig
        cameras = []
        for cam in cfg.rig.cameras:
            if cam.azimuth_deg == 0.0:
                cameras.append(cam)
                continue
            magnitude = float(_uniform(rng, cfg.side_yaw_range_deg))
            cameras.append(dataclasses.replace(cam, azimuth_deg=math.copysign(magnitude, cam.azimuth_deg)))
        return CameraRig(dataclasses.replace(cfg.rig, cameras=tuple(cameras)))

    def _head_pose(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        yaw = float(_uniform(rng, cfg.head_yaw_deg))
        pitch = float(_uniform(rng, cfg.head_pitch_deg))
        roll = float(_uniform(rng, cfg.head_roll_deg))
        angles = np.array((pitch, yaw, roll), np.float64)
        R_head = euler_to_matrix(torch.tensor(np.radians(angles))).numpy()
        R = np.asarray(MODEL_TO_OPTICAL, np.float64) @ R_head  # model → rig: facing the reference camera, turned
        jitter = rng.uniform(-cfg.position_jitter_m, cfg.position_jitter_m, 2)
        distance = float(_uniform(rng, cfg.distance_range_m))
        centre_rig = np.array((jitter[0], jitter[1], distance))
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = centre_rig - R @ self._face_centre
        return T, angles

    def _light(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Direction towards the light (rig frame), RGB tint, ambient and directional irradiance."""
        cfg = self.config.lighting
        az = math.radians(float(rng.uniform(-cfg.light_azimuth_deg, cfg.light_azimuth_deg)))
        el = math.radians(float(rng.uniform(-cfg.light_elevation_deg, cfg.light_elevation_deg)))
        # From the face towards the cameras is −z in the rig frame; azimuth turns about y, elevation raises (−y).
        direction = np.array((math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)))
        tint = rng.uniform(1.0 - cfg.tint, 1.0 + cfg.tint, 3)
        ambient = float(_uniform(rng, cfg.ambient_range))
        directional = float(_uniform(rng, cfg.directional_range))
        return direction, tint, ambient, directional

    def _view_lighting(
        self, T_camera_from_rig: np.ndarray, direction: np.ndarray, tint: np.ndarray, ambient: float, strength: float
    ) -> np.ndarray:
        """(V, 27) SH per camera: DC = ambient, band 1 = ``strength`` along the light, rotated into each camera."""
        views = T_camera_from_rig.shape[0]
        sh = np.zeros((views, 3, 9), np.float64)
        d_cam = np.einsum("vij,j->vi", T_camera_from_rig[:, :3, :3], direction)  # (V, 3) x, y, z
        band1 = np.stack((d_cam[:, 1], d_cam[:, 2], d_cam[:, 0]), axis=-1)  # basis order (y, z, x)
        sh[:, :, 0] = ambient / self._dc_unit
        sh[:, :, 1:4] = (strength / self._band1_unit) * band1[:, None, :]
        sh *= tint[None, :, None]
        return sh.reshape(views, SH_COEFFICIENTS).astype(np.float32)

    # ------------------------------------------------------------------ public
    def sample(self, seed_or_generator: int | np.random.Generator) -> FaceScene:
        """Draw one scene; the same integer seed always gives the same scene.

        Args:
            seed_or_generator: a non-negative integer seed (e.g. from :func:`scene_seed`) or a numpy Generator
                (advanced by the draw).
        """
        if isinstance(seed_or_generator, np.random.Generator):
            rng, seed = seed_or_generator, None
        elif isinstance(seed_or_generator, (int, np.integer)) and not isinstance(seed_or_generator, bool):
            if seed_or_generator < 0:
                raise ConfigError(f"seed: expected a non-negative integer, got {seed_or_generator!r}")
            seed = int(seed_or_generator)
            rng = np.random.default_rng(seed)
        else:
            raise ConfigError(
                f"seed_or_generator: expected an int or numpy Generator, got {type(seed_or_generator).__name__}"
            )
        cfg = self.config
        # Fixed draw order (documented by the code): coefficients, cameras, head, light, crops, image seed.
        identity, expression, albedo = self._coefficients(rng)
        rig = self._rig(rng)
        T_rig_from_model, head_angles = self._head_pose(rng)
        direction, tint, ambient, directional = self._light(rng)
        views = len(rig.names)
        crop_jitter = np.empty((views, 3))
        crop_jitter[:, :2] = rng.uniform(-cfg.crop_center_jitter, cfg.crop_center_jitter, (views, 2))
        crop_jitter[:, 2] = rng.uniform(-cfg.crop_scale_jitter, cfg.crop_scale_jitter, views)
        image_seed = int(rng.integers(0, 2**63 - 1))

        T_camera_from_rig = np.stack([rig.T_camera_from_rig(n).numpy() for n in rig.names])
        K = np.stack([rig.intrinsics[n].matrix(dtype=torch.float64).numpy() for n in rig.names])
        return FaceScene(
            seed=seed,
            identity=identity,
            expression=expression,
            albedo=albedo,
            T_rig_from_model=T_rig_from_model,
            camera_names=rig.names,
            T_camera_from_rig=T_camera_from_rig,
            K=K,
            image_size=cfg.image_size,
            camera_azimuth_deg=np.array([c.azimuth_deg for c in rig.config.cameras], np.float64),
            head_angles_deg=head_angles,
            lighting=self._view_lighting(T_camera_from_rig, direction, tint, ambient, directional),
            light_direction_rig=direction,
            crop_jitter=crop_jitter,
            image_seed=image_seed,
        )
