"""RedNet (Li et al., "Involution: Inverting the Inherence of Convolution for Visual Recognition", CVPR 2021).

DF-MVR (paper section III-D) regresses the 3DMM and pose coefficients with RedNet-50 from the fused 64-channel
224×224 Tri-UNet features. RedNet is ResNet with involution in place of convolution where it matters (Li et al.
sec. 4.1), following the official mmcls code (``d-li14/involution``, ``cls/mmcls/models/backbones/rednet.py``):

* **Bottleneck**: 1×1 conv → BN-ReLU → :class:`Involution2d` (K = 7, 16 channels per group, reduction 4,
  *stride on the involution*) → BN-ReLU → 1×1 conv → BN, plus the usual projection shortcut (1×1 conv with
  stride + BN) at the first block of a stage; expansion 4, stage widths 64/128/256/512 (×4 out).
* **Stem**: the 7×7 conv is replaced by ``conv3×3(C_in → 32, stride 2)-BN-ReLU → involution(32, K = 3) → BN-ReLU →
  conv3×3(32 → 64)-BN-ReLU``, then the 3×3/2 max-pool.
* **Depths**: blocks per stage {26: (1, 2, 4, 1), 38: (2, 3, 5, 2), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
  152: (3, 8, 36, 3)}; stage strides (1, 2, 2, 2), so features are at stride 32.

Module names reproduce the official ones, so an official ImageNet checkpoint loads after
:func:`convert_mmcls_rednet_state_dict` (which only drops mmcls' ``backbone.`` prefix and renames its
``head.fc.`` to ``fc.``). Mapping of the official keys (``X`` = stage index, ``Y`` = block index):

* ``backbone.stem.0.{conv.weight,bn.*}`` → ``stem.0.{conv.weight,bn.*}`` (conv3×3/2 + BN);
* ``backbone.stem.1.{conv1,conv2}.*`` → ``stem.1.{conv1,conv2}.*`` (stem involution, names as in
  :mod:`dfmvr_core.networks.involution`);
* ``backbone.stem.2.*`` → ``stem.2.*`` (BN after the stem involution);
* ``backbone.stem.4.{conv.weight,bn.*}`` → ``stem.4.{conv.weight,bn.*}`` (conv3×3 + BN);
* ``backbone.layerX.Y.{conv1.weight,bn1.*,bn2.*,conv3.weight,bn3.*}`` → ``layerX.Y.`` + the same suffix;
* ``backbone.layerX.Y.conv2.conv1.conv.weight``, ``...conv2.conv1.bn.*``, ``...conv2.conv2.conv.{weight,bias}``
  → ``layerX.Y.`` + the same suffix (the block involution);
* ``backbone.layerX.0.downsample.{0.weight,1.*}`` → ``layerX.0.downsample.{0.weight,1.*}``;
* ``head.fc.{weight,bias}`` → ``fc.{weight,bias}``.

Only the ``in_channels=3``, ``width_multiplier=1`` network matches the official tensor shapes (and
``num_classes=1000`` for the classifier); for DF-MVR's 64-channel input only ``stem.0.conv.weight`` (and ``fc.*``
for another ``num_classes``) differ, so ``load_state_dict(..., strict=False)`` after deleting those keys reuses
the rest.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

from dfmvr_core.errors import ConfigError
from dfmvr_core.networks.involution import Involution2d
from dfmvr_core.networks.resnet import (
    Bottleneck,
    _check_depth,
    _check_in_channels,
    _check_num_classes,
    _check_width_multiplier,
    _ResidualBackbone,
    _scaled_width,
)

__all__ = ["REDNET_DEPTHS", "InvolutionBottleneck", "RedNet", "convert_mmcls_rednet_state_dict"]

#: Blocks per stage of each RedNet depth (official ``arch_settings``, Li et al. Table 2).
REDNET_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}

#: Channels sharing one involution kernel (Li et al.); every RedNet width is rounded to a multiple of it.
GROUP_CHANNELS = 16


class InvolutionBottleneck(Bottleneck):
    """RedNet bottleneck: the ResNet bottleneck with its 3×3 conv replaced by a 7×7 involution (Li et al. sec. 4.1).

    Args:
        in_channels: channels of the input.
        mid_channels: bottleneck width (a multiple of 16); the output has ``4 · mid_channels`` channels.
        stride: stride of the involution and of the projection shortcut.

    Shapes: ``(B, in_channels, H, W)`` → ``(B, 4 · mid_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def _make_spatial(self, channels: int, stride: int) -> nn.Module:
        return Involution2d(channels, kernel_size=7, stride=stride, group_channels=GROUP_CHANNELS)


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3×3 conv (no bias) + BN + ReLU named like mmcv's ConvModule (``conv``, ``bn``, ``activate``)."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            activate=nn.ReLU(inplace=True),
        )
    )


