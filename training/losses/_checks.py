"""Input checks and the masked view average shared by the loss functions (errors name the argument)."""

from __future__ import annotations

import torch
from torch import Tensor

from dfmvr_core.errors import ShapeError
from dfmvr_core.morphable.parts import NUM_FACE_PARTS
from dfmvr_core.validation import check_finite, check_shape

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8)


def check_float(name: str, value: Tensor) -> None:
    """``value`` must be a finite floating-point tensor."""
    if not isinstance(value, Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ShapeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    check_finite(name, value)


def check_parts(name: str, parts: Tensor, spec: tuple) -> None:
    """``parts`` must be an integer :class:`~dfmvr_core.morphable.FacePart` label tensor of shape ``spec``."""
    check_shape(name, parts, spec)
    if parts.dtype not in _INTEGER_DTYPES:
        raise ShapeError(f"{name}: expected integer FacePart labels, got dtype {parts.dtype}")
    if parts.numel() and (int(parts.min()) < 0 or int(parts.max()) >= NUM_FACE_PARTS):
        raise ShapeError(
            f"{name}: labels must lie in [0, {NUM_FACE_PARTS}), got [{int(parts.min())}, {int(parts.max())}]"
        )


def check_mask(name: str, mask: Tensor | None, spec: tuple, device: torch.device) -> Tensor | None:
    """A boolean (or 0/1 numeric) mask of shape ``spec``, returned as bool on ``device``; None stays None."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    check_shape(name, mask, spec)
    if mask.dtype != torch.bool:
        check_finite(name, mask)
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ShapeError(f"{name}: expected a boolean mask (True/False or 0/1), got other values")
        mask = mask != 0
    return mask.to(device)


def check_weight_mask(name: str, mask: Tensor, spec: tuple) -> Tensor:
    """A soft mask in [0, 1] (bool accepted) of shape ``spec``."""
    check_shape(name, mask, spec)
    if mask.dtype == torch.bool:
        return mask
    check_finite(name, mask)
    if mask.numel() and (float(mask.min()) < 0 or float(mask.max()) > 1):
        raise ShapeError(f"{name}: expected values in [0, 1], got [{float(mask.min())}, {float(mask.max())}]")
    return mask


def safe_ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` where ``denominator > 0``, else 0 (with a zero, finite gradient)."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, torch.ones_like(denominator)), 0.0)


def mean_over_views(per_view: Tensor, include: Tensor) -> Tensor:
    """Average ``(B, V)`` per-view losses over the included views: the ``1/V Σ_v`` of eq. 2-4.

    Samples with no included view get 0 (and no gradient).

    Args:
        per_view: (B, V) float.
        include: (B, V) bool.

    Returns:
        (B,) float.
    """
    weights = include.to(per_view.dtype)
    total = torch.where(include, per_view, torch.zeros_like(per_view)).sum(-1)
    return safe_ratio(total, weights.sum(-1))
