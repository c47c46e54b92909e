"""The face crop's canonical camera: what the network's pose means, and how it maps to the real camera.

DF-MVR regresses a pose per view from a 224×224 face crop (paper eq. 1 and section III-D; Deep3DFace's camera
model). The network never sees the real intrinsics, so its pose refers to a fixed **canonical crop camera**:
focal ``f_c`` pixels, principal point at the crop centre ``((S − 1)/2, (S − 1)/2)``, with the network's Euler pose
decoded by :func:`~dfmvr_core.geometry.pose.euler_pose_to_camera` at ``reference_distance`` (zero pose = frontal
face at that distance on the optical axis).

The crop itself is an affine of the real image (:func:`~dfmvr_core.geometry.crop.crop_transform_from_box`), i.e.
the real camera with intrinsics ``K_crop = A·K`` (focal ``f' = s·f``, crop scale ``s``). Mapping the canonical pose
to the real camera (and back, for training labels) uses the standard crop-camera model:

1. the **virtual camera** shares the real camera's centre and looks along the ray through the crop centre
   (rotation ``R_corr``, the minimal rotation taking the optical axis ``e_z`` to that ray, no roll);
2. its focal is ``f_v = f' / cos θ`` (θ = angle between the ray and the real optical axis: the image scale of a
   small object seen along an off-axis ray, in the tangential direction);
3. the canonical camera (focal ``f_c``) and the virtual camera (focal ``f_v``) see the same image when the face is
   moved along the viewing axis: ``t_v = (t_x, t_y, t_z · f_v / f_c)`` (exact for the model origin's pixel and the
   face's apparent size; the residual perspective difference scales with depth extent / distance, ≈ 0.1 / 1).

So ``T_cam_from_model = [R_corr · R_c | R_corr · t_v]`` with ``(R_c, t_c)`` the canonical pose;
:func:`crop_pose_to_camera` and :func:`camera_pose_to_crop` are exact inverses of each other.

**The canonical camera is a parameterization, not a renderer.** Losses and overlays render the *real* pose
(``crop_pose_to_camera``) with the crop's *real* intrinsics ``K_crop = A·K``, which reproduces the crop exactly; the
network's output space is merely normalised (translation along the viewing ray scaled to the apparent face size,
rotation relative to the ray), so a face at 0.5 m and one at 1.2 m with the same crop look give similar outputs.
Rendering with ``K_c`` instead is only approximately right (the perspective of a face at 0.7 m differs from one at
1 m): ≈ 4-9 px of landmark error in a 224 crop, measured in the tests.

Hand-written: this convention is specific to this project (no library defines a crop camera for a regressed pose);
every piece is a few batched tensor ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.crop import DEFAULT_CROP_SIZE, intrinsics_in_crop
from dfmvr_core.geometry.pose import camera_to_euler_pose, euler_pose_to_camera, make_transform
from dfmvr_core.validation import check_finite, check_shape

__all__ = [
    "CropCamera",
    "camera_pose_to_crop",
    "crop_pose_to_camera",
    "face_box_from_landmarks",
    "face_box_from_roi",
    "virtual_camera_rotation",
]


@dataclass(frozen=True)
class CropCamera:
    """The canonical crop camera and the crop policy (shared by training data, preprocessing and inference).

    Attributes:
        size: crop side in pixels (the network's input, 224).
        focal_px: canonical focal length in crop pixels. 1015 as Deep3DFace's 224-pixel camera: with
            ``reference_distance`` 1 m and ``box_scale`` 1.5 a typical adult face (≈ 0.15 m jaw to jaw) spans ≈ 150 px.
        reference_distance: metres; the canonical depth of a zero pose.
        box_scale: crop side = ``box_scale`` × the larger side of the 68-landmark bounding box (or of a face ROI).
    """

    size: int = DEFAULT_CROP_SIZE
    focal_px: float = 1015.0
    reference_distance: float = 1.0
    box_scale: float = 1.5

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 16 <= self.size <= 4096:
            raise ConfigError(f"size: expected an integer crop side in [16, 4096] pixels, got {self.size!r}")
        for name, low, high in (("focal_px", 1.0, 1e6), ("reference_distance", 1e-3, 100.0), ("box_scale", 0.5, 5.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name}: expected a finite number, got {value!r}")
            if not low <= float(value) <= high:
                raise ConfigError(f"{name}: expected a value in [{low}, {high}], got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def center_px(self) -> float:
        """Principal point coordinate (both axes) of the canonical camera, crop pixels: ``(size − 1) / 2``."""
        return (self.size - 1) / 2.0

    def matrix(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
        """``K_c`` ``(3, 3)``: the canonical camera matrix in crop pixels (what training renders the crop with)."""
        c = self.center_px
        f = self.focal_px
        return torch.tensor(((f, 0.0, c), (0.0, f, c), (0.0, 0.0, 1.0)), dtype=dtype, device=device)


def face_box_from_landmarks(landmarks: torch.Tensor, box_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Square crop box around 2D landmarks: centre of their bounding box, side ``box_scale`` × its larger side.

    Args:
        landmarks: ``(..., L, 2)`` float, image pixels (e.g. the 68 iBUG points).
        box_scale: > 0.

    Returns:
        ``(center (..., 2), side (...))`` in pixels, for :func:`~dfmvr_core.geometry.crop.crop_transform_from_box`.
    """
    check_shape("landmarks", landmarks, (..., None, 2))
    check_finite("landmarks", landmarks)
    lo = landmarks.amin(dim=-2)
    hi = landmarks.amax(dim=-2)
    return (lo + hi) / 2.0, (hi - lo).amax(dim=-1).clamp_min(1.0) * float(box_scale)


def face_box_from_roi(roi_xyxy: torch.Tensor, box_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Square crop box from a face ROI ``(x0, y0, x1, y1)`` pixels, treated like a landmark bounding box.

    A ROI should bound the face as the 68 landmarks do (brows to chin, jaw line to jaw line); the same
    ``box_scale`` as for landmarks then gives crops like the ones the network was trained on.

    Args:
        roi_xyxy: ``(..., 4)`` float pixels with ``x1 > x0`` and ``y1 > y0``.

    Returns:
        ``(center (..., 2), side (...))`` pixels.
    """
    check_shape("roi_xyxy", roi_xyxy, (..., 4))
    check_finite("roi_xyxy", roi_xyxy)
    lo, hi = roi_xyxy[..., :2], roi_xyxy[..., 2:]
    if bool(((hi - lo) <= 0).any()):
        raise ConfigError(f"roi: expected (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {roi_xyxy.tolist()}")
    return (lo + hi) / 2.0, (hi - lo).amax(dim=-1) * float(box_scale)


def _crop_ray_and_focal(K: torch.Tensor, A: torch.Tensor, camera: CropCamera) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit ray (real camera frame) through the crop centre ``(..., 3)`` and the virtual focal ``f_v`` ``(...)``."""
    K_crop = intrinsics_in_crop(K, A)
    c = camera.center_px
    fx, fy = K_crop[..., 0, 0], K_crop[..., 1, 1]
    x = (c - K_crop[..., 0, 2]) / fx
    y = (c - K_crop[..., 1, 2]) / fy
    ray = torch.stack((x, y, torch.ones_like(x)), dim=-1)
    norm = ray.norm(dim=-1)
    cos_theta = 1.0 / norm
    return ray / norm[..., None], torch.sqrt(fx * fy) / cos_theta


def virtual_camera_rotation(ray: torch.Tensor) -> torch.Tensor:
    """Minimal rotation ``R`` (real-from-virtual) with ``R e_z = ray`` (Rodrigues about ``e_z × ray``).

    Args:
        ray: ``(..., 3)`` unit vectors with positive z (in front of the camera).

    Returns:
        ``(..., 3, 3)`` rotations; the identity for ``ray = e_z``.
    """
    check_shape("ray", ray, (..., 3))
    x, y, z = ray.unbind(-1)
    # R = I + [k]× + [k]×² / (1 + z) with k = e_z × ray = (−y, x, 0): closed form, no division by sin θ.
    inv = 1.0 / (1.0 + z)
    rows = (
        1.0 - x * x * inv,
        -x * y * inv,
        x,
        -x * y * inv,
        1.0 - y * y * inv,
        y,
        -x,
        -y,
        z,
    )
    return torch.stack(rows, dim=-1).reshape(*ray.shape[:-1], 3, 3)


def crop_pose_to_camera(
    angles: torch.Tensor, translation: torch.Tensor, K: torch.Tensor, A: torch.Tensor, camera: CropCamera
) -> torch.Tensor:
    """Network pose in the canonical crop camera → ``T_cam_from_model`` in the real camera (optical frame).

    Args:
        angles: ``(..., 3)`` float radians (pitch, yaw, roll), the network's pose (see ``euler_pose_to_camera``).
        translation: ``(..., 3)`` float metres, model-frame axes.
        K: ``(..., 3, 3)`` real camera matrices, image pixels.
        A: ``(..., 2, 3)`` image → crop affines of the crops the pose was predicted from.
        camera: the canonical crop camera.

    Returns:
        ``(..., 4, 4)`` camera(optical)-from-model transforms, metres, dtype of ``translation``.
    """
    check_shape("angles", angles, (..., 3))
    check_shape("K", K, (..., 3, 3))
    check_shape("A", A, (..., 2, 3))
    dtype = translation.dtype
    R_c, t_c = euler_pose_to_camera(angles, translation, camera.reference_distance)
    ray, f_v = _crop_ray_and_focal(K.to(dtype), A.to(dtype), camera)
    R_corr = virtual_camera_rotation(ray)
    scale = torch.stack((torch.ones_like(f_v), torch.ones_like(f_v), f_v / camera.focal_px), dim=-1)
    t_v = t_c * scale
    R = R_corr @ R_c
    t = (R_corr @ t_v[..., None])[..., 0]
    return make_transform(R, t)


def camera_pose_to_crop(
    T_cam_from_model: torch.Tensor, K: torch.Tensor, A: torch.Tensor, camera: CropCamera
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact inverse of :func:`crop_pose_to_camera`: the pose label of a crop (training data, tests).

    Args:
        T_cam_from_model: ``(..., 4, 4)`` float, real camera(optical)-from-model, metres.
        K: ``(..., 3, 3)`` real camera matrices; A: ``(..., 2, 3)`` image → crop affines.

    Returns:
        ``(angles (..., 3) radians, translation (..., 3) metres)`` as the network regresses them.
    """
    check_shape("T_cam_from_model", T_cam_from_model, (..., 4, 4))
    dtype = T_cam_from_model.dtype
    ray, f_v = _crop_ray_and_focal(K.to(dtype), A.to(dtype), camera)
    R_corr_t = virtual_camera_rotation(ray).transpose(-1, -2)
    R_c = R_corr_t @ T_cam_from_model[..., :3, :3]
    t_v = (R_corr_t @ T_cam_from_model[..., :3, 3:4])[..., 0]
    scale = torch.stack((torch.ones_like(f_v), torch.ones_like(f_v), camera.focal_px / f_v), dim=-1)
    return camera_to_euler_pose(R_c, t_v * scale, camera.reference_distance)
