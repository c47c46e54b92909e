"""The camera rig: default config file, geometry of the placements, validation of the YAML."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry import (
    CameraPlacement,
    CameraRig,
    PinholeIntrinsics,
    RigConfig,
    default_intrinsics,
    is_rotation_matrix,
    load_rig,
    load_rig_config,
    project_points,
)

RIG_YAML = Path(__file__).resolve().parents[3] / "config" / "rig.yaml"


@pytest.fixture(scope="module")
def rig() -> CameraRig:
    return load_rig(RIG_YAML)


def _camera_point(rig: CameraRig, name: str, point_rig: torch.Tensor) -> torch.Tensor:
    T = rig.T_camera_from_rig(name)
    return T[:3, :3] @ point_rig + T[:3, 3]


def test_default_yaml_equals_code_defaults(rig: CameraRig) -> None:
    assert rig.config == RigConfig()
    assert rig.names == ("left", "front", "right")
    assert rig.reference_camera == "front"
    assert rig.config.subject_distance_m == 0.7
    assert rig.intrinsics["left"] == PinholeIntrinsics(600.0, 600.0, 319.5, 239.5, 640, 480) == default_intrinsics()
    assert [c.azimuth_deg for c in rig.config.cameras] == [-45.0, 0.0, 45.0]


def test_reference_camera_is_exactly_the_identity(rig: CameraRig) -> None:
    assert torch.equal(rig.T_rig_from_camera("front"), torch.eye(4, dtype=torch.float64))
    assert torch.equal(rig.subject_center_rig, torch.tensor([0.0, 0.0, 0.7], dtype=torch.float64))


@pytest.mark.parametrize("name", ["left", "front", "right"])
def test_every_camera_looks_at_the_subject(rig: CameraRig, name: str) -> None:
    T = rig.T_rig_from_camera(name)
    assert T.dtype == torch.float64 and T.shape == (4, 4)
    assert bool(is_rotation_matrix(T[:3, :3], atol=1e-12))
    centre, z_axis = T[:3, 3], T[:3, 2]
    to_subject = rig.subject_center_rig - centre
    assert float(torch.linalg.vector_norm(to_subject)) == pytest.approx(0.7, abs=1e-12)
    assert torch.allclose(torch.linalg.cross(z_axis, to_subject), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert float(z_axis @ to_subject) > 0  # looking towards it, not away
    assert torch.allclose(
        _camera_point(rig, name, rig.subject_center_rig),
        torch.tensor([0.0, 0.0, 0.7], dtype=torch.float64),
        atol=1e-12,
    )
    # no roll: image x axis is horizontal, image y axis points down (+y of the rig)
    assert abs(float(T[1, 0])) < 1e-12 and float(T[1, 1]) > 0.99


@pytest.mark.parametrize("name", ["left", "front", "right"])
def test_subject_centre_projects_to_principal_point(rig: CameraRig, name: str) -> None:
    intr = rig.intrinsics[name]
    p = _camera_point(rig, name, rig.subject_center_rig)
    uv = project_points(p[None], intr.matrix(torch.float64))[0]
    assert uv.tolist() == pytest.approx([intr.cx, intr.cy], abs=1e-9)


def test_left_camera_is_at_negative_x_and_sees_the_subject_to_its_right(rig: CameraRig) -> None:
    left, right = rig.T_rig_from_camera("left")[:3, 3], rig.T_rig_from_camera("right")[:3, 3]
    assert float(left[0]) == pytest.approx(-0.7 * math.sin(math.radians(45)))
    assert float(right[0]) == pytest.approx(0.7 * math.sin(math.radians(45)))
    assert float(left[2]) == pytest.approx(0.7 * (1 - math.cos(math.radians(45))))
    # a point right of the subject (rig +x) is farther from the left camera than from the right one
    p = rig.subject_center_rig + torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)
    assert float(_camera_point(rig, "left", p)[2]) > float(_camera_point(rig, "right", p)[2])


def test_camera_from_rig_is_the_inverse(rig: CameraRig) -> None:
    for name in rig.names:
        product = rig.T_camera_from_rig(name) @ rig.T_rig_from_camera(name)
        assert torch.allclose(product, torch.eye(4, dtype=torch.float64), atol=1e-12)


def test_returned_poses_are_copies(rig: CameraRig) -> None:
    rig.T_rig_from_camera("left")[0, 3] = 99.0
    assert float(rig.T_rig_from_camera("left")[0, 3]) != 99.0
    with pytest.raises(TypeError):
        rig.intrinsics["left"] = default_intrinsics()  # type: ignore[index]


def test_elevation_raises_the_camera() -> None:
    rig = CameraRig.from_config(RigConfig(cameras=(CameraPlacement("front", 0.0), CameraPlacement("top", 0.0, 30.0))))
    T = rig.T_rig_from_camera("top")
    assert float(T[1, 3]) == pytest.approx(-0.7 * math.sin(math.radians(30)))  # above = −y
    assert torch.allclose(
        _camera_point(rig, "top", rig.subject_center_rig),
        torch.tensor([0.0, 0.0, 0.7], dtype=torch.float64),
        atol=1e-12,
    )
    assert abs(float(T[1, 0])) < 1e-12  # still no roll


def test_non_zero_azimuth_reference_defines_the_rig_frame() -> None:
    cams = (CameraPlacement("a", -20.0), CameraPlacement("b", 40.0, 10.0))
    rig = CameraRig.from_config(RigConfig(cameras=cams, subject_distance_m=1.2, reference_camera="a"))
    assert torch.equal(rig.T_rig_from_camera("a"), torch.eye(4, dtype=torch.float64))
    assert torch.allclose(
        _camera_point(rig, "b", rig.subject_center_rig),
        torch.tensor([0.0, 0.0, 1.2], dtype=torch.float64),
        atol=1e-12,
    )
    # b is 60° of azimuth to the right of a: its position is at +x in a's frame
    assert float(rig.T_rig_from_camera("b")[0, 3]) > 0


def test_unknown_camera_name() -> None:
    rig = CameraRig.from_config(RigConfig())
    with pytest.raises(ConfigError, match=r"^name: unknown camera 'top'; expected one of \['left', 'front', 'right'\]"):
        rig.T_rig_from_camera("top")


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _default_data() -> dict:
    return yaml.safe_load(RIG_YAML.read_text())


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (
            lambda r: r["cameras"][0].update(azimuth_deg=95.0),
            r"rig\.cameras\[0\]\.azimuth_deg: expected degrees in \(-90, 90\)",
        ),
        (
            lambda r: r["cameras"][2].update(elevation_deg=-90.0),
            r"rig\.cameras\[2\]\.elevation_deg: expected degrees",
        ),
        (
            lambda r: r["cameras"][0].update(azimuth_deg=".nan"),
            r"rig\.cameras\[0\]\.azimuth_deg: expected a number",
        ),
        (
            lambda r: r["cameras"][1].update(name="left"),
            r"rig\.cameras\[1\]\.name: duplicate camera name 'left'",
        ),
        (lambda r: r["cameras"][1].update(name=""), r"rig\.cameras\[1\]\.name: expected a non-empty string"),
        (
            lambda r: r["cameras"][0]["intrinsics"].update(fx=0.0),
            r"rig\.cameras\[0\]\.intrinsics\.fx: expected a positive",
        ),
        (
            lambda r: r["cameras"][0]["intrinsics"].pop("width"),
            r"rig\.cameras\[0\]\.intrinsics\.width: required field",
        ),
        (lambda r: r["cameras"][0].update(yaw=1.0), r"rig\.cameras\[0\]\.yaw: unknown field"),
        (
            lambda r: r.update(reference_camera="top"),
            r"rig\.reference_camera: 'top' is not a camera of the rig",
        ),
        (
            lambda r: r.update(subject_distance_m=0.05),
            r"rig\.subject_distance_m: expected metres in \(0\.05, 10\]",
        ),
        (lambda r: r.update(subject_distance_m=11), r"rig\.subject_distance_m: expected metres"),
        (lambda r: r.update(cameras=[]), r"rig\.cameras: expected at least one camera"),
    ],
)
def test_invalid_yaml_values_name_the_field(tmp_path: Path, edit: Callable[[dict], object], pattern: str) -> None:
    data = _default_data()
    edit(data["rig"])
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_rig(path)
    assert str(info.value).startswith(str(path))


def test_yaml_nan_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text(RIG_YAML.read_text().replace("azimuth_deg: -45.0", "azimuth_deg: .nan"))
    with pytest.raises(ConfigError, match=r"rig\.cameras\[0\]\.azimuth_deg: expected a finite number"):
        load_rig_config(path)


def test_partial_yaml_uses_defaults_and_missing_section_is_reported(tmp_path: Path) -> None:
    assert load_rig_config(_write(tmp_path, {"rig": {"subject_distance_m": 1.0}})) == RigConfig(subject_distance_m=1.0)
    assert load_rig_config(_write(tmp_path, {"rig": None})) == RigConfig()
    with pytest.raises(ConfigError, match=r"expected a top-level 'rig' section"):
        load_rig_config(_write(tmp_path, {"cameras": []}))
    with pytest.raises(ConfigError, match=r"config file not found"):
        load_rig_config(tmp_path / "missing.yaml")
