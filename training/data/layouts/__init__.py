"""Adapters for public face datasets, in their published folder layouts.

* :mod:`.pixel_face` — Pixel-Face (Lyu et al. 2020): three views per subject and expression plus the 3D scan; the
  paper's training and test data (DF-MVR section V-A).
* :mod:`.multipie` — CMU Multi-PIE: 13 cameras on a ring, 20 flash illuminations; triplets of chosen cameras.
* :mod:`.celebamask_hq` — CelebAMask-HQ: face-parser pre-training (images + per-part masks).

The multi-view adapters build :class:`~dfmvr_training.data.triplets.TripletRecord` lists and return items in the
format of :class:`~dfmvr_training.data.triplets.FolderTripletDataset` (same machinery: detected landmarks, a
landmark cache, crops, weak face masks).
"""

from dfmvr_training.data.layouts.celebamask_hq import CELEBA_MASK_PARTS, CelebAMaskHQDataset, celeba_label_map
from dfmvr_training.data.layouts.multipie import (
    MULTIPIE_RING,
    MULTIPIE_YAW_DEG,
    MultiPIEDataset,
    multipie_records,
)
from dfmvr_training.data.layouts.pixel_face import PIXEL_FACE_VIEWS, PixelFaceDataset, pixel_face_records

__all__ = [
    "CELEBA_MASK_PARTS",
    "MULTIPIE_RING",
    "MULTIPIE_YAW_DEG",
    "PIXEL_FACE_VIEWS",
    "CelebAMaskHQDataset",
    "MultiPIEDataset",
    "PixelFaceDataset",
    "celeba_label_map",
    "multipie_records",
    "pixel_face_records",
]
