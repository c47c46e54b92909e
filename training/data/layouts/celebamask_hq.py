"""CelebAMask-HQ (Lee et al., CVPR 2020): face-parser pre-training data (DF-MVR section V-A, following BiSeNet).

30,000 face images with hand-drawn masks of 18 parts. Obtain it from https://github.com/switchablenorms/CelebAMask-HQ
(non-commercial research licence). Release layout::

    <root>/CelebA-HQ-img/<i>.jpg                                  i = 0 … 29999, 1024×1024 RGB
    <root>/CelebAMask-HQ-mask-anno/<k>/<i:05d>_<part>.png         k = i // 2000 (folders 0 … 14), 512×512,
                                                                  white (255) on black; a part absent from the
                                                                  image has no file

:func:`celeba_label_map` paints the parts in the order of :class:`~dfmvr_core.networks.face_parts.CelebAClass`
(skin, brows, eyes, glasses, ears, earring, nose, mouth, lips, neck, necklace, cloth, hair, hat: later parts
overwrite earlier ones), which is exactly how face-parsing.PyTorch builds its 19-class training labels, so a BiSeNet
trained on them matches ``79999_iter.pth``'s logit order. The paper's 10 face parts come from
:func:`~dfmvr_core.networks.face_parts.celeba_to_face_parts` (hair, neck, ears, … → background).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError, ShapeError
from dfmvr_core.morphable.parts import FacePart
from dfmvr_core.networks.face_parts import CelebAClass, celeba_to_face_parts
from dfmvr_core.preprocess import load_image
from dfmvr_training.data.triplets import natural_key

__all__ = ["CELEBA_IMAGE_DIR", "CELEBA_MASK_DIR", "CELEBA_MASK_PARTS", "CelebAMaskHQDataset", "celeba_label_map"]

CELEBA_IMAGE_DIR = "CelebA-HQ-img"
CELEBA_MASK_DIR = "CelebAMask-HQ-mask-anno"
IMAGES_PER_MASK_FOLDER = 2000
CELEBA_MASK_PARTS: tuple[str, ...] = tuple(c.name.lower() for c in CelebAClass if c != CelebAClass.BACKGROUND)
"""The mask file suffixes in :class:`CelebAClass` order (``skin`` = 1 … ``hat`` = 18)."""


def _read_mask(path: Path) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if mask is None:
        raise DfmvrError(f"{path}: not a readable mask image")
    return mask


def celeba_label_map(mask_dir: str | Path, index: int) -> np.ndarray:
    """The 19-class label map of image ``index`` from its per-part masks.

    Args:
        mask_dir: ``<root>/CelebAMask-HQ-mask-anno``.
        index: image number i (masks in ``<mask_dir>/<i // 2000>/<i:05d>_<part>.png``).

    Returns:
        ``(H, W)`` int64 :class:`CelebAClass` labels (0 background where no mask covers; 512×512 in the release).

    Raises:
        ModelFileError: the mask folder of ``index`` is missing.
        ShapeError: masks of different sizes (names the file).
        DfmvrError: an unreadable mask (names the file).
    """
    folder = Path(mask_dir) / str(index // IMAGES_PER_MASK_FOLDER)
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: CelebAMask-HQ mask folder of image {index} not found")
    labels: np.ndarray | None = None
    size: tuple[int, int] | None = None
    first: Path | None = None
    for value, part in enumerate(CELEBA_MASK_PARTS, start=1):
        path = folder / f"{index:05d}_{part}.png"
        if not path.is_file():
            continue
        mask = _read_mask(path)
        if labels is None:
            labels, size, first = np.zeros(mask.shape, np.int64), mask.shape, path
        elif mask.shape != size:
            raise ShapeError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, {first} is {size[1]}x{size[0]}")
        labels[mask > 127] = value
    return np.zeros((512, 512), np.int64) if labels is None else labels


class CelebAMaskHQDataset(Dataset):
    """CelebAMask-HQ for face-parser training (torch ``Dataset``).

    Items are shaped like the multi-view datasets with one view (``V = 1``), so the parser trainer consumes them
    directly (``S`` = ``size``):

    * ``images`` (1, 3, S, S) float32 RGB in [0, 1] (the 1024² image resized with ``INTER_AREA``);
    * ``labels`` (1, S, S) int64: the 19 :class:`CelebAClass` labels (nearest-neighbour resized);
    * ``parts`` (1, S, S) int64: the paper's 10 :class:`FacePart` classes (:func:`celeba_to_face_parts`);
    * ``valid`` (1,) bool (True); ``sample_index`` () int64 (the CelebA-HQ image number).

    Args:
        root: the CelebAMask-HQ folder (holding ``CelebA-HQ-img`` and ``CelebAMask-HQ-mask-anno``).
        size: output side in pixels, 16..2048 (224: the network's crops; 512: face-parsing.PyTorch's).
        indices: image numbers to use (default: every ``<i>.jpg`` found, in numeric order).
        swap_left_right, glasses_part: passed to :func:`celeba_to_face_parts`.

    Raises:
        ConfigError: missing folders, a bad size, or no images.
        ModelFileError: an index without image (named) or a mask folder missing.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        size: int = 224,
        indices: Sequence[int] | None = None,
        swap_left_right: bool = False,
        glasses_part: FacePart = FacePart.SKIN,
    ) -> None:
        self.root = Path(root)
        self.image_dir = self.root / CELEBA_IMAGE_DIR
        self.mask_dir = self.root / CELEBA_MASK_DIR
        for folder in (self.image_dir, self.mask_dir):
            if not folder.is_dir():
                raise ConfigError(
                    f"{folder}: not found; expected the CelebAMask-HQ release layout ({CELEBA_IMAGE_DIR}/<i>.jpg and "
                    f"{CELEBA_MASK_DIR}/<i // 2000>/<i:05d>_<part>.png)"
                )
        if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 2048:
            raise ConfigError(f"size: expected an integer side in [16, 2048] pixels, got {size!r}")
        self.size = size
        if indices is None:
            found = [p.stem for p in self.image_dir.iterdir() if p.suffix.lower() == ".jpg" and p.stem.isdigit()]
            self.indices = tuple(int(s) for s in sorted(found, key=natural_key))
        else:
            self.indices = tuple(int(i) for i in indices)
            missing = [i for i in self.indices if not (self.image_dir / f"{i}.jpg").is_file()]
            if missing:
                raise ModelFileError(f"{self.image_dir}: no image for indices {missing[:10]}")
        if not self.indices:
            raise ConfigError(f"{self.image_dir}: no <i>.jpg images found")
        folders = sorted({i // IMAGES_PER_MASK_FOLDER for i in self.indices})
        absent = [k for k in folders if not (self.mask_dir / str(k)).is_dir()]
        if absent:
            raise ModelFileError(f"{self.mask_dir}: mask folders {absent} missing (folder k holds images 2000k …)")
        self.swap_left_right = bool(swap_left_right)
        self.glasses_part = FacePart(glasses_part)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if isinstance(position, (torch.Tensor, np.integer)):
            position = int(position)
        if not isinstance(position, int) or not -n <= position < n:
            raise IndexError(f"index {position!r} out of range for a dataset of {n} samples")
        index = self.indices[position % n]
        path = self.image_dir / f"{index}.jpg"
        image = load_image(path)
        labels = celeba_label_map(self.mask_dir, index)
        if image.shape[0] != image.shape[1]:
            raise ShapeError(f"{path}: image is {image.shape[1]}x{image.shape[0]}; expected a square CelebA-HQ image")
        s = self.size
        interp = cv2.INTER_AREA if image.shape[0] > s else cv2.INTER_LINEAR
        image = cv2.resize(image, (s, s), interpolation=interp)
        labels = cv2.resize(labels.astype(np.uint8), (s, s), interpolation=cv2.INTER_NEAREST).astype(np.int64)
        labels_t = torch.from_numpy(labels)[None]
        parts = celeba_to_face_parts(labels_t, swap_left_right=self.swap_left_right, glasses_part=self.glasses_part)
        return {
            "images": torch.from_numpy(image).permute(2, 0, 1)[None].float().div_(255.0),
            "labels": labels_t,
            "parts": parts,
            "valid": torch.ones(1, dtype=torch.bool),
            "sample_index": torch.tensor(index, dtype=torch.int64),
        }
