"""The multi-camera rig: where each camera sits relative to the subject and its intrinsics.

Frames:
    * RIG frame = the reference camera's optical frame (x right, y down, z forward, metres). The subject
      point is at ``(0, 0, subject_distance_m)`` in it.
    * Camera placement: every camera sits on a sphere of radius ``subject_distance_m`` around the subject
      point and looks at it (optical axis through the subject point), its y axis as close to the rig's
      down (+y) as possible (no roll). ``azimuth_deg`` is the horizontal angle around the subject, positive
      towards the rig's right (+x): +45° puts the camera at ``x = d·sin 45°``. ``elevation_deg`` is
      positive when the camera is raised above the subject (towards −y).
      Angles are measured from a virtual camera at azimuth 0, elevation 0; when the reference camera has
      zero azimuth and elevation (the default) that virtual camera IS the reference, otherwise all poses
      are re-expressed relative to the reference camera.

The default rig is the paper's: left / front / right at azimuth −45° / 0° / +45°, 0.7 m from the
subject, each 640×480 with fx = fy = 600 px and the principal point at the image centre.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from dfmvr_core.config import load_yaml
from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.camera import PinholeIntrinsics

__all__ = ["CameraPlacement", "CameraRig", "RigConfig", "default_intrinsics", "load_rig", "load_rig_config"]


def default_intrinsics() -> PinholeIntrinsics:
    """640×480, fx = fy = 600 px, principal point at the image centre (319.5, 239.5)."""
    return PinholeIntrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480)


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class CameraPlacement:
    """One camera of the rig.

    Attributes:
        name: unique, non-empty (e.g. ``"left"``); also used to look the camera up.
        azimuth_deg: degrees, ``|azimuth| < 90``, positive towards the rig's right (+x).
        elevation_deg: degrees, ``|elevation| < 90``, positive = camera above the subject (−y).
        intrinsics: the camera's pinhole intrinsics (see :func:`default_intrinsics`).
    """

    name: str
    azimuth_deg: float
    elevation_deg: float = 0.0
    intrinsics: PinholeIntrinsics = dataclasses.field(default_factory=default_intrinsics)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"name: expected a non-empty string, got {self.name!r}")
        for field in ("azimuth_deg", "elevation_deg"):
            value = _finite_number(field, getattr(self, field))
            if not abs(value) < 90.0:
                raise ConfigError(f"{field}: expected degrees in (-90, 90), got {value!r}")
            object.__setattr__(self, field, value)
        if not isinstance(self.intrinsics, PinholeIntrinsics):
            raise ConfigError(f"intrinsics: expected PinholeIntrinsics, got {type(self.intrinsics).__name__}")


def _default_cameras() -> tuple[CameraPlacement, ...]:
    return (
        CameraPlacement("left", -45.0),
        CameraPlacement("front", 0.0),
        CameraPlacement("right", 45.0),
    )


@dataclasses.dataclass(frozen=True)
class RigConfig:
    """Validated rig description (YAML section ``rig:``, see ``config/rig.yaml``).

    Attributes:
        cameras: at least one camera, unique names, in view order (the pipeline uses left, front, right).
        subject_distance_m: metres from every camera to the subject point, in (0.05, 10].
        reference_camera: name of the camera whose optical frame is the rig frame.
    """

    cameras: tuple[CameraPlacement, ...] = dataclasses.field(default_factory=_default_cameras)
    subject_distance_m: float = 0.7
    reference_camera: str = "front"

    def __post_init__(self) -> None:
        cameras = tuple(self.cameras)
        if not cameras:
            raise ConfigError("cameras: expected at least one camera")
        seen: dict[str, int] = {}
        for i, cam in enumerate(cameras):
            if not isinstance(cam, CameraPlacement):
                raise ConfigError(f"cameras[{i}]: expected a CameraPlacement, got {type(cam).__name__}")
            if cam.name in seen:
                raise ConfigError(
                    f"cameras[{i}].name: duplicate camera name {cam.name!r} (also cameras[{seen[cam.name]}]); "
                    "expected unique names"
                )
            seen[cam.name] = i
        object.__setattr__(self, "cameras", cameras)
        d = _finite_number("subject_distance_m", self.subject_distance_m)
        if not 0.05 < d <= 10.0:
            raise ConfigError(f"subject_distance_m: expected metres in (0.05, 10], got {d!r}")
        object.__setattr__(self, "subject_distance_m", d)
        if self.reference_camera not in seen:
            raise ConfigError(
                f"reference_camera: {self.reference_camera!r} is not a camera of the rig; "
                f"expected one of {sorted(seen)}"
            )


def _placement_pose(azimuth_deg: float, elevation_deg: float, distance: float) -> torch.Tensor:
    """``T_placement_from_camera`` (4×4 float64) in the frame of the virtual azimuth-0 camera."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    subject = torch.tensor((0.0, 0.0, distance), dtype=torch.float64)
    # Unit vector from the subject to the camera.
    back = torch.tensor((math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)), dtype=torch.float64)
    position = subject + distance * back
    z_axis = -back
    down = torch.tensor((0.0, 1.0, 0.0), dtype=torch.float64)
    y_axis = down - (down @ z_axis) * z_axis
    y_axis = y_axis / torch.linalg.vector_norm(y_axis)
    x_axis = torch.linalg.cross(y_axis, z_axis)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.stack((x_axis, y_axis, z_axis), dim=-1)
    T[:3, 3] = position
    return T


