"""Pixel-Face (Lyu et al. 2020, arXiv:2008.12444): the multi-view training and test data of DF-MVR (section V-A).

855 subjects, 7 or 23 expressions each; per expression three photos from fixed cameras (left, front, right) and
the 3D scan. Pixel-Face is distributed on request by its authors (see the paper); it has no published layout
specification. **The layout below is an assumption** taken from the DF-MVR authors' loader
(``weiguangzhao/DF_MVR``, ``dataset/pixel_face/dataset_preprocess.py``) and other public Pixel-Face loaders, which
agree on it::

    <root>/                              a split folder (e.g. pixel_face/train) holding the subjects
      <subject>/
        <expression>/
          Images/
            0/t.jpg                      one camera per numbered folder (see PIXEL_FACE_VIEWS)
            1/t.jpg                      1 = the front camera
            2/t.jpg
            fusion/nicp_106_pts.txt      106 3D landmarks of the scan, one "x y z" line each (file units)
            fusion/*.obj                 the 3D scan mesh (ASSUMED location and format; ``scan_pattern``)

**Orientation and view table (assumptions, configurable).** The photos are stored sideways: DF-MVR's loader turns
them 90° clockwise and then mirrors them (net: a transpose) and calls folder 0 the left view; a loader that only
rotates calls folder 0 the right view. Both agree with the default here: rotate 90° clockwise (no mirror, so the
images stay true camera images) and take ``{"left": "2", "front": "1", "right": "0"}``. Pixel-Face publishes no
intrinsics: :class:`~dfmvr_training.data.triplets.ApproximateIntrinsics` is used unless given. When the faces of the
side views turn the wrong way, :meth:`~dfmvr_training.data.triplets.ImageTripletDataset.prepare` warns (swap
``views``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import cv2
import numpy as np

from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.preprocess import LandmarkDetector, load_image
from dfmvr_training.data.triplets import (
    DEFAULT_CAMERAS,
    IMAGE_SUFFIXES,
    ApproximateIntrinsics,
    ImageTripletDataset,
    IntrinsicsSource,
    TripletRecord,
    natural_key,
)

__all__ = ["PIXEL_FACE_VIEWS", "PixelFaceDataset", "pixel_face_records", "read_pixel_face_landmarks"]

PIXEL_FACE_VIEWS: Mapping[str, str] = {"left": "2", "front": "1", "right": "0"}
"""Default view → camera folder under ``Images/`` (see the module docstring: an assumption)."""

_ROTATIONS = {0: None, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


class RotatedImageLoader:
    """Reads an image (:func:`load_image`) and rotates it clockwise by ``degrees`` (0, 90, 180, 270); a class, not a
    closure, so the dataset pickles into DataLoader workers."""

    def __init__(self, degrees: int) -> None:
        if degrees not in _ROTATIONS:
            raise ConfigError(f"rotate_cw: expected 0, 90, 180 or 270 degrees, got {degrees!r}")
        self.degrees = degrees

    def __call__(self, path: Path) -> np.ndarray:
        image = load_image(path)
        rotation = _ROTATIONS[self.degrees]
        return image if rotation is None else np.ascontiguousarray(cv2.rotate(image, rotation))


def _subdirs(folder: Path) -> list[Path]:
    found = (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(found, key=lambda p: natural_key(p.name))


def _view_image(folder: Path, image_name: str) -> Path | None:
    """``folder/image_name``, else the folder's only image, else None."""
    path = folder / image_name
    if path.is_file():
        return path
    if not folder.is_dir():
        return None
    images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return images[0] if len(images) == 1 else None


