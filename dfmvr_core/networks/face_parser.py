"""BiSeNet face parser (DF-MVR section III-B "Face Parse Net", IV-B "pre-trained BiSeNet with frozen weights").

The network reproduces the module structure of the public face-parsing.PyTorch project (BiSeNet trained on
CelebAMask-HQ, 19 classes) so that its ``state_dict`` has exactly the key names and shapes of that project's
checkpoint ``79999_iter.pth``; :func:`load_face_parser` loads such a file. Nothing is downloaded: the ResNet-18
backbone is written here and starts from random weights; only a loaded checkpoint gives useful output.

Structure (strides relative to the input):

* context path ``cp``: ResNet-18 ``cp.resnet`` giving features at 1/8 (128 ch), 1/16 (256 ch), 1/32 (512 ch);
  global average context ``cp.conv_avg``; attention refinement modules ``cp.arm32`` / ``cp.arm16``; heads
  ``cp.conv_head32`` / ``cp.conv_head16`` (nearest-neighbour upsampling between scales);
* spatial path: as in face-parsing.PyTorch there is no separate spatial-path module, the ResNet 1/8 features
  stand in for it;
* feature fusion module ``ffm`` (spatial 128 ch + context 128 ch → 256 ch, channel attention);
* heads ``conv_out`` (main, on the fused 1/8 features) and auxiliary ``conv_out16`` / ``conv_out32`` (on the
  context features at 1/8 and 1/16), all bilinearly upsampled (``align_corners=True``) to the input size.

The checkpoint expects RGB normalised with the ImageNet mean and std (:func:`normalize_imagenet`); use
:meth:`BiSeNet.parse` for images in [0, 1].
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfmvr_core.errors import ModelFileError, ShapeError
from dfmvr_core.morphable.parts import NUM_FACE_PARTS
from dfmvr_core.validation import check_finite, check_shape, check_state_dict

NUM_CELEBA_CLASSES = 19
PARSER_CLASS_COUNTS = (NUM_CELEBA_CLASSES, NUM_FACE_PARTS)
"""Output classes a loadable parser may have: CelebAMask-HQ's 19 or the paper's 10 face parts."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# BatchNorm buffer that checkpoints written by old PyTorch versions may lack; the model's own value is kept.
_OPTIONAL_KEY_SUFFIX = ".num_batches_tracked"


def normalize_imagenet(images: Tensor) -> Tensor:
    """ImageNet normalisation expected by the face-parsing.PyTorch checkpoint.

    Args:
        images: (B, 3, H, W) float RGB in [0, 1].

    Returns:
        (B, 3, H, W) same dtype and device, ``(images - mean) / std`` per channel.
    """
    check_shape("images", images, (None, 3, None, None))
    if not images.is_floating_point():
        raise ShapeError(f"images: expected a floating-point tensor, got dtype {images.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


class ConvBNReLU(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU. Keys: ``conv.weight``, ``bn.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convs with a projection shortcut (``downsample.0/1``) when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels, 1))


class ResNet18Features(nn.Module):
    """ResNet-18 without the classifier; returns the stage-2/3/4 features (randomly initialised, no download)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, 3, H, W) → features at 1/8 (B, 128, ·), 1/16 (B, 256, ·), 1/32 (B, 512, ·)."""
        x = self.layer1(self.maxpool(F.relu(self.bn1(self.conv1(x)))))
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinementModule(nn.Module):
    """BiSeNet ARM: 3×3 ConvBNReLU, then a channel attention vector from global average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 3)
        self.conv_atten = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * attention


class ContextPath(nn.Module):
    """ResNet-18 + global context + ARMs. Returns (ResNet 1/8 features, context at 1/8, context at 1/16)."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet18Features()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        ctx32 = self.arm32(feat32) + global_context  # broadcast == nearest upsampling of a 1×1 map
        ctx32_up = self.conv_head32(F.interpolate(ctx32, size=feat16.shape[2:], mode="nearest"))
        ctx16 = self.arm16(feat16) + ctx32_up
        ctx16_up = self.conv_head16(F.interpolate(ctx16, size=feat8.shape[2:], mode="nearest"))
        return feat8, ctx16_up, ctx32_up