def _rigid_inverse(T: torch.Tensor) -> torch.Tensor:
    out = torch.eye(4, dtype=T.dtype)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -(T[:3, :3].T @ T[:3, 3])
    return out


class CameraRig:
    """Poses and intrinsics of the rig's cameras (build with :meth:`from_config` or :func:`load_rig`).

    All poses are CPU ``torch.float64`` ``(4, 4)`` tensors (fresh copies: callers may modify them and
    move them with ``.to(...)``), metres, optical frames.
    """

    def __init__(self, config: RigConfig) -> None:
        if not isinstance(config, RigConfig):
            raise ConfigError(f"config: expected a RigConfig, got {type(config).__name__}")
        self.config = config
        d = config.subject_distance_m
        placement = {c.name: _placement_pose(c.azimuth_deg, c.elevation_deg, d) for c in config.cameras}
        ref_from_placement = _rigid_inverse(placement[config.reference_camera])
        poses = {name: ref_from_placement @ T for name, T in placement.items()}
        poses[config.reference_camera] = torch.eye(4, dtype=torch.float64)  # exact, not merely ≈ I
        self._rig_from_camera = poses
        self._intrinsics = MappingProxyType({c.name: c.intrinsics for c in config.cameras})

    @classmethod
    def from_config(cls, config: RigConfig) -> CameraRig:
        """Build the rig from a validated :class:`RigConfig`."""
        return cls(config)

    @property
    def names(self) -> tuple[str, ...]:
        """Camera names in configuration (view) order."""
        return tuple(c.name for c in self.config.cameras)

    @property
    def reference_camera(self) -> str:
        """Name of the camera whose optical frame is the rig frame."""
        return self.config.reference_camera

    @property
    def intrinsics(self) -> Mapping[str, PinholeIntrinsics]:
        """Read-only mapping camera name → :class:`PinholeIntrinsics`."""
        return self._intrinsics

    @property
    def subject_center_rig(self) -> torch.Tensor:
        """``(3,)`` float64, metres, rig frame: the subject point ``(0, 0, subject_distance_m)``."""
        return torch.tensor((0.0, 0.0, self.config.subject_distance_m), dtype=torch.float64)

    def _pose(self, name: str) -> torch.Tensor:
        try:
            return self._rig_from_camera[name]
        except KeyError:
            raise ConfigError(f"name: unknown camera {name!r}; expected one of {list(self.names)}") from None

    def T_rig_from_camera(self, name: str) -> torch.Tensor:
        """``(4, 4)`` float64 CPU tensor mapping camera-``name`` optical coordinates to rig coordinates."""
        return self._pose(name).clone()

    def T_camera_from_rig(self, name: str) -> torch.Tensor:
        """``(4, 4)`` float64 CPU tensor mapping rig coordinates to camera-``name`` optical coordinates."""
        return _rigid_inverse(self._pose(name))


def load_rig_config(path: str | Path) -> RigConfig:
    """Read the ``rig:`` section of a YAML file into a :class:`RigConfig`.

    Raises:
        ConfigError: missing file, invalid YAML, no ``rig`` section, or an invalid field; the message holds
            the file and the dotted field path (e.g. ``rig.cameras[0].azimuth_deg``).
    """
    return load_yaml(RigConfig, path, section="rig")


def load_rig(path: str | Path) -> CameraRig:
    """Load ``config/rig.yaml``-style files into a :class:`CameraRig` (see :func:`load_rig_config`)."""
    return CameraRig.from_config(load_rig_config(path))
