"""Multi-view photometric loss, DF-MVR paper eq. 2 (section IV-A).

``L_p = 1/V Σ_v  Σ_{i∈P^v} M_d,i^v ‖I_i^v − I'_i^v‖₂  /  Σ_{i∈P^v} M_d,i^v``

with ``M_d`` the dilated three-level weight map of the input's face mask (254 features / 128 face / 32
background, :func:`dfmvr_core.networks.face_parts.photo_weight_map`), ``‖·‖₂`` the Euclidean distance of a
pixel's RGB triplet (not squared: the paper's L2 norm, as the authors' code and Deep3DFace) and ``P^v`` the
pixels the loss looks at in view ``v`` (see ``region``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.parts import FacePart
from dfmvr_core.networks.face_parts import WeightMapConfig
from dfmvr_core.validation import check_shape

from ._checks import check_float, check_mask, check_parts, check_weight_mask, mean_over_views, safe_ratio

PhotoRegion = Literal["input_face", "rendered"]
PHOTO_REGIONS: tuple[str, ...] = ("input_face", "rendered")


def photo_loss(
    rendered_rgb: Tensor,
    input_rgb: Tensor,
    rendered_face_mask: Tensor,
    input_parts: Tensor,
    weight_config: WeightMapConfig | None = None,
    valid: Tensor | None = None,
    *,
    region: PhotoRegion = "input_face",
) -> Tensor:
    """Weighted multi-view photometric loss (paper eq. 2), per sample.

    Args:
        rendered_rgb: (B, V, H, W, 3) float RGB in [0, 1] (channels last, as ``FaceRendering.rgb``; the
            renderer does not clamp, neither does this loss). Differentiable.
        input_rgb: (B, V, H, W, 3) float RGB in [0, 1], channels last (``images.movedim(2, -1)`` turns the
            network's (B, V, 3, H, W) input into this layout). Treated as a constant.
        rendered_face_mask: (B, V, H, W) bool (or soft weights in [0, 1]): where the rendered face is
            (``FaceRendering.face_mask``: ears and neck excluded).
        input_parts: (B, V, H, W) integer :class:`~dfmvr_core.morphable.FacePart` labels of the input (the
            parsed face mask M); the weight map ``M_d`` is built from it with ``weight_config``.
        weight_config: the weight map (dilation 20 px, 254/128/32; default :class:`WeightMapConfig`). Its
            normalisation only rescales ``M_d``, which eq. 2 divides out.
        valid: (B, V) bool, False for views that are missing (view dropout, camera down); None = all valid.
        region: the pixel set ``P^v``. ``"input_face"`` (default): rendered face ∩ input face region
            (``input_parts != OTHER``), so occluders parsed as background (hair, hands) are ignored.
            ``"rendered"``: every rendered face pixel, the input image being defined everywhere; the weight
            map's background level then weighs rendered face over the input's background (the authors' code:
            ``weight_map · render_mask``).

    Returns:
        (B,) float: mean over the valid views of the weight-normalised distance, in RGB units of [0, 1]
        images (0 for identical images; at most √3). Views whose region is empty are left out of the mean;
        a sample without any counted view gets 0.

    Raises:
        ShapeError: a shape disagrees (the message names the argument), NaN/inf values, bad labels or masks.
        ConfigError: unknown ``region``.
    """
    if region not in PHOTO_REGIONS:
        raise ConfigError(f"region: expected one of {PHOTO_REGIONS}, got {region!r}")
    dims = check_shape("rendered_rgb", rendered_rgb, ("B", "V", "H", "W", 3))
    b, v, h, w = dims["B"], dims["V"], dims["H"], dims["W"]
    check_float("rendered_rgb", rendered_rgb)
    check_shape("input_rgb", input_rgb, (b, v, h, w, 3))
    check_float("input_rgb", input_rgb)
    face_mask = check_weight_mask("rendered_face_mask", rendered_face_mask, (b, v, h, w))
    check_parts("input_parts", input_parts, (b, v, h, w))
    valid_mask = check_mask("valid", valid, (b, v), rendered_rgb.device)
    if valid_mask is None:
        valid_mask = torch.ones(b, v, dtype=torch.bool, device=rendered_rgb.device)
    config = weight_config if weight_config is not None else WeightMapConfig()
    if not isinstance(config, WeightMapConfig):
        raise ConfigError(f"weight_config: expected a WeightMapConfig, got {type(config).__name__}")

    dtype = rendered_rgb.dtype
    parts = input_parts.to(rendered_rgb.device)
    weights = config.weight_map(parts.reshape(b * v, h, w)).view(b, v, h, w).to(dtype)
    weights = weights * face_mask.to(device=rendered_rgb.device, dtype=dtype)
    if region == "input_face":
        weights = weights * (parts != FacePart.OTHER).to(dtype)
    distance = torch.linalg.vector_norm(rendered_rgb - input_rgb.to(dtype), dim=-1)  # (B, V, H, W)
    numerator = (weights * distance).sum(dim=(-2, -1))
    denominator = weights.sum(dim=(-2, -1))
    per_view = safe_ratio(numerator, denominator)
    return mean_over_views(per_view, valid_mask & (denominator > 0))