class FeatureFusionModule(nn.Module):
    """BiSeNet FFM: concat → 1×1 ConvBNReLU → squeeze-excitation style attention, ``feat * (1 + atten)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_channels, out_channels, 1)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, 1, bias=False)

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat * attention + feat


class BiSeNetOutput(nn.Module):
    """Segmentation head: 3×3 ConvBNReLU then a 1×1 classifier conv (``conv_out``, no bias)."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """BiSeNet face parser with the face-parsing.PyTorch layout (checkpoint-compatible ``state_dict``).

    Construction never touches the network or the disk; weights are random (Kaiming-normal convs) until a
    checkpoint is loaded with :func:`load_face_parser`.
    """

    def __init__(self, num_classes: int = NUM_CELEBA_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, num_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, num_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=1)

    def forward(self, images: Tensor) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        """Per-pixel class logits at the input resolution.

        Args:
            images: (B, 3, H, W) float RGB, ImageNet-normalised (see :func:`normalize_imagenet`).

        Returns:
            eval mode: logits (B, num_classes, H, W).
            training mode: ``(logits, aux16, aux32)``, each (B, num_classes, H, W): the main head and the two
            auxiliary heads on the context features at 1/8 and 1/16 (BiSeNet's deep supervision losses).
        """
        check_shape("images", images, (None, 3, None, None))
        check_finite("images", images)
        size = images.shape[2:]
        feat8, ctx8, ctx16 = self.cp(images)
        logits = self._upsample(self.conv_out(self.ffm(feat8, ctx8)), size)
        if not self.training:
            return logits
        return logits, self._upsample(self.conv_out16(ctx8), size), self._upsample(self.conv_out32(ctx16), size)

    @staticmethod
    def _upsample(logits: Tensor, size: torch.Size) -> Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)

    def parse(self, images: Tensor) -> Tensor:
        """Main-head logits for images in [0, 1] (applies :func:`normalize_imagenet` first).

        Differentiable w.r.t. ``images`` (the paper parses rendered images for its mask loss, IV-B).

        Args:
            images: (B, 3, H, W) float RGB in [0, 1].

        Returns:
            (B, num_classes, H, W) logits, whichever mode the module is in.
        """
        out = self(normalize_imagenet(images))
        return out[0] if isinstance(out, tuple) else out

    def parse_labels(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) float RGB in [0, 1] → (B, H, W) int64 CelebAMask-HQ class of each pixel (argmax)."""
        return self.parse(images).argmax(dim=1)


def _extract_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    """Unwrap ``{'state_dict': ...}``, strip ``module.`` prefixes, check that every value is a tensor."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ModelFileError(f"{path}: expected a state_dict (mapping of names to tensors), got {type(obj).__name__}")
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise ModelFileError(f"{path}: entry {key!r} is a {type(value).__name__}, expected a tensor")
        state[key.removeprefix("module.")] = value
    return state


def _validate_state_dict(state: dict[str, Tensor], expected: dict[str, Tensor], path: Path) -> None:
    check_state_dict(
        str(path), state, expected, what="a face-parsing.PyTorch BiSeNet checkpoint (79999_iter.pth layout)",
        optional_suffixes=(_OPTIONAL_KEY_SUFFIX,),
    )  # fmt: skip


def load_face_parser(path: str | Path, map_location: str | torch.device = "cpu", *, freeze: bool = True) -> BiSeNet:
    """Load a BiSeNet face parser: face-parsing.PyTorch's ``79999_iter.pth`` (19 CelebAMask-HQ classes) or one trained
    by ``dfmvr train --mode parser`` (10 face-part classes; the class count is read from the output layer).

    The file is read with ``torch.load(weights_only=True)`` (no arbitrary code runs). Accepted layouts: a raw
    state_dict, one wrapped as ``{'state_dict': ...}``, and keys with a ``module.`` (DataParallel) prefix. Keys
    and shapes are validated before anything is loaded; BatchNorm ``num_batches_tracked`` buffers may be absent.

    Args:
        path: checkpoint file.
        map_location: device the tensors are loaded to; the returned model lives there.
        freeze: set ``requires_grad=False`` on every parameter (the paper uses the pre-trained parser with
            frozen weights, IV-B). Gradients still flow to the input images.

    Returns:
        The :class:`BiSeNet` with the checkpoint's weights, in eval mode (call ``.train()`` to fine-tune).

    Raises:
        ModelFileError: naming the file, if it is missing, truncated/corrupt, not a weights-only state dict, has
            missing/unexpected/mis-shaped keys (the first ones are listed) or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: face parser checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            f"{path}: cannot read face parser checkpoint: not a PyTorch weights file, or it holds Python objects "
            "that a weights-only load refuses (expected a state_dict of tensors)"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for truncated or corrupt files
        first_line = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModelFileError(
            f"{path}: cannot read face parser checkpoint, file truncated or corrupt "
            f"({type(exc).__name__}: {first_line})"
        ) from exc
    state = _extract_state_dict(obj, path)
    head = state.get("conv_out.conv_out.weight")
    classes = int(head.shape[0]) if head is not None and head.ndim == 4 else NUM_CELEBA_CLASSES
    if classes not in PARSER_CLASS_COUNTS:
        raise ModelFileError(
            f"{path}: conv_out.conv_out.weight {tuple(head.shape)} (expected {NUM_CELEBA_CLASSES} output classes, "
            f"CelebAMask-HQ's 79999_iter.pth, or {NUM_FACE_PARTS}, the paper's face parts from `dfmvr train --mode "
            f"parser`; got {classes})"
        )
    model = BiSeNet(classes)
    expected = model.state_dict()
    _validate_state_dict(state, expected, path)
    full_state = {k: state.get(k, v) for k, v in expected.items()}
    model.load_state_dict(full_state, strict=True)
    model.to(torch.device(map_location)).eval()
    if freeze:
        model.requires_grad_(False)
    return model
