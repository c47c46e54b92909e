"""Multi-view feature fusion: the Tri-UNet of DF-MVR (paper III-C, Fig. 3) and the two fusion ablations.

All fusion modules take the per-view inputs stacked as ``(B, V, C, H, W)`` (view order left, front, right; ``C`` =
RGB + mask channels) and return one fused feature map ``(B, out_channels, H, W)`` at the input resolution.

* :class:`TriUNet` (paper): one encoder per view with **unshared** weights (double conv + max pool per level), the
  views' bottleneck features concatenated, and **one shared decoder** (2×2 stride-2 ConvTranspose upsampling,
  concatenation with the skip features, double conv) whose skip connection at each level takes every view's encoder
  features through its own Attention-U-Net gate (Oktay et al. 2018: additive attention, sigmoid) driven by the
  decoder's upsampled features, and concatenates them. Paper: 224×224 input → 224×224×64 fused map.
* :class:`SingleUNet` (ablation v2, Table IV "Unet"): one attention U-Net on the views concatenated along channels.
* :class:`ConcatCNN` (ablation v1, Table IV "CNN"): a plain conv stack per view (unshared, full resolution, no
  skips), the views' features concatenated at the end and projected by a 1×1 conv.

Differences from the authors' code (``weiguangzhao/DF_MVR``, ``network/Tri_Unet.py``), which we read but do not copy:
their decoder stops after the last concatenation and returns ``up ⊕ 3 gated skips`` (256 channels; the final
``DoubleConv(256, 64)`` is defined but commented out) and RedNet takes 256 input channels. We follow the paper's
"224×224×64" and apply that final double conv: ≈ 18.5 GFLOPs more per triplet at 224, minus ≈ 1.4 for RedNet's
narrower stem (168 GFLOPs in all, against ≈ 151 for the authors' layout). Their attention-gate convs have biases
in front of BatchNorm (which cancels them); ours have none. Their gates, like
ours, take the gating signal from the decoder's upsampled features at the skip's own resolution (the common
PyTorch form of Oktay et al., rather than the coarser-level gating with a strided ``W_x`` of the original paper);
intermediate gate channels are half the skip channels; each view has its own gates.
"""

from __future__ import annotations

import torch
from torch import nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.validation import check_shape

__all__ = ["AttentionGate", "ConcatCNN", "DoubleConv", "SingleUNet", "TriUNet", "UNetEncoder", "build_fusion"]


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a positive int, got {value!r}")
    return value


def _channel_tuple(name: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) < 1:
        raise ConfigError(f"{name}: expected a non-empty sequence of positive ints, got {value!r}")
    return tuple(_positive(f"{name}[{i}]", v) for i, v in enumerate(value))


