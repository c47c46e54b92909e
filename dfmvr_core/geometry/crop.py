"""The 2×3 affine that maps camera-image pixels to face-crop pixels, and what travels with it.

The crop transform ``A`` travels with every crop so that predictions made in the crop (landmarks, the
crop's virtual camera) map back to the real camera. Pixel convention (OpenCV, also used by
``cv2.warpAffine``): integer coordinates are pixel CENTRES; a W-pixel-wide image spans ``[−0.5, W − 0.5]``.
A square box of side ``S`` centred at ``c`` covers ``[c − S/2, c + S/2]`` and is mapped exactly onto the
crop's ``[−0.5, out_size − 0.5]``.

The torch functions are batched over leading dims, differentiable and dtype/device-preserving (they are
tiny; hand-written rather than ``cv2.invertAffineTransform``/``cv2.transform`` so they run batched on any
device inside autograd; the tests compare with OpenCV). Image warping uses ``cv2.warpAffine``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_finite, check_shape

__all__ = [
    "DEFAULT_CROP_SIZE",
    "affine_to_3x3",
    "apply_affine",
    "crop_transform_from_box",
    "intrinsics_in_crop",
    "invert_affine",
    "warp_to_crop",
]

DEFAULT_CROP_SIZE = 224
"""Side of the network's square face crop, pixels."""


def _check_out_size(out_size: int) -> int:
    if isinstance(out_size, bool) or not isinstance(out_size, (int, np.integer)) or out_size <= 0:
        raise ShapeError(f"out_size: expected a positive integer crop side in pixels, got {out_size!r}")
    return int(out_size)


def crop_transform_from_box(
    center_xy: torch.Tensor, side_px: torch.Tensor | float, out_size: int = DEFAULT_CROP_SIZE
) -> torch.Tensor:
    """Affine ``A`` (image pixels → crop pixels) for a square box.

    ``u_crop = s·u + (out_size/2 − 0.5 − s·cx)`` with ``s = out_size / side`` (same for v), so
    ``cx ± side/2`` maps to ``−0.5`` / ``out_size − 0.5`` and the box centre to ``(out_size − 1)/2``.

    Args:
        center_xy: ``(..., 2)`` float, box centre ``(u, v)`` in image pixels.
        side_px: ``(...)`` float tensor or a Python float, box side in image pixels, > 0.
        out_size: crop side in pixels.

    Returns:
        ``(..., 2, 3)`` affine in the dtype/device of ``center_xy``.

    Raises:
        ShapeError: wrong shapes, non-finite values or a non-positive side.
    """
    check_shape("center_xy", center_xy, (..., 2))
    if not center_xy.is_floating_point():
        raise ShapeError(f"center_xy: expected a floating-point tensor, got dtype {center_xy.dtype}")
    out_size = _check_out_size(out_size)
    side = torch.as_tensor(side_px, dtype=center_xy.dtype, device=center_xy.device)
    check_finite("side_px", side)
    check_finite("center_xy", center_xy)
    if bool((side <= 0).any()):
        raise ShapeError(f"side_px: expected positive box sides in pixels, got min {float(side.min())}")
    try:
        batch = torch.broadcast_shapes(center_xy.shape[:-1], side.shape)
    except RuntimeError:
        raise ShapeError(
            f"side_px: expected shape broadcastable to {tuple(center_xy.shape[:-1])} (center_xy's leading dims), "
            f"got {tuple(side.shape)}"
        ) from None
    scale = (out_size / side).expand(batch)
    center = center_xy.expand(*batch, 2)
    offset = out_size / 2.0 - 0.5 - scale[..., None] * center
    zero = torch.zeros_like(scale)
    rows = (scale, zero, offset[..., 0], zero, scale, offset[..., 1])
    return torch.stack(rows, dim=-1).reshape(*batch, 2, 3)