def pixel_face_records(
    root: str | Path,
    *,
    views: Mapping[str, str] = PIXEL_FACE_VIEWS,
    image_name: str = "t.jpg",
    scan_pattern: str = "fusion/*.obj",
    landmarks_name: str = "fusion/nicp_106_pts.txt",
    subjects: Collection[str] | None = None,
) -> list[TripletRecord]:
    """One :class:`TripletRecord` per ``<subject>/<expression>`` with at least one view image.

    Args:
        root: the split folder holding the subject folders.
        views: ``{"left": folder, "front": folder, "right": folder}`` under ``Images/``.
        image_name: the image file in each view folder (else the folder's only image is taken).
        scan_pattern: glob under ``Images/`` for the scan mesh (the first match in sorted order).
        landmarks_name: the scan's 3D landmark file under ``Images/``.
        subjects: keep only these subject folder names (None: all).

    Returns:
        Records keyed ``subject/expression`` with ``extras`` ``subject``, ``expression``, ``scan`` (Path or None)
        and ``landmarks_3d`` (Path or None).

    Raises:
        ConfigError: ``root`` missing, ``views`` without left/front/right, or no sample found.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: Pixel-Face folder not found (expected <root>/<subject>/<expression>/Images/...)")
    if sorted(views) != sorted(DEFAULT_CAMERAS):
        raise ConfigError(f"views: expected folders for {list(DEFAULT_CAMERAS)}, got {dict(views)}")
    wanted = None if subjects is None else {str(s) for s in subjects}
    records = []
    for subject in _subdirs(root):
        if wanted is not None and subject.name not in wanted:
            continue
        for expression in _subdirs(subject):
            images_dir = expression / "Images"
            if not images_dir.is_dir():
                continue
            paths = tuple(_view_image(images_dir / views[c], image_name) for c in DEFAULT_CAMERAS)
            if all(p is None for p in paths):
                continue
            scans = sorted(images_dir.glob(scan_pattern))
            landmarks = images_dir / landmarks_name
            records.append(
                TripletRecord(
                    f"{subject.name}/{expression.name}",
                    paths,
                    {
                        "subject": subject.name,
                        "expression": expression.name,
                        "scan": scans[0] if scans else None,
                        "landmarks_3d": landmarks if landmarks.is_file() else None,
                    },
                )
            )
    if not records:
        raise ConfigError(
            f"{root}: no Pixel-Face samples found (expected <subject>/<expression>/Images/<{'|'.join(views.values())}>"
            f"/{image_name})"
        )
    return records


def read_pixel_face_landmarks(path: str | Path) -> np.ndarray:
    """The scan's 3D landmarks (``nicp_106_pts.txt``: one ``x y z`` line per point) as ``(N, 3)`` float64, in the
    file's own units (not converted: Pixel-Face's scan units are not documented).

    Raises:
        ModelFileError: missing file, a malformed line or non-finite values.
    """
    path = Path(path)
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: 3D landmark file not found") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a text file of 'x y z' lines ({exc})") from None
    if values.ndim != 2 or values.shape[1] != 3 or values.shape[0] == 0 or not np.isfinite(values).all():
        raise ModelFileError(f"{path}: expected N lines of 3 finite numbers, got an array of shape {values.shape}")
    return values


class PixelFaceDataset(ImageTripletDataset):
    """Pixel-Face as training triplets (items as :class:`~dfmvr_training.data.triplets.FolderTripletDataset`).

    Args:
        root: the split folder holding the subject folders (see the module docstring).
        views, image_name, scan_pattern, landmarks_name, subjects: see :func:`pixel_face_records`.
        rotate_cw: clockwise rotation applied to every photo on load, degrees (0, 90, 180 or 270; default 90).
        intrinsics: ``{"left"|"front"|"right": PinholeIntrinsics}`` or a callable (default
            :class:`ApproximateIntrinsics`); for the rotated images.
        detector, cache, cache_dir, crop, mask_source, min_face_px, prepare, progress: see
            :class:`~dfmvr_training.data.triplets.ImageTripletDataset` (the cache defaults to
            ``<root>/.dfmvr_cache``; pass ``cache_dir`` when the dataset folder is read-only).

    Use :meth:`scan_path` / :meth:`landmarks_3d` for evaluation against the scans (``has_3d`` stays False in the
    items: the scans are not registered to the morphable model).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        views: Mapping[str, str] = PIXEL_FACE_VIEWS,
        image_name: str = "t.jpg",
        scan_pattern: str = "fusion/*.obj",
        landmarks_name: str = "fusion/nicp_106_pts.txt",
        subjects: Collection[str] | None = None,
        rotate_cw: int = 90,
        intrinsics: IntrinsicsSource | Mapping[str, PinholeIntrinsics] | None = None,
        detector: str | LandmarkDetector = "mediapipe",
        cache: bool = True,
        cache_dir: str | Path | None = None,
        crop: CropCamera | None = None,
        mask_source: str = "landmarks",
        min_face_px: float = 24.0,
        prepare: bool = True,
        progress: bool = True,
    ) -> None:
        if rotate_cw not in _ROTATIONS:
            raise ConfigError(f"rotate_cw: expected 0, 90, 180 or 270 degrees, got {rotate_cw!r}")
        records = pixel_face_records(
            root,
            views=views,
            image_name=image_name,
            scan_pattern=scan_pattern,
            landmarks_name=landmarks_name,
            subjects=subjects,
        )
        super().__init__(
            records,
            root=root,
            cameras=DEFAULT_CAMERAS,
            intrinsics=ApproximateIntrinsics() if intrinsics is None else intrinsics,
            detector=detector,
            cache=cache,
            cache_dir=cache_dir,
            crop=crop,
            mask_source=mask_source,
            loader=RotatedImageLoader(rotate_cw),
            variant=f"rot{rotate_cw}" if rotate_cw else "",
            min_face_px=min_face_px,
            prepare=prepare,
            progress=progress,
        )

    def scan_path(self, index: int) -> Path | None:
        """The 3D scan mesh of sample ``index`` (None when not found)."""
        return self.records[index].extras["scan"]

    def landmarks_3d(self, index: int) -> np.ndarray | None:
        """The scan's 3D landmarks of sample ``index`` (``(N, 3)`` float64, file units), None when absent."""
        path = self.records[index].extras["landmarks_3d"]
        return None if path is None else read_pixel_face_landmarks(path)
