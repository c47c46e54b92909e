"""What a synthetic face scene may look like: the validated, YAML-loadable :class:`SceneConfig`.

The defaults follow the paper's set-up (section V; Pixel-Face: three cameras, the side ones at ±45°; Table V:
side-camera yaw 10-45° and random light) on the project's default rig (``config/rig.yaml``: 640×480, fx = 600,
subject 0.7 m from the front camera). Every range is ``(low, high)`` and sampled uniformly unless a field says
otherwise. Angles are degrees (``_deg``), distances metres (``_m``).

YAML layout (``load_scene_config``)::

    scene:
      identity_std: 1.0
      side_yaw: random          # fixed (the rig's azimuths) | random (|azimuth| in side_yaw_range_deg)
      lighting: {ambient_range: [0.5, 0.95], directional_range: [0.0, 0.6]}
      rig: {subject_distance_m: 0.7}
    crop: {box_scale: 1.5}      # optional: the CropCamera of training crops
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.geometry.rig import RigConfig

__all__ = [
    "BackgroundConfig",
    "DegradationConfig",
    "LightingConfig",
    "SceneConfig",
    "config_to_dict",
    "load_scene_config",
]

BACKGROUND_KINDS = ("procedural", "flat", "black")
SIDE_YAW_MODES = ("fixed", "random")


def _number(name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    if not low <= float(value) <= high:
        raise ConfigError(f"{name}: expected a value in [{low}, {high}], got {value!r}")
    return float(value)


def _range(name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ConfigError(f"{name}: expected a (low, high) pair, got {value!r}")
    lo = _number(f"{name}[0]", value[0], low, high)
    hi = _number(f"{name}[1]", value[1], low, high)
    if lo > hi:
        raise ConfigError(f"{name}: expected low <= high, got {value!r}")
    return lo, hi


def _set_numbers(obj: Any, spec: Mapping[str, tuple[float, float]], ranges: Mapping[str, tuple[float, float]]) -> None:
    for name, (low, high) in spec.items():
        object.__setattr__(obj, name, _number(name, getattr(obj, name), low, high))
    for name, (low, high) in ranges.items():
        object.__setattr__(obj, name, _range(name, getattr(obj, name), low, high))


@dataclasses.dataclass(frozen=True)
class LightingConfig:
    """Random SH lighting of one scene (bands 0 and 1 of the 27-value model, :mod:`dfmvr_core.morphable.lighting`).

    One light per scene, fixed in the rig frame and rotated into each camera, so the views agree (the paper's
    per-view lighting heads see one physical light from three directions).

    Attributes:
        ambient_range: irradiance of the uniform (DC) term; 1.0 shows the albedo unchanged.
        directional_range: irradiance added on surfaces facing the light (band 1); a surface facing away loses as
            much.
        light_azimuth_deg: ``|azimuth|`` limit of the light direction around the rig's vertical axis, measured from
            the direction towards the cameras (0 = light from the front camera).
        light_elevation_deg: ``|elevation|`` limit (positive = light from above).
        tint: per-channel multiplicative colour tint, each of R, G, B in ``[1 − tint, 1 + tint]``.
    """

    ambient_range: tuple[float, float] = (0.55, 0.95)
    directional_range: tuple[float, float] = (0.0, 0.5)
    light_azimuth_deg: float = 70.0
    light_elevation_deg: float = 50.0
    tint: float = 0.08

    def __post_init__(self) -> None:
        _set_numbers(
            self,
            {"light_azimuth_deg": (0.0, 180.0), "light_elevation_deg": (0.0, 90.0), "tint": (0.0, 0.9)},
            {"ambient_range": (0.0, 10.0), "directional_range": (0.0, 10.0)},
        )


@dataclasses.dataclass(frozen=True)
class BackgroundConfig:
    """Procedural backgrounds (no external data): gradients, low-frequency noise, random shapes, pixel noise.

    Attributes:
        kind: ``procedural`` (the default), ``flat`` (one random colour) or ``black``.
        shapes_range: how many random shapes (circles, rectangles, ellipses, lines, polygons) to draw.
        texture_amplitude: amplitude of the smooth random texture, in [0, 1] intensity.
        noise_std: per-pixel Gaussian noise, in [0, 1] intensity.
    """

    kind: str = "procedural"
    shapes_range: tuple[int, int] = (2, 8)
    texture_amplitude: float = 0.15
    noise_std: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in BACKGROUND_KINDS:
            raise ConfigError(f"kind: expected one of {list(BACKGROUND_KINDS)}, got {self.kind!r}")
        lo, hi = _range("shapes_range", self.shapes_range, 0, 100)
        if lo != int(lo) or hi != int(hi):
            raise ConfigError(f"shapes_range: expected integers, got {self.shapes_range!r}")
        object.__setattr__(self, "shapes_range", (int(lo), int(hi)))
        _set_numbers(self, {"texture_amplitude": (0.0, 1.0), "noise_std": (0.0, 1.0)}, {})


@dataclasses.dataclass(frozen=True)
class DegradationConfig:
    """Camera-like degradation of the final images (off by default): blur, then noise, then JPEG.

    Applied to each output image (full frame or crop) independently, each step with probability ``probability``.

    Attributes:
        enabled: master switch.
        probability: chance that each step is applied to a view.
        blur_sigma_range: Gaussian blur sigma in output pixels.
        noise_std_range: Gaussian pixel noise, [0, 1] intensity.
        jpeg_quality_range: JPEG re-encoding quality (OpenCV ``IMWRITE_JPEG_QUALITY``), integers in [1, 100].
    """

    enabled: bool = False
    probability: float = 0.5
    blur_sigma_range: tuple[float, float] = (0.3, 1.2)
    noise_std_range: tuple[float, float] = (0.005, 0.03)
    jpeg_quality_range: tuple[int, int] = (40, 95)

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"enabled: expected true or false, got {self.enabled!r}")
        _set_numbers(
            self,
            {"probability": (0.0, 1.0)},
            {"blur_sigma_range": (0.0, 20.0), "noise_std_range": (0.0, 1.0)},
        )
        lo, hi = _range("jpeg_quality_range", self.jpeg_quality_range, 1, 100)
        if lo != int(lo) or hi != int(hi):
            raise ConfigError(f"jpeg_quality_range: expected integers, got {self.jpeg_quality_range!r}")
        object.__setattr__(self, "jpeg_quality_range", (int(lo), int(hi)))


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Distribution of synthetic multi-view face scenes (faces, light, head pose, rig, crops, images).

    Attributes:
        identity_std: std of the identity coefficients (ICT and BFM bases are scaled for N(0, 1)).
        identity_components: how many identity components the ground truth uses (None = all of the model's);
            the rest are zero. Independent of what a network predicts (ICT has 100; a network may regress fewer).
        expression_probability: blendshape models (ICT, weights in [0, 1]): chance that each blendshape is active.
        expression_max_weight: blendshape models: an active blendshape's weight is uniform in [0, this].
        expression_std: PCA models (BFM): std of the N(0, σ²) expression coefficients.
        albedo_std: std of the albedo coefficients.
        lighting: :class:`LightingConfig`.
        head_yaw_deg, head_pitch_deg, head_roll_deg: head rotation ranges relative to facing the reference camera
            (model-frame Euler angles, ``R = Rz(roll)·Ry(yaw)·Rx(pitch)``).
        position_jitter_m: the face centre moves uniformly within ±this in the rig's x and y.
        distance_range_m: distance of the face centre from the reference camera along its optical axis.
        side_yaw: ``fixed``: the rig's camera azimuths (±45° by default); ``random``: each camera with a non-zero
            azimuth gets ``|azimuth|`` uniform in ``side_yaw_range_deg`` per sample, keeping its side (Table V).
        side_yaw_range_deg: ``(low, high)`` degrees for ``random``.
        rig: the camera rig (names, intrinsics, image size, camera distance): :class:`RigConfig`. All cameras must
            share one image size (the views are rendered as one batch).
        crop_center_jitter: crop-box centre shift, uniform within ±this fraction of the box side per axis and view
            (a face detector's error; training tolerates it).
        crop_scale_jitter: the box side is multiplied by ``exp(u)``, ``u`` uniform in ±this.
        background: :class:`BackgroundConfig`.
        fill_holes: paint and label the mesh's eye and mouth openings (ICT has none of its eyeballs or mouth
            socket in the full face area) instead of showing the background through them.
        degradation: :class:`DegradationConfig`.
    """

    identity_std: float = 1.0
    identity_components: int | None = None
    expression_probability: float = 0.15
    expression_max_weight: float = 0.8
    expression_std: float = 0.7
    albedo_std: float = 0.8
    lighting: LightingConfig = dataclasses.field(default_factory=LightingConfig)
    head_yaw_deg: tuple[float, float] = (-20.0, 20.0)
    head_pitch_deg: tuple[float, float] = (-15.0, 15.0)
    head_roll_deg: tuple[float, float] = (-8.0, 8.0)
    position_jitter_m: float = 0.03
    distance_range_m: tuple[float, float] = (0.6, 0.8)
    side_yaw: str = "fixed"
    side_yaw_range_deg: tuple[float, float] = (10.0, 45.0)
    rig: RigConfig = dataclasses.field(default_factory=RigConfig)
    crop_center_jitter: float = 0.04
    crop_scale_jitter: float = 0.08
    background: BackgroundConfig = dataclasses.field(default_factory=BackgroundConfig)
    fill_holes: bool = True
    degradation: DegradationConfig = dataclasses.field(default_factory=DegradationConfig)

    def __post_init__(self) -> None:
        _set_numbers(
            self,
            {
                "identity_std": (0.0, 10.0),
                "expression_probability": (0.0, 1.0),
                "expression_max_weight": (0.0, 1.0),
                "expression_std": (0.0, 10.0),
                "albedo_std": (0.0, 10.0),
                "position_jitter_m": (0.0, 1.0),
                "crop_center_jitter": (0.0, 0.2),
                "crop_scale_jitter": (0.0, 0.5),
            },
            {
                "head_yaw_deg": (-80.0, 80.0),
                "head_pitch_deg": (-80.0, 80.0),
                "head_roll_deg": (-180.0, 180.0),
                "distance_range_m": (0.1, 10.0),
                "side_yaw_range_deg": (0.0, 89.0),
            },
        )
        if not isinstance(self.fill_holes, bool):
            raise ConfigError(f"fill_holes: expected true or false, got {self.fill_holes!r}")
        k = self.identity_components
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise ConfigError(f"identity_components: expected a non-negative integer or null (all), got {k!r}")
        if self.side_yaw not in SIDE_YAW_MODES:
            raise ConfigError(f"side_yaw: expected one of {list(SIDE_YAW_MODES)}, got {self.side_yaw!r}")
        for name, cls in (
            ("lighting", LightingConfig),
            ("rig", RigConfig),
            ("background", BackgroundConfig),
            ("degradation", DegradationConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        sizes = {(c.intrinsics.width, c.intrinsics.height) for c in self.rig.cameras}
        if len(sizes) != 1:
            raise ConfigError(
                f"rig.cameras: expected one image size for all cameras (they are rendered as one batch), got "
                f"{sorted(sizes)}"
            )

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the full camera images, pixels."""
        intr = self.rig.cameras[0].intrinsics
        return intr.height, intr.width


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass: tuples become lists; ``from_mapping`` reads it back."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def load_scene_config(path: str | Path) -> tuple[SceneConfig, CropCamera]:
    """Read a YAML file with a ``scene:`` section (:class:`SceneConfig`) and an optional ``crop:`` section
    (:class:`~dfmvr_core.geometry.face_crop.CropCamera`); absent sections give the defaults.

    Raises:
        ConfigError: missing file, invalid YAML, an unknown top-level section or an invalid field (the message
            names the file and the dotted field, e.g. ``scene.lighting.tint``).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping with 'scene' and/or 'crop' sections")
    unknown = sorted(set(data) - {"scene", "crop"})
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown section; expected 'scene' and/or 'crop'")
    try:
        scene = from_mapping(SceneConfig, data.get("scene") or {}, path="scene")
        crop = from_mapping(CropCamera, data.get("crop") or {}, path="crop")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return scene, crop
