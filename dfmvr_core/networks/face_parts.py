"""From CelebAMask-HQ parsing labels to the paper's 10-class face mask and the photo-loss weight map.

DF-MVR section III-B keeps ten parts of the face parser's output (background, face skin, left/right brow,
left/right eye, nose, mouth, upper lip, lower lip: :class:`~dfmvr_core.morphable.parts.FacePart`) and drops the
rest (hair, neck, ...) to background. Section IV-A (eq. 2, Fig. 4) turns the mask into a three-level weight map.

CelebAMask-HQ class order (face-parsing.PyTorch, :class:`CelebAClass`): 0 background, 1 skin, 2 l_brow, 3 r_brow,
4 l_eye, 5 r_eye, 6 eye_g (glasses), 7 l_ear, 8 r_ear, 9 ear_r (earring), 10 nose, 11 mouth, 12 u_lip,
13 l_lip, 14 neck, 15 neck_l (necklace), 16 cloth, 17 hair, 18 hat.

Left/right assumption: we take CelebAMask-HQ's ``l_``/``r_`` prefixes to denote the *person's own* left/right,
the same convention as :class:`FacePart` (so ``l_eye`` → ``LEFT_EYE``, which on a frontal face appears on the
image's right side). We have not verified this against the dataset's annotation guide. If a checkpoint or
dataset turns out to use the viewer's left, pass ``swap_left_right=True``. A quick check: on a frontal image,
pixels labelled ``FacePart.LEFT_EYE`` must lie to the image-right of ``RIGHT_EYE`` pixels.

Glasses (``eye_g``): mapped to ``SKIN`` by default. In CelebAMask-HQ the glasses label overwrites the eyes it
covers, so it marks frame and lenses rather than eyes; making it an eye would need an image-side rule to choose
left/right and would blow the eye region up to the frame's size, while ``SKIN`` keeps the face region closed
(a 3DMM renders no glasses, and the rendered face there is skin or eye). Change with ``glasses_part``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum

import torch
import torch.nn.functional as F
from torch import Tensor

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable.parts import NUM_FACE_PARTS, FacePart
from dfmvr_core.validation import check_shape


class CelebAClass(IntEnum):
    """The 19 CelebAMask-HQ classes in face-parsing.PyTorch order (the BiSeNet checkpoint's logit channels)."""

    BACKGROUND = 0
    SKIN = 1
    L_BROW = 2
    R_BROW = 3
    L_EYE = 4
    R_EYE = 5
    EYE_G = 6  # eyeglasses
    L_EAR = 7
    R_EAR = 8
    EAR_R = 9  # earring
    NOSE = 10
    MOUTH = 11  # mouth interior
    U_LIP = 12
    L_LIP = 13
    NECK = 14
    NECK_L = 15  # necklace
    CLOTH = 16
    HAIR = 17
    HAT = 18


NUM_CELEBA_CLASSES = len(CelebAClass)

# Facial features of the weight map (paper IV-A: "facial features are marked as 254"; I: eye, brow, nose, mouth).
FEATURE_PARTS: tuple[FacePart, ...] = (
    FacePart.LEFT_BROW,
    FacePart.RIGHT_BROW,
    FacePart.LEFT_EYE,
    FacePart.RIGHT_EYE,
    FacePart.NOSE,
    FacePart.MOUTH,
    FacePart.UPPER_LIP,
    FacePart.LOWER_LIP,
)

_BASE_MAPPING: dict[CelebAClass, FacePart] = {
    CelebAClass.SKIN: FacePart.SKIN,
    CelebAClass.L_BROW: FacePart.LEFT_BROW,
    CelebAClass.R_BROW: FacePart.RIGHT_BROW,
    CelebAClass.L_EYE: FacePart.LEFT_EYE,
    CelebAClass.R_EYE: FacePart.RIGHT_EYE,
    CelebAClass.NOSE: FacePart.NOSE,
    CelebAClass.MOUTH: FacePart.MOUTH,
    CelebAClass.U_LIP: FacePart.UPPER_LIP,
    CelebAClass.L_LIP: FacePart.LOWER_LIP,
}  # every other class (ears, earring, neck, necklace, cloth, hair, hat) → OTHER (background)

_SWAP = {
    FacePart.LEFT_BROW: FacePart.RIGHT_BROW,
    FacePart.RIGHT_BROW: FacePart.LEFT_BROW,
    FacePart.LEFT_EYE: FacePart.RIGHT_EYE,
    FacePart.RIGHT_EYE: FacePart.LEFT_EYE,
}


def celeba_to_face_parts_table(*, swap_left_right: bool = False, glasses_part: FacePart = FacePart.SKIN) -> Tensor:
    """Look-up table: (19,) int64, entry ``c`` is the :class:`FacePart` of CelebAMask-HQ class ``c``.

    Args:
        swap_left_right: exchange left and right brows/eyes (use if ``l_``/``r_`` mean the viewer's left).
        glasses_part: :class:`FacePart` given to ``eye_g`` pixels (default ``SKIN``, see the module docstring).
    """
    glasses_part = FacePart(glasses_part)
    table = torch.full((NUM_CELEBA_CLASSES,), int(FacePart.OTHER), dtype=torch.int64)
    for celeba, part in _BASE_MAPPING.items():
        table[celeba] = _SWAP.get(part, part) if swap_left_right else part
    table[CelebAClass.EYE_G] = glasses_part
    return table


def _check_labels(name: str, labels: Tensor, num_classes: int) -> None:
    check_shape(name, labels, (None, None, None))
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ShapeError(f"{name}: expected an integer label tensor, got dtype {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ShapeError(
            f"{name}: labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )


def celeba_to_face_parts(
    labels: Tensor, *, swap_left_right: bool = False, glasses_part: FacePart = FacePart.SKIN
) -> Tensor:
    """Map CelebAMask-HQ parsing labels to the paper's face-mask classes (III-B: hair, neck, ... removed).

    Args:
        labels: (B, H, W) integer CelebAMask-HQ classes in [0, 19), e.g. ``BiSeNet.parse_labels`` output.
        swap_left_right, glasses_part: see :func:`celeba_to_face_parts_table`.

    Returns:
        (B, H, W) int64 :class:`FacePart` values in [0, 10), on the device of ``labels``.
    """
    _check_labels("labels", labels, NUM_CELEBA_CLASSES)
    table = celeba_to_face_parts_table(swap_left_right=swap_left_right, glasses_part=glasses_part)
    return table.to(labels.device)[labels.long()]


def face_parts_one_hot(parts: Tensor, num_classes: int = NUM_FACE_PARTS) -> Tensor:
    """One-hot encoding of a face mask (III-B, Fig. 2).

    Args:
        parts: (B, H, W) integer :class:`FacePart` labels in [0, num_classes).

    Returns:
        (B, num_classes, H, W) float32, 1 at the label's channel, 0 elsewhere.
    """
    _check_labels("parts", parts, num_classes)
    return F.one_hot(parts.long(), num_classes).permute(0, 3, 1, 2).to(torch.float32)


def face_mask_channel(parts: Tensor) -> Tensor:
    """The single-channel face mask the paper concatenates with the image (III-B: "only one layer of channel").

    Args:
        parts: (B, H, W) integer :class:`FacePart` labels in [0, 10).

    Returns:
        (B, 1, H, W) float32 ``label / 9`` in [0, 1] (background 0, lower lip 1).
    """
    _check_labels("parts", parts, NUM_FACE_PARTS)
    return parts.unsqueeze(1).to(torch.float32) / float(NUM_FACE_PARTS - 1)


@dataclass(frozen=True)
class WeightMapConfig:
    """Photo-loss weight map of DF-MVR IV-A (eq. 2, Fig. 4).

    Attributes:
        dilation_px: pixels by which the face mask is dilated (paper: 20 px at 224×224). Square (Chebyshev)
            structuring element: max pooling with a (2·d+1)² window.
        feature_weight: weight of facial features (brows, eyes, nose, mouth, lips); paper: 254.
        face_weight: weight of the rest of the dilated face; paper: 128.
        background_weight: weight of everything else; paper: 32.
        dilate_features: dilate the feature regions too (default). The paper dilates the face mask M itself
            (a label image) into M_d and then splits M_d into three levels; dilating a label image grows every
            labelled region, features included, so features reach ``dilation_px`` into the surrounding skin.
            ``False`` keeps features at their parsed extent and dilates only the face outline.
        normalize: divide by the largest of the three weights, so the map lies in (0, 1]. Eq. 2 divides by the
            sum of the weights, so this only rescales; it keeps loss magnitudes independent of the 254/128/32
            scale.
    """

    dilation_px: int = 20
    feature_weight: float = 254.0
    face_weight: float = 128.0
    background_weight: float = 32.0
    dilate_features: bool = True
    normalize: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.dilation_px, bool) or not isinstance(self.dilation_px, int) or self.dilation_px < 0:
            raise ConfigError(
                f"dilation_px: expected a non-negative integer number of pixels, got {self.dilation_px!r}"
            )
        for name in ("feature_weight", "face_weight", "background_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ConfigError(f"{name}: expected a finite weight >= 0, got {value!r}")
        if max(self.feature_weight, self.face_weight, self.background_weight) <= 0:
            raise ConfigError("feature_weight: at least one weight must be > 0, all are 0")
        for name in ("dilate_features", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")

    def weight_map(self, parts: Tensor) -> Tensor:
        """:func:`photo_weight_map` with this configuration."""
        return photo_weight_map(parts, **asdict(self))


def dilate_mask(mask: Tensor, radius_px: int) -> Tensor:
    """Binary dilation by ``radius_px`` with a square window, as two separable max-pools (runs on any device).

    Args:
        mask: (B, H, W) bool.

    Returns:
        (B, H, W) bool, True within Chebyshev distance ``radius_px`` of a True pixel.
    """
    if radius_px == 0:
        return mask.clone()
    x = mask.unsqueeze(1).to(torch.float32)
    k = 2 * radius_px + 1
    # Pools larger than the image are fine: max_pool2d pads with -inf, and padding <= kernel // 2 holds.
    x = F.max_pool2d(x, kernel_size=(1, k), stride=1, padding=(0, radius_px))
    x = F.max_pool2d(x, kernel_size=(k, 1), stride=1, padding=(radius_px, 0))
    return x.squeeze(1) > 0.5


def photo_weight_map(
    parts: Tensor,
    dilation_px: int = 20,
    feature_weight: float = 254.0,
    face_weight: float = 128.0,
    background_weight: float = 32.0,
    normalize: bool = True,
    *,
    dilate_features: bool = True,
) -> Tensor:
    """Three-level weight map M_d of the multi-view photo loss (paper IV-A, eq. 2, Fig. 4).

    The face mask is dilated by ``dilation_px`` (paper: 20 px); pixels of the dilated features get
    ``feature_weight`` (254), the rest of the dilated face ``face_weight`` (128), all else ``background_weight``
    (32). See :class:`WeightMapConfig` for each parameter (values are validated there).

    Args:
        parts: (B, H, W) integer :class:`FacePart` labels in [0, 10).

    Returns:
        (B, H, W) float32 on the device of ``parts``; divided by the largest weight when ``normalize``.

    Raises:
        ShapeError: ``parts`` has the wrong shape, dtype or out-of-range labels.
        ConfigError: a parameter is invalid (named).
    """
    config = WeightMapConfig(
        dilation_px=dilation_px,
        feature_weight=feature_weight,
        face_weight=face_weight,
        background_weight=background_weight,
        dilate_features=dilate_features,
        normalize=normalize,
    )
    _check_labels("parts", parts, NUM_FACE_PARTS)
    face = parts != FacePart.OTHER
    features = torch.zeros_like(face)
    for part in FEATURE_PARTS:
        features |= parts == part
    face_d = dilate_mask(face, config.dilation_px)
    features_d = dilate_mask(features, config.dilation_px) if config.dilate_features else features
    weights = torch.full(parts.shape, float(config.background_weight), dtype=torch.float32, device=parts.device)
    weights = torch.where(face_d, float(config.face_weight), weights)
    weights = torch.where(features_d, float(config.feature_weight), weights)
    if config.normalize:
        weights = weights / max(config.feature_weight, config.face_weight, config.background_weight)
    return weights
