"""What the baseline networks share: DFMVRNet's input contract, the flat export layout and the view aggregation.

:class:`BaselineNet` is the base of :class:`~dfmvr_core.networks.deep3dface.Deep3DFaceNet` and
:class:`~dfmvr_core.networks.uh_e2far.UHE2FARNet`. It gives them :class:`~dfmvr_core.networks.dfmvr_net.DFMVRNet`'s
public surface (``config``, ``sizes``, ``views``, ``expression_kind``, ``forward`` / ``forward_flat`` /
``split_flat`` / ``flat_size``) and the same input checks: ``images (B, V, 3, S, S)`` float RGB in [0, 1], ``masks``
accepted and ignored (the baselines see RGB only), ``valid (B, V)`` bool or None; NaN / range checks run on the
valid views only and are skipped while tracing (ONNX export). Invalid views are replaced by a black image before the
backbone (so their pixels, even NaN, never reach the output) and get weight 0 in every mean over views. The per-image
networks normalise their input with :class:`ImageNetNormalize` themselves, so they can be called on single
``(N, 3, S, S)`` images in [0, 1] (what Deep3DFace's single-image training does).
"""

from __future__ import annotations

import torch
from torch import nn

from dfmvr_core.errors import ConfigError
from dfmvr_core.morphable.lighting import AMBIENT_DC, SH_COEFFICIENTS
from dfmvr_core.morphable.model import POSE_COEFFICIENTS, CoefficientSizes
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.dfmvr_net import (
    FLAT_ORDER,
    _value_checks_enabled,
    check_images_and_valid,
    check_input_values,
    split_flat,
)
from dfmvr_core.networks.face_parser import IMAGENET_MEAN, IMAGENET_STD
from dfmvr_core.networks.heads import EXPRESSION_KINDS, LIGHTING_DC_INDICES

__all__ = ["AGGREGATED", "BaselineNet", "ImageNetNormalize", "weighted_view_mean"]

AGGREGATED = ("identity", "expression", "albedo")
"""Coefficient groups shared by the views of a sample (one face): combined over the valid views."""

WEIGHT_FLOOR = 1e-12
"""Lower bound of a mean's total weight: a sample with no valid view gets 0 (the mean face), never NaN."""


class ImageNetNormalize(nn.Module):
    """``(x − mean) / std`` per RGB channel with torchvision's ImageNet statistics (no parameters, nothing in the
    state_dict). The baselines' ResNets take ImageNet-normalised input, so an ImageNet ``state_dict`` (Deng et al.
    initialise the R-Net from ImageNet) fits them as is (:class:`~dfmvr_core.networks.resnet.ResNet` uses
    torchvision's parameter names).

    Shapes: ``(N, 3, H, W)`` float RGB in [0, 1] → same shape and dtype.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def weighted_view_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_v w_v ⊙ x_v / Σ_v w_v`` over the view axis (Deep3DFace's confidence-based aggregation, Deng et al. 2019
    sec. 4: element-wise, per coefficient).

    Args:
        values: ``(B, V, K)`` per-view coefficients (finite).
        weights: ``(B, V, K)`` or ``(B, V, 1)`` non-negative weights; 0 for invalid views.

    Returns:
        ``(B, K)``; 0 where every weight of a coefficient is 0 (no valid view), with finite gradients.
    """
    total = weights.sum(dim=1).clamp_min(WEIGHT_FLOOR)
    return (weights * values).sum(dim=1) / total