class DoubleConv(nn.Sequential):
    """(conv 3×3 → BatchNorm → ReLU) × 2, padding 1 (spatial size kept): ``(B, in, H, W) → (B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        in_channels = _positive("in_channels", in_channels)
        out_channels = _positive("out_channels", out_channels)
        mid = out_channels if mid_channels is None else _positive("mid_channels", mid_channels)
        super().__init__(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class AttentionGate(nn.Module):
    """Additive attention gate of Attention U-Net (Oktay et al. 2018) on one skip connection.

    ``alpha = sigmoid(BN(psi(ReLU(BN(W_g g) + BN(W_x x)))))`` with 1×1 convs ``W_g``, ``W_x`` (to ``inter_channels``)
    and ``psi`` (to 1 channel); the output is ``x · alpha`` (one attention coefficient per pixel, shared by the
    channels).

    Args:
        gate_channels: channels of the gating signal ``g`` (the decoder's upsampled features).
        skip_channels: channels of the skip features ``x`` (an encoder level).
        inter_channels: channels of the intermediate additive space.

    Shapes:
        ``g``: ``(B, gate_channels, H, W)``; ``x``: ``(B, skip_channels, H, W)`` → ``(B, skip_channels, H, W)``.
    """

    def __init__(self, gate_channels: int, skip_channels: int, inter_channels: int) -> None:
        super().__init__()
        gate_channels = _positive("gate_channels", gate_channels)
        skip_channels = _positive("skip_channels", skip_channels)
        inter_channels = _positive("inter_channels", inter_channels)
        # No conv biases: each conv is followed by a BatchNorm, which would cancel them (their gradient is 0).
        self.w_g = nn.Sequential(
            nn.Conv2d(gate_channels, inter_channels, 1, bias=False), nn.BatchNorm2d(inter_channels)
        )
        self.w_x = nn.Sequential(
            nn.Conv2d(skip_channels, inter_channels, 1, bias=False), nn.BatchNorm2d(inter_channels)
        )
        self.psi = nn.Sequential(nn.Conv2d(inter_channels, 1, 1, bias=False), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def attention(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Attention coefficients ``(B, 1, H, W)`` in (0, 1)."""
        return self.psi(self.relu(self.w_g(g) + self.w_x(x)))

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(g, x)


class UNetEncoder(nn.Module):
    """U-Net contracting path: a :class:`DoubleConv` per level with a 2×2 max pool between levels.

    Args:
        in_channels: input channels.
        channels: output channels of each level, finest first.

    Shapes:
        ``(B, in_channels, H, W)`` with ``H``, ``W`` multiples of ``2 ** (levels - 1)`` → list of
        ``(B, channels[i], H / 2**i, W / 2**i)``, finest first (the last is the bottleneck).
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        channels = _channel_tuple("channels", channels)
        ins = (_positive("in_channels", in_channels), *channels[:-1])
        self.levels = nn.ModuleList(DoubleConv(i, o) for i, o in zip(ins, channels, strict=True))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for index, level in enumerate(self.levels):
            if index:
                x = self.pool(x)
            x = level(x)
            features.append(x)
        return features


class _SharedDecoder(nn.Module):
    """U-Net expanding path fed by ``sources`` encoders (3 for the Tri-UNet, 1 for a plain U-Net).

    Input: per source, the encoder's feature list (finest first). The bottlenecks are concatenated; at each finer
    level the decoder upsamples (ConvTranspose 2×2, stride 2), gates each source's skip features with its own
    attention gate (or passes them through when ``attention_gates`` is False), concatenates
    ``[up, skip_1, ..., skip_n]`` and applies a double conv (to ``channels[level]``, or ``out_channels`` at the
    finest level).
    """

    def __init__(
        self, channels: tuple[int, ...], sources: int, out_channels: int, attention_gates: bool, final_conv: bool = True
    ) -> None:
        super().__init__()
        channels = _channel_tuple("channels", channels)
        if len(channels) < 2:
            raise ConfigError(f"channels: expected at least 2 levels for a U-Net decoder, got {channels!r}")
        sources = _positive("sources", sources)
        out_channels = _positive("out_channels", out_channels)
        self.sources = sources
        self.attention_gates = attention_gates
        self.ups = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.convs = nn.ModuleList()
        previous = sources * channels[-1]
        for level in range(len(channels) - 2, -1, -1):
            c = channels[level]
            self.ups.append(nn.ConvTranspose2d(previous, c, kernel_size=2, stride=2))
            if attention_gates:
                self.gates.append(nn.ModuleList(AttentionGate(c, c, max(1, c // 2)) for _ in range(sources)))
            target = out_channels if level == 0 else c
            if level == 0 and not final_conv:  # the authors' code: stop at the last concatenation
                self.convs.append(nn.Identity())
                target = c * (1 + sources)
            else:
                self.convs.append(DoubleConv(c * (1 + sources), target))
            previous = target
        self.out_channels = previous

    def forward(self, features: list[list[torch.Tensor]]) -> torch.Tensor:
        x = torch.cat([f[-1] for f in features], dim=1)
        levels = len(features[0])
        for step, (up, conv) in enumerate(zip(self.ups, self.convs, strict=True)):
            level = levels - 2 - step
            x = up(x)
            skips = [f[level] for f in features]
            if self.attention_gates:
                skips = [gate(x, skip) for gate, skip in zip(self.gates[step], skips, strict=True)]
            x = conv(torch.cat([x, *skips], dim=1))
        return x


def _check_views(module: nn.Module, x: torch.Tensor, views: int, in_channels: int) -> None:
    check_shape("x", x, (None, views, in_channels, None, None))
    multiple = getattr(module, "size_multiple", 1)
    if x.shape[-1] % multiple or x.shape[-2] % multiple:
        raise ShapeError(
            f"x: height and width must be multiples of {multiple} for {type(module).__name__}, got {tuple(x.shape)}"
        )


class TriUNet(nn.Module):
    """DF-MVR's multi-view fusion network (paper III-C, Fig. 3), generalised to ``views`` encoders.

    Args:
        in_channels: input channels of one view (3 RGB + mask channels; paper 4).
        encoder_channels: channels per level, finest first (paper (64, 128, 256, 512, 1024)).
        out_channels: channels of the fused map (paper 64).
        views: number of views, one unshared encoder each (paper 3: left, front, right).
        attention_gates: gate each view's skip features (paper True).
        final_conv: end with the double conv to ``out_channels`` (paper); False returns the last
            concatenation, ``(1 + views) · encoder_channels[0]`` channels, as the authors' code does.

    Shapes:
        ``x``: ``(B, views, in_channels, H, W)``, ``H`` and ``W`` multiples of ``2 ** (levels - 1)`` →
        ``(B, self.out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        encoder_channels: tuple[int, ...],
        out_channels: int,
        views: int = 3,
        attention_gates: bool = True,
        final_conv: bool = True,
    ) -> None:
        super().__init__()
        encoder_channels = _channel_tuple("encoder_channels", encoder_channels)
        self.in_channels = _positive("in_channels", in_channels)
        self.views = _positive("views", views)
        self.size_multiple = 2 ** (len(encoder_channels) - 1)
        self.encoders = nn.ModuleList(UNetEncoder(in_channels, encoder_channels) for _ in range(views))
        self.decoder = _SharedDecoder(
            encoder_channels, views, _positive("out_channels", out_channels), attention_gates, final_conv
        )
        self.out_channels = self.decoder.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_views(self, x, self.views, self.in_channels)
        features = [encoder(x[:, v]) for v, encoder in enumerate(self.encoders)]
        return self.decoder(features)


class SingleUNet(nn.Module):
    """Ablation v2: one (attention) U-Net on the views concatenated along channels.

    Args and shapes as :class:`TriUNet`; the single encoder takes ``views · in_channels`` channels.
    """

    def __init__(
        self,
        in_channels: int,
        encoder_channels: tuple[int, ...],
        out_channels: int,
        views: int = 3,
        attention_gates: bool = True,
    ) -> None:
        super().__init__()
        encoder_channels = _channel_tuple("encoder_channels", encoder_channels)
        self.in_channels = _positive("in_channels", in_channels)
        self.views = _positive("views", views)
        self.out_channels = _positive("out_channels", out_channels)
        self.size_multiple = 2 ** (len(encoder_channels) - 1)
        self.encoder = UNetEncoder(views * in_channels, encoder_channels)
        self.decoder = _SharedDecoder(encoder_channels, 1, out_channels, attention_gates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_views(self, x, self.views, self.in_channels)
        return self.decoder([self.encoder(x.flatten(1, 2))])


class ConcatCNN(nn.Module):
    """Ablation v1: per-view plain CNNs (unshared), features concatenated at the end.

    Each view goes through two :class:`DoubleConv` blocks (four conv3×3-BN-ReLU layers) at full resolution with
    ``width`` channels (no pooling, no skips, no cross-view interaction); the ``views · width`` channels are then
    projected to ``out_channels`` by a 1×1 conv + BN + ReLU, so the regressor sees the same map size as with the
    Tri-UNet and only the fusion differs.

    Args:
        in_channels: input channels of one view.
        width: channels of each view's stack (the configs use ``encoder_channels[0]``).
        out_channels: channels of the fused map.
        views: number of views.

    Shapes:
        ``x``: ``(B, views, in_channels, H, W)`` → ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, width: int, out_channels: int, views: int = 3) -> None:
        super().__init__()
        self.in_channels = _positive("in_channels", in_channels)
        width = _positive("width", width)
        self.views = _positive("views", views)
        self.out_channels = _positive("out_channels", out_channels)
        self.size_multiple = 1
        self.branches = nn.ModuleList(
            nn.Sequential(DoubleConv(in_channels, width), DoubleConv(width, width)) for _ in range(views)
        )
        self.project = nn.Sequential(
            nn.Conv2d(views * width, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_views(self, x, self.views, self.in_channels)
        return self.project(torch.cat([branch(x[:, v]) for v, branch in enumerate(self.branches)], dim=1))


def build_fusion(
    fusion: str,
    in_channels: int,
    encoder_channels: tuple[int, ...],
    out_channels: int,
    views: int = 3,
    attention_gates: bool = True,
    final_conv: bool = True,
) -> nn.Module:
    """The fusion module named by ``NetworkConfig.fusion`` (``tri_unet``, ``single_unet`` or ``concat_cnn``);
    ``final_conv`` applies to the Tri-UNet (``NetworkConfig.fusion_output``).

    Raises:
        ConfigError: unknown ``fusion`` or invalid sizes.
    """
    if fusion == "tri_unet":
        return TriUNet(in_channels, encoder_channels, out_channels, views, attention_gates, final_conv)
    if fusion == "single_unet":
        return SingleUNet(in_channels, encoder_channels, out_channels, views, attention_gates)
    if fusion == "concat_cnn":
        return ConcatCNN(in_channels, _channel_tuple("encoder_channels", encoder_channels)[0], out_channels, views)
    raise ConfigError(f"fusion: expected one of ('tri_unet', 'single_unet', 'concat_cnn'), got {fusion!r}")
