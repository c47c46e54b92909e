"""Training-side data plumbing: the network's mask input per sample, and a resumable distributed sampler.

The datasets themselves are :class:`~dfmvr_training.data.SyntheticMultiViewDataset` (``training/data/``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, Dataset, DistributedSampler

from dfmvr_core.errors import ConfigError, DfmvrError
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.morphable import CoefficientSizes
from dfmvr_training.data import SyntheticMultiViewDataset

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
    parts: list[Dataset] = []
    crop: CropCamera | None = None
    real_roots = [Path(root) for root in roots if is_triplet_folder(Path(root))]
    for i, root in enumerate(roots):
        name = f"{what}[{i}]" if len(roots) > 1 else what
        if Path(root) in real_roots:
            continue
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
    if real_roots:
        from dfmvr_training.data.triplets import FolderTripletDataset

        crop = crop or CropCamera()
        full = None
        if parts:  # synthetic sets carry ground-truth shapes (the vertex loss); real triplets get zeros, has_3d False
            model_sizes = parts[0].manifest["model"]["coefficient_sizes"]
            full = (int(model_sizes["identity"]), int(model_sizes["expression"]))
        parts = [CommonKeys(ds, full) for ds in parts]
        parts += [CommonKeys(FolderTripletDataset(root, crop=crop), full) for root in real_roots]
    assert crop is not None
    return (parts[0] if len(parts) == 1 else ConcatDataset(parts)), crop


COMMON_KEYS = ("images", "parts", "landmarks", "visibility", "K_crop", "K", "A", "valid")
"""The input and weak-label keys every dataset provides (synthetic shards and folders of real triplets)."""


def is_triplet_folder(root: Path) -> bool:
    """A folder of real camera triplets (``left/``, ``front/``, ``right/``; no synthetic ``manifest.json``)."""
    return not (root / "manifest.json").is_file() and all((root / c).is_dir() for c in ("left", "front", "right"))


class CommonKeys(Dataset):
    """Items reduced to :data:`COMMON_KEYS` plus ``landmarks_3d`` (68, 3) and ``has_3d``, so that synthetic samples
    (3D ground truth) and real triplets (none: zeros, ``has_3d`` False, no 3D landmark loss) share one batch.

    With ``full_sizes = (K_id, K_exp)`` (the morphable model's sizes) items also carry ``gt_identity_full`` and
    ``gt_expression_full`` (zeros without ground truth) for the dense vertex loss.
    """

    def __init__(self, base: Dataset, full_sizes: tuple[int, int] | None = None) -> None:
        self.base = base
        self.full_sizes = full_sizes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.base[index]
        out = {key: sample[key] for key in COMMON_KEYS}
        has_3d = "landmarks_3d" in sample
        out["landmarks_3d"] = sample["landmarks_3d"] if has_3d else torch.zeros(68, 3)
        out["has_3d"] = torch.tensor(has_3d)
        if self.full_sizes is not None:
            for key, size in zip(("gt_identity_full", "gt_expression_full"), self.full_sizes, strict=True):
                out[key] = sample[key] if has_3d else torch.zeros(size)
        return out


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
