"""Training-side data plumbing: the network's mask input per sample, and a resumable distributed sampler.

The datasets themselves are :class:`~dfmvr_training.data.SyntheticMultiViewDataset` (``training/data/``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from dfmvr_training.data import SyntheticMultiViewDataset
from torch.utils.data import ConcatDataset, Dataset, DistributedSampler

from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.morphable import CoefficientSizes

__all__ = ["MaskedViews", "ResumableSampler", "landmark_parts_available", "open_datasets"]


def landmark_parts_available() -> bool:
    """Whether :func:`dfmvr_core.preprocess.parts_from_landmarks_batch` can be imported."""
    try:
        from dfmvr_core.preprocess import parts_from_landmarks_batch  # noqa: F401
    except ImportError:
        return False
    return True


class MaskedViews(Dataset):
    """Adds ``input_parts`` (V, S, S) int64 to each sample of a dataset: the face mask the network gets and the
    photo/mask losses use as the input's mask M.

    Args:
        base: a dataset of :class:`SyntheticMultiViewDataset` items.
        source: ``rendered`` (the sample's ground-truth ``parts``, i.e. a perfect parser) or ``landmarks``
            (polygons of the 68 ``landmarks``, :func:`dfmvr_core.preprocess.parts_from_landmarks_batch`).
        size: crop side S.

    Raises:
        DfmvrError: ``landmarks`` asked for but ``dfmvr_core.preprocess`` lacks ``parts_from_landmarks_batch``.
    """

    def __init__(self, base: Dataset, source: str, size: int) -> None:
        if source not in ("rendered", "landmarks"):
            raise ConfigError(f"mask_input_source: expected 'rendered' or 'landmarks', got {source!r}")
        if source == "landmarks" and not landmark_parts_available():
            raise DfmvrError(
                "mask_input_source 'landmarks' needs dfmvr_core.preprocess.parts_from_landmarks_batch, which this "
                "build lacks; use mask_input_source: rendered"
            )
        self.base = base
        self.source = source
        self.size = size

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.base[index]
        if self.source == "rendered":
            sample["input_parts"] = sample["parts"]
        else:
            from dfmvr_core.preprocess import parts_from_landmarks_batch

            sample["input_parts"] = torch.from_numpy(parts_from_landmarks_batch(sample["landmarks"].numpy(), self.size))
        return sample


def open_datasets(
    roots: Sequence[Path], sizes: CoefficientSizes, fingerprint: str, what: str = "data"
) -> tuple[Dataset, CropCamera]:
    """Open and concatenate dataset folders, checking they share the model and the crop camera.

    Args:
        roots: dataset folders.
        sizes: the network's coefficient sizes (ground truth fitted to them).
        fingerprint: the morphable model's fingerprint; every dataset must have been rendered with it.
        what: config field name for error messages.

    Returns:
        ``(dataset, crop camera)``.

    Raises:
        ModelFileError: unreadable dataset; ConfigError: another model or crop camera.
    """
    parts = []
    crop: CropCamera | None = None
    for i, root in enumerate(roots):
        name = f"{what}[{i}]" if len(roots) > 1 else what
        ds = SyntheticMultiViewDataset(root, coefficient_sizes=sizes)
        if ds.model_fingerprint != fingerprint:
            raise ConfigError(
                f"{name}: {root} was rendered with morphable model fingerprint {ds.model_fingerprint}, but "
                f"morphable_model has {fingerprint}; use the model the dataset was made with"
            )
        if crop is not None and ds.crop_camera != crop:
            raise ConfigError(f"{name}: {root} uses crop camera {ds.crop_camera}, the first dataset {crop}")
        crop = ds.crop_camera
        parts.append(ds)
    assert crop is not None
    return (parts[0] if len(parts) == 1 else ConcatDataset(parts)), crop


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` (shuffled by ``seed`` + epoch, this rank's share) that can start mid-epoch.

    :meth:`set_position` picks the epoch and how many of this rank's samples were already consumed, so that a
    resumed run sees exactly the batches an uninterrupted one would. Works without a process group (pass
    ``num_replicas`` and ``rank``).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        """Iterate epoch ``epoch`` from this rank's ``start``-th sample on."""
        self.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
