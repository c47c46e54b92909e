"""Face-mask consistency loss, DF-MVR paper eq. 3 (section IV-B).

The rendered views are parsed by the (frozen) face parser and compared with the input's face masks by
cross-entropy in the paper's 10 face-part classes (:class:`~dfmvr_core.morphable.FacePart`):

``L_m = −1/(N_p V) Σ_v Σ_p log ŷ_p[y_p]``

Eq. 3 is printed in its binary form ``y log ŷ + (1 − y) log(1 − ŷ)``; with one-hot labels over several
classes the paper's reference ([28], BiSeNet) and the authors' code use the categorical cross-entropy above,
as we do.

The parser here is the CelebAMask-HQ BiSeNet (19 classes). Its logits are turned into log-probabilities of
the 10 parts by summing the probabilities of the CelebA classes each part collects
(:func:`~dfmvr_core.networks.face_parts.celeba_to_face_parts_table`; hair, neck, ears, ... → background):
``log p(part) = logsumexp_{c ∈ part} log_softmax(logits)_c``. This keeps the loss differentiable, so the
gradient reaches the rendering and through it the coefficients.

Differences from the authors' code (documented, not reproduced): their parser was retrained with 10 output
classes, and they parse a *detached* copy of the rendering (``render_img.detach().cpu()``), so their mask loss
sends no gradient to the network at all. Here nothing is detached: callers that want the authors' behaviour
pass ``rendered_rgb.detach()`` to :func:`parse_rendered_views`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.parts import NUM_FACE_PARTS, FacePart
from dfmvr_core.networks.face_parser import NUM_CELEBA_CLASSES, normalize_imagenet
from dfmvr_core.networks.face_parts import celeba_to_face_parts_table
from dfmvr_core.validation import check_shape

from ._checks import check_float, check_mask, check_parts, mean_over_views, safe_ratio

MaskRegion = Literal["input_face", "all"]
MASK_REGIONS: tuple[str, ...] = ("input_face", "all")


def celeba_logits_to_part_log_probs(logits: Tensor, table: Tensor | None = None) -> Tensor:
    """Log-probabilities of the 10 face parts from 19-class CelebAMask-HQ parser logits.

    ``log p(part k) = logsumexp over the CelebA classes c with table[c] = k of log_softmax(logits)_c``:
    the probabilities of the classes a part collects are summed (in log space, numerically stable).

    Args:
        logits: (N, 19, H, W) float parser logits (any extra leading dims allowed: (..., 19, H, W)).
        table: (19,) int64 CelebA class → FacePart look-up (default
            :func:`~dfmvr_core.networks.face_parts.celeba_to_face_parts_table`).

    Returns:
        (..., 10, H, W) float log-probabilities (their exponentials sum to 1 over the 10 parts). A part that
        no CelebA class maps to gets log-probability −inf.
    """
    check_shape("logits", logits, (..., NUM_CELEBA_CLASSES, None, None))
    table = celeba_to_face_parts_table() if table is None else table
    check_shape("table", table, (NUM_CELEBA_CLASSES,))
    log_p = torch.log_softmax(logits, dim=-3)
    groups = []
    for part in range(NUM_FACE_PARTS):
        members = torch.nonzero(table == part).flatten().to(logits.device)
        if members.numel() == 0:
            groups.append(torch.full_like(log_p[..., 0, :, :], float("-inf")))
        else:
            groups.append(torch.logsumexp(log_p.index_select(-3, members), dim=-3))
    return torch.stack(groups, dim=-3)


def mask_loss(
    parser_logits: Tensor,
    input_parts: Tensor,
    valid: Tensor | None = None,
    *,
    region: MaskRegion = "input_face",
    celeba_table: Tensor | None = None,
) -> Tensor:
    """Cross-entropy between the parse of the rendered views and the input face masks (paper eq. 3).

    Args:
        parser_logits: (B, V, C, H, W) float logits of the face parser on the rendered views (see
            :func:`parse_rendered_views`); C = 19 (CelebAMask-HQ, mapped to the 10 parts by summing
            probabilities) or C = 10 (a parser that already predicts :class:`FacePart` classes, as the
            authors' retrained one). Differentiable.
        input_parts: (B, V, H, W) integer :class:`FacePart` labels of the input images (the targets).
        valid: (B, V) bool, False for missing views; None = all valid.
        region: the pixels averaged over. ``"input_face"`` (default, the paper: "N_p is number of pixels in
            face mask"): pixels whose input label is not background. ``"all"``: every pixel (the authors'
            ``nn.CrossEntropyLoss`` over the whole crop), which also penalises rendered face over the
            input's background.
        celeba_table: (19,) CelebA → FacePart look-up for C = 19 (default: ``celeba_to_face_parts_table()``).

    Returns:
        (B,) float: mean over valid views of the mean per-pixel cross-entropy, in nats (0 only for a
        certain, correct parse; log 10 ≈ 2.30 for a uniform one). Views with an empty region are left out.

    Raises:
        ShapeError: shapes disagree (names the argument), NaN/inf logits, bad labels, C not 10 or 19.
        ConfigError: unknown ``region``.
    """
    if region not in MASK_REGIONS:
        raise ConfigError(f"region: expected one of {MASK_REGIONS}, got {region!r}")
    dims = check_shape("parser_logits", parser_logits, ("B", "V", "C", "H", "W"))
    b, v, c, h, w = dims["B"], dims["V"], dims["C"], dims["H"], dims["W"]
    if c not in (NUM_CELEBA_CLASSES, NUM_FACE_PARTS):
        raise ShapeError(
            f"parser_logits: expected C = {NUM_CELEBA_CLASSES} (CelebAMask-HQ) or {NUM_FACE_PARTS} (face parts) "
            f"class channels in (B, V, C, H, W), got C = {c}"
        )
    check_float("parser_logits", parser_logits)
    check_parts("input_parts", input_parts, (b, v, h, w))
    valid_mask = check_mask("valid", valid, (b, v), parser_logits.device)
    if valid_mask is None:
        valid_mask = torch.ones(b, v, dtype=torch.bool, device=parser_logits.device)

    if c == NUM_CELEBA_CLASSES:
        log_p = celeba_logits_to_part_log_probs(parser_logits, celeba_table)
    else:
        log_p = torch.log_softmax(parser_logits, dim=2)
    targets = input_parts.to(device=parser_logits.device, dtype=torch.int64)
    nll = -log_p.gather(2, targets.unsqueeze(2)).squeeze(2)  # (B, V, H, W)
    if region == "input_face":
        pixels = targets != FacePart.OTHER
    else:
        pixels = torch.ones_like(targets, dtype=torch.bool)
    nll = torch.where(pixels, nll, torch.zeros_like(nll))  # also keeps −inf parts outside the region harmless
    count = pixels.sum(dim=(-2, -1)).to(nll.dtype)
    per_view = safe_ratio(nll.sum(dim=(-2, -1)), count)
    return mean_over_views(per_view, valid_mask & (count > 0))


def parse_rendered_views(
    parser: nn.Module | Callable[[Tensor], Tensor],
    rendered_rgb: Tensor,
    valid: Tensor | None = None,
    *,
    normalize: Callable[[Tensor], Tensor] | None = normalize_imagenet,
) -> Tensor:
    """Run a face parser on the rendered crops of every valid view (paper IV-B: "the rendered 2D images are
    fed into the face parse network").

    The parser's train/eval mode and ``requires_grad`` are left as the caller set them (DF-MVR freezes the
    pretrained BiSeNet: ``load_face_parser(..., freeze=True)`` and ``parser.eval()``). Gradients flow from the
    logits to ``rendered_rgb``; pass ``rendered_rgb.detach()`` for the authors' (gradient-free) variant.

    Args:
        parser: module mapping (N, 3, H, W) normalised RGB to logits (N, C, H, W), or a tuple whose first item
            is those logits (BiSeNet in training mode), e.g. :class:`~dfmvr_core.networks.face_parser.BiSeNet`.
        rendered_rgb: (B, V, H, W, 3) float RGB in [0, 1], channels last (``FaceRendering.rgb``).
        valid: (B, V) bool; invalid views are not parsed and get zero logits. None = all valid.
        normalize: input normalisation applied to (N, 3, H, W) images in [0, 1] before the parser (default
            the ImageNet mean/std that the face-parsing.PyTorch checkpoint expects); None for none.

    Returns:
        (B, V, C, H, W) logits, dtype of the parser output.

    Raises:
        ShapeError: bad shapes or NaN/inf, or a parser output that is not (N, C, H, W) at the input size.
    """
    dims = check_shape("rendered_rgb", rendered_rgb, ("B", "V", "H", "W", 3))
    b, v, h, w = dims["B"], dims["V"], dims["H"], dims["W"]
    check_float("rendered_rgb", rendered_rgb)
    valid_mask = check_mask("valid", valid, (b, v), rendered_rgb.device)
    images = rendered_rgb.movedim(-1, 2)  # (B, V, 3, H, W)
    selected = images[valid_mask] if valid_mask is not None else images.reshape(b * v, 3, h, w)
    if selected.shape[0] == 0:
        raise ShapeError("valid: no valid view to parse; expected at least one True entry")
    x = normalize(selected) if normalize is not None else selected
    out = parser(x)
    logits = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(logits, Tensor) or logits.dim() != 4 or logits.shape[0] != selected.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ShapeError(f"parser: expected logits of shape ({selected.shape[0]}, C, {h}, {w}), got {shape}")
    if tuple(logits.shape[2:]) != (h, w):
        raise ShapeError(f"parser: expected logits at the input size ({h}, {w}), got {tuple(logits.shape[2:])}")
    if valid_mask is None:
        return logits.reshape(b, v, *logits.shape[1:])
    full = logits.new_zeros(b, v, *logits.shape[1:])
    full[valid_mask] = logits
    return full