class BaselineNet(nn.Module):
    """Shared part of the baselines (see the module docstring).

    Args:
        config: the baseline's architecture; ``config.kind`` must be ``kind``.
        sizes: coefficient sizes of the morphable model (``MorphableModel.coefficient_sizes``).
        expression_kind: ``"pca"`` (linear expression output) or ``"blendshape"`` (sigmoid, weights in (0, 1)),
            as :class:`~dfmvr_core.networks.heads.CoefficientHeads`.
        kind: the subclass's network kind.

    Raises:
        ConfigError: wrong config type or kind, invalid sizes or expression kind.
    """

    def __init__(self, config: BaselineNetworkConfig, sizes: CoefficientSizes, expression_kind: str, kind: str) -> None:
        super().__init__()
        if not isinstance(config, BaselineNetworkConfig):
            raise ConfigError(f"config: expected a BaselineNetworkConfig, got {type(config).__name__}")
        if config.kind != kind:
            raise ConfigError(f"config.kind: expected {kind!r} for {type(self).__name__}, got {config.kind!r}")
        if not isinstance(sizes, CoefficientSizes):
            raise ConfigError(f"sizes: expected a CoefficientSizes, got {type(sizes).__name__}")
        if sizes.lighting != SH_COEFFICIENTS or sizes.pose_per_view != POSE_COEFFICIENTS:
            raise ConfigError(
                f"sizes: expected {SH_COEFFICIENTS} lighting and {POSE_COEFFICIENTS} pose values per view, got "
                f"{sizes.lighting} and {sizes.pose_per_view}"
            )
        if expression_kind not in EXPRESSION_KINDS:
            raise ConfigError(f"expression_kind: expected one of {EXPRESSION_KINDS}, got {expression_kind!r}")
        self.config = config
        self.sizes = sizes
        self.views = config.views
        self.expression_kind = expression_kind
        ambient = torch.zeros(SH_COEFFICIENTS)
        ambient[list(LIGHTING_DC_INDICES)] = AMBIENT_DC
        self.register_buffer("_ambient", ambient, persistent=False)

    @property
    def kind(self) -> str:
        """The network kind (``config.kind``)."""
        return self.config.kind

    @property
    def flat_size(self) -> int:
        """Length of :meth:`forward_flat`'s output: ``sizes.total(views)``."""
        return self.sizes.total(self.views)

    # ------------------------------------------------------------------------------------------------ inputs
    def _validate(self, images: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Check ``images`` / ``valid`` like :meth:`DFMVRNet.forward`; returns ``valid`` (all True when None)."""
        v, s = self.views, self.config.input_size
        valid = check_images_and_valid(images, valid, v, s)
        if _value_checks_enabled(images):
            check_input_values(images, None, valid, v, s)
        return valid

    def prepare_views(
        self, images: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked views stacked along the batch, ``(B·V, 3, S, S)`` RGB in [0, 1] (invalid views black), and
        ``valid (B, V)`` (all True when None).

        Raises:
            ShapeError: bad shape, dtype or batch size, NaN/inf or values outside [0, 1] in a valid view.
        """
        valid = self._validate(images, valid)
        s = self.config.input_size
        black = torch.where(valid[:, :, None, None, None], images, 0.0)
        return black.reshape(-1, 3, s, s), valid

    # ------------------------------------------------------------------------------------------------ outputs
    def ambient_lighting(self, like: torch.Tensor) -> torch.Tensor:
        """Plain ambient white SH lighting ``(B, V, 27)`` (DC terms :data:`AMBIENT_DC`, others 0), the untrained
        heads' value; ``like`` is any ``(B, V, ...)`` tensor giving B, V, dtype and device (dynamic batch in ONNX)."""
        return like[..., :1] * 0.0 + self._ambient.to(like.dtype)

    def forward_flat(
        self, images: torch.Tensor, masks: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """All coefficients as one ``(B, flat_size)`` tensor in :data:`FLAT_ORDER` (for export); ``masks`` ignored."""
        out = self.forward(images, masks, valid)
        return torch.cat([out[name].flatten(1) for name in FLAT_ORDER], dim=1)

    def split_flat(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inverse of :meth:`forward_flat` (see :func:`~dfmvr_core.networks.dfmvr_net.split_flat`)."""
        return split_flat(flat, self.sizes, self.views)
