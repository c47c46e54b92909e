"""Plain ResNet (He et al., CVPR 2016) in the torchvision layout, for DF-MVR's ablation v3.

DF-MVR's ablation v3 (paper section IV, Table IV) swaps the RedNet-50 parameter regressor for a ResNet-50 of the
same depth. This module provides that ResNet without torchvision: depths 18/34 use :class:`BasicBlock`, depths
50/101/152 use :class:`Bottleneck` with the stride on the 3×3 conv ("ResNet v1.5", as torchvision). Module and
parameter names equal torchvision's (``conv1``, ``bn1``, ``layer1.0.conv2.weight``, ``layer2.0.downsample.0.weight``,
``fc.weight`` ...), so a torchvision ImageNet ``state_dict`` loads with ``load_state_dict`` as is (for
``in_channels=3``, ``num_classes=1000``, ``width_multiplier=1``).

It also holds the pieces RedNet (:mod:`dfmvr_core.networks.rednet`) shares: argument validation, the bottleneck
(RedNet overrides its spatial layer) and :class:`_ResidualBackbone` (stages, global pooling, classifier, input
checks).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import torch
from torch import nn

from dfmvr_core.errors import ConfigError
from dfmvr_core.validation import check_finite, check_shape

__all__ = ["RESNET_DEPTHS", "BasicBlock", "Bottleneck", "ResNet"]

#: Stage layout of each ResNet depth: (block type, blocks per stage), He et al. Table 1 / torchvision.
RESNET_DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

_MAX_WIDTH_MULTIPLIER = 8.0


# ----------------------------------------------------------------------------------------------- validation
def _check_depth(depth: object, allowed: Sequence[int], family: str) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in allowed:
        raise ConfigError(f"depth: expected one of {tuple(allowed)} for {family}, got {depth!r}")
    return depth


def _check_in_channels(in_channels: object) -> int:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(
            f"in_channels: expected a positive int (3 for RGB, 64 for DF-MVR fused features), got {in_channels!r}"
        )
    return in_channels


def _check_num_classes(num_classes: object) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes: expected None (no classifier) or a positive int, got {num_classes!r}")
    return num_classes


def _check_width_multiplier(width_multiplier: object) -> float:
    ok = isinstance(width_multiplier, int | float) and not isinstance(width_multiplier, bool)
    if ok:
        value = float(width_multiplier)  # type: ignore[arg-type]
        ok = math.isfinite(value) and 0.0 < value <= _MAX_WIDTH_MULTIPLIER
    if not ok:
        raise ConfigError(
            f"width_multiplier: expected a finite number in (0, {_MAX_WIDTH_MULTIPLIER:g}], got {width_multiplier!r}"
        )
    return value


def _scaled_width(base: int, multiplier: float, divisor: int) -> int:
    """``base · multiplier`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``).

    Exact for ``multiplier == 1`` whenever ``base`` is a multiple of ``divisor`` (all standard widths are).
    """
    return max(divisor, round(base * multiplier / divisor) * divisor)


def _is_tracing_or_compiling() -> bool:
    """True under ``torch.jit.trace``, ``torch.compile``, ``torch.export`` or CUDA graph capture (data-dependent
    checks must be skipped)."""
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    if torch.jit.is_tracing() or (is_compiling is not None and bool(is_compiling())):
        return True
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


# ---------------------------------------------------------------------------------------------------- blocks
def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """Projection shortcut (1×1 conv with stride + BN), or ``None`` for the identity shortcut."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(_conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two-3×3-conv residual block of ResNet-18/34 (He et al., Fig. 5 left).

    Args:
        in_channels: channels of the input.
        mid_channels: channels of both convs; the output has ``mid_channels · expansion`` (= ``mid_channels``).
        stride: stride of the first conv and of the projection shortcut.

    Shapes: ``(B, in_channels, H, W)`` → ``(B, mid_channels, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 1

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.out_channels = mid_channels * self.expansion
        self.conv1 = _conv3x3(in_channels, mid_channels, stride)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = _conv3x3(mid_channels, self.out_channels)
        self.bn2 = nn.BatchNorm2d(self.out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, self.out_channels, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride) → 1×1 residual bottleneck of ResNet-50/101/152 (He et al., Fig. 5 right).

    The stride sits on the 3×3 conv (torchvision's "v1.5"). Subclasses replace the spatial layer through
    :meth:`_make_spatial` (RedNet puts an involution there, Li et al. sec. 4.1).

    Args:
        in_channels: channels of the input.
        mid_channels: bottleneck width; the output has ``mid_channels · 4`` channels.
        stride: stride of the spatial layer and of the projection shortcut.

    Shapes: ``(B, in_channels, H, W)`` → ``(B, 4 · mid_channels, ceil(H / stride), ceil(W / stride))``.
    """

    expansion = 4

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.out_channels = mid_channels * self.expansion
        self.conv1 = _conv1x1(in_channels, mid_channels)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = self._make_spatial(mid_channels, stride)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = _conv1x1(mid_channels, self.out_channels)
        self.bn3 = nn.BatchNorm2d(self.out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, self.out_channels, stride)

    def _make_spatial(self, channels: int, stride: int) -> nn.Module:
        """The spatial layer ``channels → channels`` with ``stride``: a 3×3 conv here."""
        return _conv3x3(channels, channels, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# -------------------------------------------------------------------------------------------------- backbone
class _ResidualBackbone(nn.Module, abc.ABC):
    """Shared part of :class:`ResNet` and RedNet: four stages, global average pooling and a classifier.

    Subclasses build ``self`` 's stem and implement :meth:`_stem`, then call :meth:`_build_body`.
    """

    in_channels: int
    feature_dim: int
    fc: nn.Linear | None

    def _build_body(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        stage_blocks: Sequence[int],
        stem_channels: int,
        width_multiplier: float,
        divisor: int,
        num_classes: int | None,
        zero_init_residual: bool,
    ) -> None:
        channels = stem_channels
        for index, (num_blocks, stride) in enumerate(zip(stage_blocks, (1, 2, 2, 2), strict=True)):
            mid = _scaled_width(64 * 2**index, width_multiplier, divisor)
            blocks = []
            for i in range(num_blocks):
                blocks.append(block(channels, mid, stride if i == 0 else 1))
                channels = blocks[-1].out_channels
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.feature_dim = channels
        self.fc = nn.Linear(channels, num_classes) if num_classes is not None else None
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """Kaiming-normal (fan-out, ReLU) convs with zero biases, unit BN; as torchvision and mmcv's RedNet."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock | Bottleneck):
                    nn.init.zeros_(module.last_bn.weight)

    @abc.abstractmethod
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stem of the network: ``(B, in_channels, H, W)`` → ``(B, stem channels, H / 4, W / 4)``."""

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Last-stage feature map ``(B, feature_dim, ceil(H / 32), ceil(W / 32))`` of ``x`` ``(B, in_channels, H, W)``.

        Raises:
            ShapeError: if ``x`` is not ``(B, in_channels, H, W)`` or holds NaN/inf (the finiteness check is
                skipped while tracing or compiling, e.g. for ONNX export).
        """
        check_shape("x", x, (None, self.in_channels, None, None))
        if not _is_tracing_or_compiling():
            check_finite("x", x)
        x = self._stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled features ``(B, feature_dim)`` of ``x`` ``(B, in_channels, H, W)``, same dtype."""
        return self.forward_feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` if the network has a classifier, else features ``(B, feature_dim)``."""
        features = self.forward_features(x)
        return features if self.fc is None else self.fc(features)


class ResNet(_ResidualBackbone):
    """ResNet-18/34/50/101/152 (He et al., CVPR 2016), torchvision layout; DF-MVR ablation v3 uses ResNet-50.

    Args:
        depth: one of :data:`RESNET_DEPTHS` (18, 34, 50, 101, 152).
        in_channels: input channels (3 for RGB; DF-MVR feeds the 64-channel fused Tri-UNet features).
        num_classes: size of the final linear layer, or ``None`` for no classifier (``forward`` then returns
            the pooled features).
        width_multiplier: scales every channel width (stem and stages), rounded to multiples of 8; 1.0 gives
            the standard network.
        zero_init_residual: start every residual branch's last BatchNorm at γ = 0 (Goyal et al.), so each block
            begins as the identity; off by default, as in torchvision.

    Attributes:
        feature_dim: size of :meth:`forward_features`' output (2048 for ResNet-50, 512 for ResNet-18/34 at
            width 1).

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
        self.depth = _check_depth(depth, tuple(RESNET_DEPTHS), "ResNet")
        self.in_channels = _check_in_channels(in_channels)
        self.num_classes = _check_num_classes(num_classes)
        self.width_multiplier = _check_width_multiplier(width_multiplier)
        kind, stage_blocks = RESNET_DEPTHS[depth]
        stem_channels = _scaled_width(64, self.width_multiplier, 8)
        self.conv1 = nn.Conv2d(in_channels, stem_channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        block = BasicBlock if kind == "basic" else Bottleneck
        self._build_body(
            block, stage_blocks, stem_channels, self.width_multiplier, 8, self.num_classes, zero_init_residual
        )

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))