def affine_to_3x3(A: torch.Tensor) -> torch.Tensor:
    """``(..., 2, 3)`` affine → ``(..., 3, 3)`` homogeneous matrix with last row ``(0, 0, 1)``."""
    check_shape("A", A, (..., 2, 3))
    bottom = torch.tensor((0.0, 0.0, 1.0), dtype=A.dtype, device=A.device).expand(*A.shape[:-2], 1, 3)
    return torch.cat((A, bottom), dim=-2)


def invert_affine(A: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., 2, 3)`` affines (closed-form 2×2 inverse; equals ``cv2.invertAffineTransform``).

    Raises:
        ShapeError: wrong shape or a singular linear part (``|det| < 1e-12``).
    """
    check_shape("A", A, (..., 2, 3))
    a, b, tx = A[..., 0, 0], A[..., 0, 1], A[..., 0, 2]
    c, d, ty = A[..., 1, 0], A[..., 1, 1], A[..., 1, 2]
    det = a * d - b * c
    if bool((det.abs() < 1e-12).any()):
        raise ShapeError("A: expected invertible affines; the 2×2 linear part is singular")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    rows = (ia, ib, -(ia * tx + ib * ty), ic, id_, -(ic * tx + id_ * ty))
    return torch.stack(rows, dim=-1).reshape(*A.shape[:-2], 2, 3)


def apply_affine(points: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Map 2D points: ``p' = A[:, :2] p + A[:, 2]``.

    Args:
        points: ``(..., N, 2)`` float pixels.
        A: ``(..., 2, 3)`` float affine (leading dims broadcast with ``points``').

    Returns:
        ``(..., N, 2)`` float pixels in the target image.
    """
    check_shape("points", points, (..., None, 2))
    check_shape("A", A, (..., 2, 3))
    return points @ A[..., :, :2].transpose(-1, -2) + A[..., None, :, 2]


def intrinsics_in_crop(K: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """The crop's virtual camera: ``K_crop = [A; 0 0 1] @ K``.

    Projecting a camera-frame point with ``K_crop`` gives the same pixel as projecting with ``K`` and then
    applying ``A`` (an affine of the image commutes with the perspective division).

    Args:
        K: ``(..., 3, 3)`` float camera matrices, image pixels.
        A: ``(..., 2, 3)`` float image → crop affine.

    Returns:
        ``(..., 3, 3)`` camera matrices in crop pixels.
    """
    check_shape("K", K, (..., 3, 3))
    return affine_to_3x3(A) @ K.to(A.dtype)


def warp_to_crop(image: np.ndarray, A: np.ndarray | torch.Tensor, out_size: int = DEFAULT_CROP_SIZE) -> np.ndarray:
    """Resample the crop: ``crop(p) = image(A⁻¹ p)`` with ``cv2.warpAffine`` (bilinear, zero border).

    For large downscale factors bilinear sampling aliases; blur the image first if that matters.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` with ``C <= 4``, uint8 or float32/float64 numpy array.
        A: ``(2, 3)`` image → crop affine (numpy or torch; converted to float64).
        out_size: crop side in pixels.

    Returns:
        ``(out_size, out_size)`` or ``(out_size, out_size, C)`` array of ``image``'s dtype.
    """
    if not isinstance(image, np.ndarray):
        raise ShapeError(f"image: expected a numpy array (H, W) or (H, W, C), got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ShapeError(f"image: expected shape (H, W) or (H, W, C) with 1 <= C <= 4, got {image.shape}")
    if image.dtype not in (np.uint8, np.float32, np.float64):
        raise ShapeError(f"image: expected dtype uint8, float32 or float64, got {image.dtype}")
    out_size = _check_out_size(out_size)
    check_shape("A", A, (2, 3))
    M = A.detach().cpu().double().numpy() if isinstance(A, torch.Tensor) else np.asarray(A, dtype=np.float64)
    check_finite("A", M)
    crop = cv2.warpAffine(
        image,
        M,
        (out_size, out_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    if image.ndim == 3 and crop.ndim == 2:
        crop = crop[..., None]
    return crop
