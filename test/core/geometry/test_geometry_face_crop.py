"""The canonical crop camera: exact round trips and the projection error of the real-camera mapping."""

from __future__ import annotations

import math

import pytest
import torch

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.camera import project_points
from dfmvr_core.geometry.crop import apply_affine, crop_transform_from_box, intrinsics_in_crop
from dfmvr_core.geometry.face_crop import (
    CropCamera,
    camera_pose_to_crop,
    crop_pose_to_camera,
    face_box_from_landmarks,
    face_box_from_roi,
    virtual_camera_rotation,
)
from dfmvr_core.geometry.pose import euler_pose_to_camera, make_transform, transform_points
from dfmvr_core.geometry.rotations import euler_to_matrix

K_REAL = torch.tensor(((600.0, 0.0, 319.5), (0.0, 600.0, 239.5), (0.0, 0.0, 1.0)), dtype=torch.float64)


def _face_in_camera(ict_model, angles_deg, position_m) -> tuple[torch.Tensor, torch.Tensor]:
    """(T_cam_from_model (4,4), 68 landmarks (68,3) model frame) for the ICT mean face at a real-camera pose."""
    angles = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    R, _ = euler_pose_to_camera(angles, torch.zeros(3, dtype=torch.float64), 1.0)
    T = make_transform(R, torch.tensor(position_m, dtype=torch.float64))
    coeffs = ict_model.zero_coefficients(1)
    verts = ict_model.decode_shape(coeffs["identity"], coeffs["expression"]).double()
    return T, ict_model.landmarks(verts)[0]


def _crop_of(T, lm3d, camera: CropCamera) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (2,3), landmarks in crop pixels (68,2)) for the crop the preprocessing would cut."""
    uv = project_points(transform_points(lm3d, T[:3, :3], T[:3, 3]), K_REAL)
    center, side = face_box_from_landmarks(uv, camera.box_scale)
    A = crop_transform_from_box(center, side, camera.size)
    return A, apply_affine(uv, A)


def test_crop_camera_validates_fields() -> None:
    with pytest.raises(ConfigError, match=r"^focal_px: expected a value in"):
        CropCamera(focal_px=0.0)
    with pytest.raises(ConfigError, match=r"^size: expected an integer"):
        CropCamera(size=224.0)
    with pytest.raises(ConfigError, match=r"^box_scale: expected a finite number"):
        CropCamera(box_scale=float("nan"))
    K = CropCamera().matrix(torch.float64)
    assert K[0, 0] == 1015.0 and K[0, 2] == 111.5 and K[1, 2] == 111.5


def test_virtual_rotation_maps_optical_axis_to_ray() -> None:
    rays = torch.nn.functional.normalize(torch.tensor(((0.0, 0.0, 1.0), (0.3, -0.2, 1.0), (-0.5, 0.4, 0.8))), dim=-1)
    R = virtual_camera_rotation(rays.double())
    ez = torch.tensor((0.0, 0.0, 1.0), dtype=torch.float64)
    torch.testing.assert_close(R @ ez, rays.double())
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(R[0], torch.eye(3, dtype=torch.float64))


@pytest.mark.parametrize("position", [(0.0, 0.0, 0.7), (0.12, -0.08, 0.6), (-0.25, 0.15, 0.9)])
def test_pose_round_trip_is_exact(ict_model, position) -> None:
    camera = CropCamera()
    T, lm3d = _face_in_camera(ict_model, (10.0, -30.0, 5.0), position)
    A, _ = _crop_of(T, lm3d, camera)
    angles, translation = camera_pose_to_crop(T, K_REAL, A, camera)
    back = crop_pose_to_camera(angles, translation, K_REAL, A, camera)
    torch.testing.assert_close(back, T, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    ("angles_deg", "position", "max_px"),
    [
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.7), 6.0),  # on axis: only the perspective of 0.7 m vs 1 m
        ((5.0, 45.0, 0.0), (0.0, 0.02, 0.7), 6.0),  # a ±45° rig view
        ((-10.0, 20.0, 8.0), (0.15, -0.1, 0.65), 12.0),  # off axis (≈ 16°)
    ],
)
def test_canonical_projection_matches_the_crop(ict_model, angles_deg, position, max_px) -> None:
    """Rendering the canonical pose with K_c approximates the crop (why losses render with K_crop instead).

    Bounds the approximation documented in the module: a few pixels in a 224 crop, never a different face.
    """
    camera = CropCamera()
    T, lm3d = _face_in_camera(ict_model, angles_deg, position)
    A, lm_crop = _crop_of(T, lm3d, camera)
    angles, translation = camera_pose_to_crop(T, K_REAL, A, camera)
    R_c, t_c = euler_pose_to_camera(angles, translation, camera.reference_distance)
    uv_canonical = project_points(transform_points(lm3d, R_c, t_c), camera.matrix(torch.float64))
    error = (uv_canonical - lm_crop).norm(dim=-1)
    assert float(error.max()) < max_px, f"max landmark error {float(error.max()):.2f} px in a 224 crop"
    # The canonical depth is near the reference distance when the box policy matches the focal.
    assert 0.8 < float(t_c[2]) < 1.25
    # The exact path: the real pose rendered with the crop's real intrinsics reproduces the crop.
    T_back = crop_pose_to_camera(angles, translation, K_REAL, A, camera)
    K_crop = intrinsics_in_crop(K_REAL, A)
    uv_exact = project_points(transform_points(lm3d, T_back[:3, :3], T_back[:3, 3]), K_crop)
    torch.testing.assert_close(uv_exact, lm_crop, atol=1e-8, rtol=0)


def test_zero_canonical_pose_is_frontal_on_the_crop_ray() -> None:
    camera = CropCamera()
    A = crop_transform_from_box(torch.tensor((420.0, 180.0), dtype=torch.float64), 200.0, camera.size)
    T = crop_pose_to_camera(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), K_REAL, A, camera)
    centre_uv = project_points(T[:3, 3][None], K_REAL)[0]
    torch.testing.assert_close(centre_uv, torch.tensor((420.0, 180.0), dtype=torch.float64), atol=1e-9, rtol=0)
    # The face looks back along the ray: model +z (towards the viewer) is anti-parallel to the ray.
    nose_dir = T[:3, :3] @ torch.tensor((0.0, 0.0, 1.0), dtype=torch.float64)
    ray = T[:3, 3] / T[:3, 3].norm()
    assert float(nose_dir @ ray) == pytest.approx(-1.0, abs=1e-12)
    assert euler_to_matrix(torch.zeros(3)).shape == (3, 3)


def test_face_boxes() -> None:
    lm = torch.tensor(((10.0, 20.0), (30.0, 60.0), (20.0, 40.0)))
    center, side = face_box_from_landmarks(lm, 1.5)
    torch.testing.assert_close(center, torch.tensor((20.0, 40.0)))
    assert float(side) == pytest.approx(60.0)
    center, side = face_box_from_roi(torch.tensor((10.0, 20.0, 30.0, 60.0)), 1.0)
    torch.testing.assert_close(center, torch.tensor((20.0, 40.0)))
    assert float(side) == pytest.approx(40.0)
    with pytest.raises(ConfigError, match=r"^roi: expected \(x0, y0, x1, y1\)"):
        face_box_from_roi(torch.tensor((10.0, 20.0, 5.0, 60.0)), 1.0)
