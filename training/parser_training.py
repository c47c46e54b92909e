"""Face-parser training (``dfmvr train --mode parser``) and the parser checkpoint file.

DF-MVR pre-trains BiSeNet on CelebAMask-HQ (paper V-A) and the authors retrain it with the 10 face-part classes.
Without CelebAMask-HQ here, ``--mode parser`` trains the same BiSeNet (:class:`~dfmvr_core.networks.face_parser.
BiSeNet`, 10 outputs = :class:`~dfmvr_core.morphable.FacePart`) on the synthetic crops' ground-truth ``parts``:
cross-entropy on the main head plus BiSeNet's two auxiliary heads (deep supervision, as face-parsing.PyTorch, with
plain instead of OHEM cross-entropy).

Parser file (``parser.pth``, ``torch.save``, weights-only loadable)::

    format "dfmvr-face-parser", format_version 1, dfmvr_version, num_classes 10,
    classes ["OTHER", "SKIN", ...] (FacePart order), normalization "imagenet", state_dict {...}, extra {...}

The ``{"state_dict": ...}`` wrapper is the layout :func:`dfmvr_core.networks.face_parser.load_face_parser` unwraps,
but that loader only builds the 19-class CelebAMask-HQ network; :func:`load_parser_checkpoint` reads both.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, default_collate

from dfmvr_core import __version__
from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ModelFileError
from dfmvr_core.morphable import NUM_FACE_PARTS, FacePart
from dfmvr_core.networks.face_parser import NUM_CELEBA_CLASSES, BiSeNet, load_face_parser, normalize_imagenet
from dfmvr_core.validation import check_state_dict
from dfmvr_training.step import autocast_context

__all__ = [
    "PARSER_FORMAT",
    "PARTS_PALETTE",
    "ParserTask",
    "colorize_parts",
    "load_parser_checkpoint",
    "save_parser_checkpoint",
]

PARSER_FORMAT = "dfmvr-face-parser"
PARSER_FORMAT_VERSION = 1
PARTS_PALETTE = np.array(
    [
        (0, 0, 0),
        (230, 190, 160),
        (120, 60, 20),
        (160, 90, 40),
        (40, 120, 255),
        (40, 200, 255),
        (250, 120, 40),
        (90, 0, 40),
        (220, 40, 80),
        (170, 20, 60),
    ],
    dtype=np.uint8,
)
"""RGB colour of each :class:`FacePart` for previews."""


def colorize_parts(parts: Tensor) -> np.ndarray:
    """(H, W) integer FacePart labels → (H, W, 3) uint8 RGB with :data:`PARTS_PALETTE`."""
    return PARTS_PALETTE[parts.detach().cpu().numpy().clip(0, NUM_FACE_PARTS - 1)]


def save_parser_checkpoint(path: str | Path, net: BiSeNet, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a trained face parser (see the module docstring) atomically."""
    payload = {
        "format": PARSER_FORMAT,
        "format_version": PARSER_FORMAT_VERSION,
        "dfmvr_version": __version__,
        "num_classes": int(net.num_classes),
        "classes": [p.name for p in FacePart] if net.num_classes == NUM_FACE_PARTS else [],
        "normalization": "imagenet",
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "extra": dict(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_parser_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, freeze: bool = True
) -> BiSeNet:
    """A frozen face parser for the mask loss: a 10-class file from :func:`save_parser_checkpoint`, or the 19-class
    face-parsing.PyTorch checkpoint (through :func:`load_face_parser`).

    Returns:
        The BiSeNet in eval mode on ``map_location`` (``requires_grad`` off when ``freeze``).

    Raises:
        ModelFileError: missing, corrupt or mismatched file (named).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: face parser checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(f"{path}: cannot read face parser checkpoint (not a weights-only PyTorch file)") from None
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot read face parser checkpoint, file truncated or corrupt ({exc})") from None
    if not (isinstance(payload, Mapping) and payload.get("format") == PARSER_FORMAT):
        return load_face_parser(path, map_location, freeze=freeze)
    classes = payload.get("num_classes")
    if classes not in (NUM_FACE_PARTS, NUM_CELEBA_CLASSES):
        raise ModelFileError(f"{path}: num_classes {classes!r}; expected {NUM_FACE_PARTS} or {NUM_CELEBA_CLASSES}")
    state = payload.get("state_dict")
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: state_dict missing or not a mapping of tensors")
    net = BiSeNet(classes)
    check_state_dict(str(path), state, net.state_dict(), what=f"a {classes}-class BiSeNet face parser")
    net.load_state_dict(dict(state), strict=True)
    net.to(torch.device(map_location)).eval()
    if freeze:
        net.requires_grad_(False)
    return net


class ParserTask:
    """``mode: parser``: BiSeNet with 10 outputs trained on the crops' ``parts`` (cross-entropy, 3 heads).

    Args:
        device: training device.
        amp: autocast mode (CUDA only).
        benchmark: evaluation dataset (items with ``images`` and ``parts``) or None.
        eval_samples: how many of its first samples to evaluate.
        batch_size: evaluation chunk size.
    """

    kind = "parser"
    export_name = "parser.pth"

    def __init__(
        self,
        device: torch.device,
        amp: str = "none",
        benchmark: Dataset | None = None,
        eval_samples: int = 8,
        batch_size: int = 4,
    ) -> None:
        self.device = device
        self.amp = amp
        self.net = BiSeNet(NUM_FACE_PARTS).to(device)
        self.fingerprint: str | None = None
        self.benchmark = benchmark
        self.eval_samples = eval_samples
        self.batch_size = batch_size

    def network_description(self) -> dict[str, Any]:
        return {"kind": "bisenet", "num_classes": NUM_FACE_PARTS}

    def loss(
        self, module: nn.Module, batch: Mapping[str, Tensor], epoch: int, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Any], Any]:
        """Cross-entropy of the three heads on every view of the batch (views flattened into the batch)."""
        images = batch["images"].flatten(0, 1)
        target = batch["parts"].flatten(0, 1)
        with autocast_context(self.amp, images.device):
            outputs = module(normalize_imagenet(images))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        names = ("main", "aux16", "aux32")[: len(outputs)]
        terms = {n: F.cross_entropy(o.float(), target) for n, o in zip(names, outputs, strict=True)}
        total = sum(terms.values())
        with torch.no_grad():
            accuracy = (outputs[0].argmax(1) == target).float().mean()
        scalars = {"terms": {k: v.detach() for k, v in terms.items()}, "pixel_accuracy": accuracy}

        first_views, first_parts = batch["images"][0].detach(), batch["parts"][0]
        first_logits = outputs[0][: first_views.shape[0]].detach()

        def preview() -> np.ndarray:  # drawn only every image_every steps
            views = first_views.movedim(1, -1).float().cpu().clamp(0, 1)
            pred = first_logits.argmax(1)
            rows = []
            for v in range(views.shape[0]):
                rgb = (views[v].numpy() * 255).round().astype(np.uint8)
                rows.append(np.concatenate([rgb, colorize_parts(first_parts[v]), colorize_parts(pred[v])], axis=1))
            return np.concatenate(rows, axis=0)

        return total, scalars, preview

    @torch.no_grad()
    def evaluate(self, net: nn.Module) -> dict[str, Any]:
        """Pixel accuracy and mean IoU over the 10 classes on the first ``eval_samples`` benchmark samples."""
        if self.benchmark is None:
            return {}
        was_training = net.training
        net.eval()
        count = min(self.eval_samples, len(self.benchmark))  # type: ignore[arg-type]
        confusion = torch.zeros(NUM_FACE_PARTS, NUM_FACE_PARTS, dtype=torch.int64)
        for start in range(0, count, self.batch_size):
            batch = default_collate([self.benchmark[i] for i in range(start, min(count, start + self.batch_size))])
            images = batch["images"].flatten(0, 1).to(self.device)
            target = batch["parts"].flatten(0, 1)
            pred = net(normalize_imagenet(images)).argmax(1).cpu()
            confusion += torch.bincount(
                target.flatten() * NUM_FACE_PARTS + pred.flatten(), minlength=NUM_FACE_PARTS**2
            ).view(NUM_FACE_PARTS, NUM_FACE_PARTS)
        net.train(was_training)
        tp = confusion.diag().double()
        union = confusion.sum(0).double() + confusion.sum(1).double() - tp
        present = union > 0
        iou = tp[present] / union[present]
        return {
            "count": count,
            "pixel_accuracy": float(tp.sum() / confusion.sum().clamp_min(1)),
            "mean_iou": float(iou.mean()) if iou.numel() else float("nan"),
        }

    def export(self, path: Path, extra: Mapping[str, Any]) -> Path:
        return save_parser_checkpoint(path, self.net, extra)
