"""Involution, the spatial-specific, channel-shared operator of RedNet (Li et al., CVPR 2021).

DF-MVR (paper section III-D) regresses its 3DMM coefficients with RedNet-50, a ResNet whose 3×3 convolutions
are replaced by involutions. An involution of kernel size K on a ``(B, C, H, W)`` map generates one K×K kernel
per output pixel and per group of ``group_channels`` channels *from the input itself* (Li et al., eq. 4–6):

    kernel = conv2(ReLU(BN(conv1(avgpool_s(x)))))          # (B, G·K², H', W'), G = C / group_channels
    y[b, c, i, j] = Σ_{u,v} kernel[b, g(c), u·K + v, i, j] · x_pad[b, c, s·i + u, s·j + v]

with ``x_pad`` zero-padded by ``(K - 1) / 2`` and ``s`` the stride. The aggregation here is written as a loop over
the K² offsets, each taking a strided slice of the padded input (vectorised over batch, channels and pixels),
instead of the ``nn.Unfold`` of the official code: the result is the same (checked against
:func:`_involution_unfold_reference` in the tests), it needs no ``(B, C·K², H'·W')`` buffer and it exports to ONNX
as plain Slice/Mul/Add nodes rather than slow gathers.

Parameter names follow the official mmcls module (``d-li14/involution``, ``cls/mmcls/models/backbones/rednet.py``)
so that official ImageNet checkpoints load without renaming inside the module:

* ``conv1.conv.weight`` — reduce 1×1 conv C → C/r, no bias (official: same key);
* ``conv1.bn.{weight,bias,running_mean,running_var}`` — BatchNorm after the reduce conv, followed by ReLU
  (official: same keys; mmcv's ConvModule names its children ``conv``, ``bn``, ``activate``);
* ``conv2.conv.{weight,bias}`` — span 1×1 conv C/r → K²·G, with bias (official: same keys);
* ``avgpool`` — parameter-free kernel-generation down-sampling, an identity when stride = 1 (official: only
  present when stride > 1).

(``num_batches_tracked`` buffers exist on both sides.) The official ``unfold`` has no parameters and no counterpart.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from dfmvr_core.errors import ConfigError
from dfmvr_core.validation import check_shape

__all__ = ["Involution2d"]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a positive int, got {value!r}")
    return value


class Involution2d(nn.Module):
    """Involution layer of Li et al. (CVPR 2021), as used in RedNet and in DF-MVR's RedNet-50 regressor.

    Args:
        channels: input = output channels ``C``; a multiple of ``group_channels``.
        kernel_size: odd spatial size ``K`` of the generated kernels (7 in RedNet's bottlenecks, 3 in its stem).
        stride: output stride ``s``; for ``s > 1`` the kernels are generated from an ``s×s`` average-pooled input
            and the aggregation samples every ``s``-th pixel (the official placement, Li et al. sec. 4.1).
        group_channels: channels sharing one kernel (16 in the paper); ``G = C / group_channels`` groups.
        reduction_ratio: channel reduction ``r`` of the kernel-generation bottleneck (4 in the paper).

    Shapes:
        input ``(B, C, H, W)`` floating point; output ``(B, C, ceil(H / s), ceil(W / s))``, same dtype/device.
        For odd ``H`` or ``W`` and ``s > 1`` the pooling uses ``ceil_mode`` (mean over the pixels inside the
        image) so that the kernel map and the sampled grid keep the same size; on even sizes this is exactly
        the official behaviour.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        stride: int = 1,
        group_channels: int = 16,
        reduction_ratio: int = 4,
    ) -> None:
        super().__init__()
        channels = _check_positive_int("channels", channels)
        kernel_size = _check_positive_int("kernel_size", kernel_size)
        stride = _check_positive_int("stride", stride)
        group_channels = _check_positive_int("group_channels", group_channels)
        reduction_ratio = _check_positive_int("reduction_ratio", reduction_ratio)
        if kernel_size % 2 != 1:
            raise ConfigError(f"kernel_size: expected an odd int (1, 3, 5, 7, ...), got {kernel_size}")
        if channels % group_channels != 0:
            raise ConfigError(f"channels: expected a multiple of group_channels={group_channels}, got {channels}")
        if channels < reduction_ratio:
            raise ConfigError(
                f"reduction_ratio: expected at most channels={channels} (channels // reduction_ratio >= 1), "
                f"got {reduction_ratio}"
            )
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.reduction_ratio = reduction_ratio
        reduced = channels // reduction_ratio
        # Names mirror mmcv's ConvModule ("conv", "bn", "activate") used by the official code.
        self.conv1 = nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(channels, reduced, kernel_size=1, bias=False),
                bn=nn.BatchNorm2d(reduced),
                activate=nn.ReLU(inplace=True),
            )
        )
        self.conv2 = nn.Sequential(
            OrderedDict(conv=nn.Conv2d(reduced, kernel_size * kernel_size * self.groups, kernel_size=1, bias=True))
        )
        self.avgpool: nn.Module = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"group_channels={self.group_channels}, reduction_ratio={self.reduction_ratio}"
        )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size ``(ceil(H / s), ceil(W / s))`` of the output for an ``H×W`` input."""
        return -(-height // self.stride), -(-width // self.stride)

    def generate_kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel kernels ``(B, G, K², H', W')`` generated from ``x`` ``(B, C, H, W)`` (Li et al., eq. 6).

        Index ``u·K + v`` of dim 2 is the tap at row offset ``u`` and column offset ``v`` of the K×K window.
        """
        weight = self.conv2(self.conv1(self.avgpool(x)))
        b, _, h, w = weight.shape
        return weight.view(b, self.groups, self.kernel_size * self.kernel_size, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Involve ``x`` ``(B, C, H, W)`` → ``(B, C, ceil(H / s), ceil(W / s))``.

        Raises:
            ShapeError: if ``x`` is not 4-D with ``C`` channels.
        """
        check_shape("x", x, (None, self.channels, None, None))
        b, c, h, w = x.shape
        k, s = self.kernel_size, self.stride
        kernel = self.generate_kernel(x)  # (B, G, K², Ho, Wo)
        ho, wo = kernel.shape[-2:]
        pad = (k - 1) // 2
        x_pad = F.pad(x, (pad, pad, pad, pad)) if pad else x
        x_pad = x_pad.reshape(b, self.groups, self.group_channels, h + 2 * pad, w + 2 * pad)
        # Last index (exclusive) of a strided slice giving exactly ho (wo) samples starting at offset u (v).
        span_h, span_w = s * (ho - 1) + 1, s * (wo - 1) + 1
        out: torch.Tensor | None = None
        for u in range(k):
            for v in range(k):
                tap = kernel[:, :, u * k + v].unsqueeze(2)  # (B, G, 1, Ho, Wo), broadcast over group channels
                shifted = x_pad[:, :, :, u : u + span_h : s, v : v + span_w : s]  # (B, G, Cg, Ho, Wo)
                term = tap * shifted
                out = term if out is None else out + term
        assert out is not None  # k >= 1
        return out.reshape(b, c, ho, wo)


def _involution_unfold_reference(module: Involution2d, x: torch.Tensor) -> torch.Tensor:
    """Involution computed like the official code, with ``F.unfold``; for tests only.

    Uses ``module``'s own kernel generation so that only the aggregation differs from ``module(x)``.
    Shapes as :meth:`Involution2d.forward`.
    """
    b, c = x.shape[:2]
    k, s = module.kernel_size, module.stride
    kernel = module.generate_kernel(x)  # (B, G, K², Ho, Wo)
    ho, wo = kernel.shape[-2:]
    cols = F.unfold(x, kernel_size=k, padding=(k - 1) // 2, stride=s)  # (B, C·K², Ho·Wo)
    cols = cols.view(b, module.groups, module.group_channels, k * k, ho, wo)
    return (kernel.unsqueeze(2) * cols).sum(dim=3).view(b, c, ho, wo)