class RedNet(_ResidualBackbone):
    """RedNet-26/38/50/101/152 (Li et al., CVPR 2021); DF-MVR's parameter regressor is RedNet-50 (sec. III-D).

    Args:
        depth: one of :data:`REDNET_DEPTHS` (26, 38, 50, 101, 152).
        in_channels: input channels (3 for RGB ImageNet; 64 for DF-MVR's fused features).
        num_classes: size of the final linear layer (1000 for ImageNet; the number of regressed coefficients
            in DF-MVR), or ``None`` for no classifier (``forward`` then returns the pooled features).
        width_multiplier: scales every channel width (stem and stages), each rounded to a multiple of 16 (the
            involution group size); 1.0 gives the published network.
        zero_init_residual: start every block's last BatchNorm at γ = 0 so that each block begins as the identity
            (the official mmcls default; recommended when training from scratch, see the note). Off by default,
            as in torchvision, so that every parameter receives a gradient from the first step.

    Attributes:
        feature_dim: size of :meth:`forward_features`' output (2048 at width 1).

    Shapes: ``forward_features``: ``(B, in_channels, H, W)`` → ``(B, feature_dim)``; ``forward``: →
    ``(B, num_classes)`` or ``(B, feature_dim)``; float dtype of the parameters. The last feature map is at
    ``ceil(H / 32) × ceil(W / 32)`` (7×7 for 224×224).

    Note:
        An involution's kernels are generated from its input, so it roughly squares relative perturbations of
        its input. Untrained, BN-normalised in train mode, the network is well behaved; but in eval mode the
        small gap between batch and running statistics (even after calibrating them) is amplified block after
        block, and untrained RedNet-38 and deeper overflow to inf/NaN at width 1. Evaluate trained weights, or
        build with ``zero_init_residual=True`` (every block starts as the identity, the official default), which
        keeps an untrained network finite in eval mode.

    Raises:
        ConfigError: for an unsupported depth, a non-positive ``in_channels``/``num_classes`` or a width
            multiplier outside (0, 8].
    """

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        num_classes: int | None = 1000,
        width_multiplier: float = 1.0,
        *,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        self.depth = _check_depth(depth, tuple(REDNET_DEPTHS), "RedNet")
        self.in_channels = _check_in_channels(in_channels)
        self.num_classes = _check_num_classes(num_classes)
        self.width_multiplier = _check_width_multiplier(width_multiplier)
        half = _scaled_width(32, self.width_multiplier, GROUP_CHANNELS)
        stem_channels = _scaled_width(64, self.width_multiplier, GROUP_CHANNELS)
        # Official stem: the middle 3×3 conv of a deep stem replaced by a 3×3 involution (indices kept for keys).
        self.stem = nn.Sequential(
            _conv_bn_relu(in_channels, half, stride=2),
            Involution2d(half, kernel_size=3, stride=1, group_channels=GROUP_CHANNELS),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            _conv_bn_relu(half, stem_channels, stride=1),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._build_body(
            InvolutionBottleneck,
            REDNET_DEPTHS[depth],
            stem_channels,
            self.width_multiplier,
            GROUP_CHANNELS,
            self.num_classes,
            zero_init_residual,
        )

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.stem(x))


def convert_mmcls_rednet_state_dict(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Rename an official mmcls RedNet checkpoint's keys to :class:`RedNet`'s.

    Args:
        checkpoint: the loaded checkpoint, either the mmcls file's top-level dict (with a ``"state_dict"``
            entry) or that state dict itself; keys like ``backbone.layer1.0.conv2.conv1.conv.weight`` and
            ``head.fc.weight``.

    Returns:
        A new dict with ``backbone.`` stripped and ``head.fc.`` renamed to ``fc.``; other keys are kept as they
        are so that ``load_state_dict(strict=True)`` reports them.

    Raises:
        ConfigError: if a value is not a tensor.
    """
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise ConfigError("checkpoint.state_dict: expected a mapping of parameter names to tensors")
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"checkpoint[{key!r}]: expected a tensor, got {type(value).__name__}")
        if key.startswith("backbone."):
            key = key[len("backbone.") :]
        elif key.startswith("head.fc."):
            key = "fc." + key[len("head.fc.") :]
        converted[key] = value
    return converted
