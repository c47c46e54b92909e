"""Real multi-view training data: image triplets on disk → the per-sample dict the trainer consumes.

:class:`ImageTripletDataset` is the machinery: a list of :class:`TripletRecord` (one image path per view, ``None`` for
a missing view), the cameras' intrinsics, a landmark detector and a landmark cache. :class:`FolderTripletDataset`
reads the layout a robot team has (``dfmvr extract-triplets`` writes it from a rosbag)::

    root/
      left/   000123.png  000124.png ...      one folder per camera; the same file stem = the same instant
      front/  000123.png  000124.png ...
      right/  000123.png             ...      (a stem missing in one camera: that view is invalid)
      camera_info/left.yaml ...               intrinsics, ROS camera_calibration YAML (or pass ``rig=``)
      .dfmvr_cache/landmarks.json             written by the dataset: the detected landmarks

The dataset adapters of :mod:`dfmvr_training.data.layouts` (Pixel-Face, Multi-PIE) build records from their own
layouts and reuse the same machinery.

**Weak labels.** Real data has no 3D ground truth: per view the 68 iBUG landmarks are detected once (MediaPipe
FaceMesh by default, :func:`dfmvr_core.preprocess.build_detector`), the crop is cut around them exactly as at
inference (:func:`dfmvr_core.preprocess.crop_view`, the crop transform ``A`` and ``K_crop = A·K`` kept), and the
10-class face mask is drawn from them (:func:`dfmvr_core.preprocess.parts_from_landmarks`, paper section III-B's
classes). A view whose image is missing, or where no face is found, is invalid (``valid = False``; the network
blacks it out, as the paper's view dropout does, section V-C).

**Landmark cache** (``<root>/.dfmvr_cache/landmarks.json``, written atomically): one entry per image, keyed by the
file's path relative to the root (plus the loader's variant tag, e.g. a rotation), and valid only while the file's
size and modification time (ns) are unchanged, so an edited image is detected again. Entries of another detector
are ignored. :meth:`ImageTripletDataset.prepare` (run by the constructor unless ``prepare=False``) detects every
image not in the cache with a tqdm bar; ``__getitem__`` detects a missing entry on the fly (kept in memory).

Items (``V`` views in ``cameras`` order, crop side ``S`` = ``crop.size``), the input/weak-label keys of
:class:`~dfmvr_training.data.SyntheticMultiViewDataset`:

==================  =====================  ===================================================================
key                 shape, dtype           meaning
==================  =====================  ===================================================================
``images``          (V, 3, S, S) float32   RGB in [0, 1]; zeros for an invalid view
``parts``           (V, S, S) int64        :class:`~dfmvr_core.morphable.FacePart` labels drawn from the
                                           landmarks (``mask_source="landmarks"``), zeros when invalid or
                                           ``mask_source="none"``
``landmarks``       (V, 68, 2) float32     detected landmarks, crop pixels (zeros when invalid)
``visibility``      (V, 68) bool           True for every landmark of a valid view
``K_crop``          (V, 3, 3) float32      ``[A; 0 0 1]·K``: what the losses render with
``K``               (V, 3, 3) float32      the real camera matrix (image pixels)
``A``               (V, 2, 3) float32      image → crop affine
``valid``           (V,) bool              the view exists and a face was found
``has_3d``          () bool                False: no 3D ground truth (the synthetic keys ``gt_*`` are absent)
``sample_index``    () int64               index of the item
==================  =====================  ===================================================================

For an invalid view ``A`` is the whole image letterboxed into the crop (when the image size is known) and ``K_crop``
stays a plausible camera, so rendering it never produces NaN (its losses are masked by ``valid``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset
from tqdm import tqdm

from dfmvr_core.atomic_io import write_json_atomic
from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError, ShapeError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.geometry.crop import crop_transform_from_box, intrinsics_in_crop
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.geometry.rig import CameraRig, RigConfig, load_rig
from dfmvr_core.preprocess import LandmarkDetector, build_detector, crop_view, load_image, parts_from_landmarks

__all__ = [
    "CACHE_DIRNAME",
    "CACHE_NAME",
    "DEFAULT_CAMERAS",
    "IMAGE_SUFFIXES",
    "MASK_SOURCES",
    "ApproximateIntrinsics",
    "FolderTripletDataset",
    "ImageTripletDataset",
    "LandmarkCache",
    "PrepareSummary",
    "TripletRecord",
    "ViewOrderCheck",
    "list_images",
    "natural_key",
    "read_camera_info_yaml",
]

DEFAULT_CAMERAS = ("left", "front", "right")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File suffixes (lower case) read as images."""
CACHE_DIRNAME = ".dfmvr_cache"
CACHE_NAME = "landmarks.json"
CACHE_FORMAT = "dfmvr-landmark-cache"
CACHE_VERSION = 1
MASK_SOURCES = ("landmarks", "none")
_SAVE_EVERY = 500  # detections between intermediate cache writes during prepare()

IntrinsicsSource = Mapping[str, PinholeIntrinsics] | Callable[[str, int, int], PinholeIntrinsics]
ImageLoader = Callable[[Path], np.ndarray]


# --------------------------------------------------------------------------------------------------- small helpers
def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``"2" < "10"``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def list_images(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files (:data:`IMAGE_SUFFIXES`) directly in ``folder``; hidden files (e.g. the
    temporaries of atomic writes) are skipped.

    Raises:
        ConfigError: two images share a stem (e.g. ``0001.png`` and ``0001.jpg``): the instant is ambiguous.
    """
    found: dict[str, Path] = {}
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        path = Path(entry.path)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise ConfigError(
                f"{folder}: two images with the stem {path.stem!r} ({found[path.stem].name}, {path.name}); "
                "expected one image per instant and camera"
            )
        found[path.stem] = path
    return found


def _yaml_matrix(path: Path, data: Mapping[str, Any], key: str, size: int, required: bool) -> np.ndarray | None:
    entry = data.get(key)
    if entry is None:
        if required:
            raise ConfigError(f"{path}: {key}: missing; expected a mapping with 'data' ({size} numbers)")
        return None
    values = entry.get("data") if isinstance(entry, Mapping) else entry
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {key}.data: expected {size} numbers, got {values!r}") from None
    if (size and array.size != size) or not np.isfinite(array).all():
        raise ConfigError(f"{path}: {key}.data: expected {size or 'some'} finite numbers, got {array.tolist()}")
    return array


def read_camera_info_yaml(path: str | Path) -> PinholeIntrinsics:
    """Intrinsics from a ROS ``camera_calibration`` YAML file (what ``cameracalibrator`` and
    ``camera_info_manager`` write, and ``dfmvr extract-triplets`` writes into ``camera_info/``).

    Reads ``image_width``, ``image_height`` and ``camera_matrix.data`` (9 values, row-major K). Images are assumed
    rectified: non-zero ``distortion_coefficients`` give a warning and are ignored.

    Raises:
        ConfigError: missing file, invalid YAML, a missing or malformed field (named), an uncalibrated (all-zero) K.
        ShapeError: a skewed camera matrix.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: camera info file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable camera_calibration YAML file ({exc})") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a camera_calibration YAML mapping (image_width, camera_matrix, ...)")
    size = []
    for key in ("image_width", "image_height"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{path}: {key}: expected a positive integer number of pixels, got {value!r}")
        size.append(value)
    k = _yaml_matrix(path, data, "camera_matrix", 9, required=True)
    assert k is not None
    if not np.any(k):
        raise ConfigError(f"{path}: camera_matrix is all zeros (an uncalibrated camera); calibrate it or pass rig=")
    d = _yaml_matrix(path, data, "distortion_coefficients", 0, required=False)
    if d is not None and np.any(d != 0.0):
        warnings.warn(
            f"{path}: non-zero distortion {d.round(6).tolist()}; dfmvr assumes rectified images and ignores it",
            stacklevel=2,
        )
    try:
        return PinholeIntrinsics.from_ros_camera_info(k, size[0], size[1])
    except ConfigError as exc:
        raise ConfigError(f"{path}: camera_matrix: {exc}") from None


@dataclasses.dataclass(frozen=True)
class ApproximateIntrinsics:
    """Intrinsics for images without calibration (public datasets): ``fx = fy = focal_factor · max(W, H)``, the
    principal point at the image centre. An approximation: the crop camera ``K_crop`` then has the right scale only
    up to the unknown focal length (it mostly changes the perspective strength the losses render with).

    Attributes:
        focal_factor: focal length in units of the image's larger side, in [0.2, 20] (1.0 ≈ 53° field of view).
    """

    focal_factor: float = 1.0

    def __post_init__(self) -> None:
        value = self.focal_factor
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.2 <= float(value) <= 20.0:
            raise ConfigError(f"focal_factor: expected a number in [0.2, 20], got {value!r}")

    def __call__(self, camera: str, width: int, height: int) -> PinholeIntrinsics:
        f = float(self.focal_factor) * max(width, height)
        return PinholeIntrinsics(fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width, height=height)


@dataclasses.dataclass(frozen=True)
class TripletRecord:
    """One multi-view sample on disk.

    Attributes:
        key: a name for the sample (the file stem, or e.g. ``subject/expression``).
        paths: one image path per view (in the dataset's camera order); None = the view is missing.
        extras: dataset-specific metadata (e.g. Pixel-Face's ``scan`` path), not put into the tensors.
    """

    key: str
    paths: tuple[Path | None, ...]
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PrepareSummary:
    """What :meth:`ImageTripletDataset.prepare` did.

    Attributes:
        images: image files of the dataset.
        from_cache: of them, landmarks found in the cache.
        detected: of them, run through the detector now.
        faces: images with a face (cached or detected).
        seconds: wall time.
    """

    images: int
    from_cache: int
    detected: int
    faces: int
    seconds: float

    @property
    def no_face(self) -> int:
        """Images where no face was found."""
        return self.images - self.faces


@dataclasses.dataclass(frozen=True)
class ViewOrderCheck:
    """Which way the faces of the first (left) and last (right) views turn (see
    :meth:`ImageTripletDataset.check_view_order`).

    Attributes:
        left_ok, left_swapped: first views whose face turns to the image's right (as a camera on the rig's left sees
            a face looking at the front camera) / to the image's left.
        right_ok, right_swapped: the same for the last view (expected: turned to the image's left).
    """

    left_ok: int
    left_swapped: int
    right_ok: int
    right_swapped: int

    @property
    def looks_swapped(self) -> bool:
        """Most clearly turned side views look the wrong way (at least 3 of them)."""
        ok, swapped = self.left_ok + self.right_ok, self.left_swapped + self.right_swapped
        return swapped >= 3 and swapped > ok


def face_turn(points68: np.ndarray) -> float:
    """Horizontal turn of a face in the image from its 68 iBUG landmarks: the nose tip (30) relative to the midpoint
    of the outer eye corners (36, 45), in units of their distance. > 0: the face looks towards the image's right."""
    eyes = points68[[36, 45]]
    width = float(np.linalg.norm(eyes[1] - eyes[0]))
    return float(points68[30, 0] - eyes.mean(axis=0)[0]) / max(width, 1e-6)


# ---------------------------------------------------------------------------------------------------- the cache
class LandmarkCache:
    """Detected 68-point landmarks per image file, persisted as JSON (see the module docstring).

    Args:
        path: the JSON file (created on :meth:`save`); None = keep in memory only.
        detector_name: entries written by another detector are ignored; None accepts the file's entries whatever
            detector wrote them (read-only use, detector ``"none"``).

    Raises:
        ModelFileError: ``path`` exists but is not a landmark cache (corrupt JSON, wrong format); delete it to
            start over.
    """

    def __init__(self, path: Path | None, detector_name: str | None) -> None:
        self.path = path
        self.detector_name = detector_name
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(
                f"{path}: landmark cache is not readable JSON ({exc}); delete it to detect again"
            ) from None
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict) or data.get("format") != CACHE_FORMAT:
            raise ModelFileError(f"{path}: not a {CACHE_FORMAT} file; delete it to detect again")
        if data.get("version") != CACHE_VERSION:
            return  # another version: start over (rewritten on save)
        if self.detector_name is None:
            self.detector_name = str(data.get("detector"))
        elif data.get("detector") != self.detector_name:
            return  # another detector: its landmarks are not ours (rewritten on save)
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _stamp(stat: os.stat_result) -> tuple[int, int]:
        return int(stat.st_size), int(stat.st_mtime_ns)

    def lookup(self, key: str, stat: os.stat_result) -> tuple[bool, np.ndarray | None]:
        """``(hit, points)``: ``hit`` when an entry for ``key`` with this file size and mtime exists; ``points`` is
        its ``(68, 2)`` float32 image pixels or None when no face was found."""
        entry = self._entries.get(key)
        if entry is None or (entry.get("size"), entry.get("mtime_ns")) != self._stamp(stat):
            return False, None
        points = entry.get("points")
        if points is None:
            return True, None
        array = np.asarray(points, dtype=np.float32)
        if array.shape != (68, 2) or not np.isfinite(array).all():
            return False, None  # a damaged entry: detect again
        return True, array

    def store(self, key: str, stat: os.stat_result, points: np.ndarray | None, confidence: float | None) -> None:
        """Record the detection of ``key`` (``points`` ``(68, 2)`` image pixels, or None for no face)."""
        size, mtime = self._stamp(stat)
        conf = None if confidence is None or not math.isfinite(confidence) else round(float(confidence), 4)
        self._entries[key] = {
            "size": size,
            "mtime_ns": mtime,
            "points": None if points is None else np.round(np.asarray(points, np.float64), 3).tolist(),
            "confidence": conf,
        }
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (no-op without a path or changes)."""
        if self.path is None or not self._dirty:
            return
        try:
            write_json_atomic(
                self.path,
                {
                    "format": CACHE_FORMAT,
                    "version": CACHE_VERSION,
                    "detector": self.detector_name,
                    "entries": self._entries,
                },
            )
        except OSError as exc:
            raise DfmvrError(
                f"{self.path}: cannot write the landmark cache ({exc.strerror or exc}); pass cache_dir= a writable "
                "folder or cache=False"
            ) from None
        self._dirty = False


# ---------------------------------------------------------------------------------------------- the dataset
def _letterbox(width: int, height: int, size: int) -> np.ndarray:
    center = torch.tensor(((width - 1) / 2.0, (height - 1) / 2.0), dtype=torch.float64)
    return crop_transform_from_box(center, float(max(width, height)), size).numpy()


class ImageTripletDataset(Dataset):
    """Multi-view samples from image files with detected landmarks (torch ``Dataset``; see the module docstring).

    Args:
        records: the samples; every record has one path (or None) per camera.
        root: folder the cache keys are relative to (and where ``.dfmvr_cache/`` goes by default).
        cameras: view names in view order (left, front, right); used for the intrinsics and in messages.
        intrinsics: ``{camera: PinholeIntrinsics}`` (every image must have that size) or a callable
            ``(camera, width, height) -> PinholeIntrinsics`` (e.g. :class:`ApproximateIntrinsics`).
        detector: ``"mediapipe"``, ``"none"`` (landmarks only from the cache) or a :class:`LandmarkDetector`.
        cache: keep detections in ``<cache_dir>/landmarks.json`` (False: in memory only).
        cache_dir: where the cache goes (default ``<root>/.dfmvr_cache``).
        crop: the crop policy and canonical camera (default :class:`CropCamera`).
        mask_source: ``"landmarks"`` (face parts drawn from the landmarks) or ``"none"`` (zeros).
        loader: reads one image file into ``(H, W, 3)`` uint8 RGB (default :func:`load_image`).
        variant: tag added to the cache keys when ``loader`` changes the pixels (e.g. ``"rot90"``).
        min_face_px: smaller faces make the view invalid (see :func:`crop_view`).
        prepare: run :meth:`prepare` now (detect every image not cached, with a progress bar).
        progress: show tqdm bars.

    Raises:
        ConfigError: bad arguments, a record with the wrong number of paths, or no records.
        ModelFileError: an unreadable cache file.
        ShapeError: an image whose size differs from its camera's intrinsics (names the file), during
            :meth:`prepare` or ``__getitem__``.
        MissingDependencyError: ``detector="mediapipe"`` without mediapipe installed (when detection is needed).
    """

    def __init__(
        self,
        records: Sequence[TripletRecord],
        *,
        root: str | Path,
        cameras: Sequence[str] = DEFAULT_CAMERAS,
        intrinsics: IntrinsicsSource,
        detector: str | LandmarkDetector = "mediapipe",
        cache: bool = True,
        cache_dir: str | Path | None = None,
        crop: CropCamera | None = None,
        mask_source: str = "landmarks",
        loader: ImageLoader | None = None,
        variant: str = "",
        min_face_px: float = 24.0,
        prepare: bool = True,
        progress: bool = True,
    ) -> None:
        self.root = Path(root)
        self.cameras = tuple(cameras)
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"cameras: expected unique camera names, got {list(self.cameras)}")
        self.records = tuple(records)
        if not self.records:
            raise ConfigError(f"{self.root}: no samples found")
        for record in self.records:
            if len(record.paths) != len(self.cameras):
                raise ConfigError(
                    f"record {record.key!r}: {len(record.paths)} paths for {len(self.cameras)} cameras "
                    f"{list(self.cameras)}"
                )
        if mask_source not in MASK_SOURCES:
            raise ConfigError(f"mask_source: expected one of {list(MASK_SOURCES)}, got {mask_source!r}")
        self.crop = CropCamera() if crop is None else crop
        if not isinstance(self.crop, CropCamera):
            raise ConfigError(f"crop: expected a CropCamera, got {type(self.crop).__name__}")
        if isinstance(intrinsics, Mapping):
            missing = [c for c in self.cameras if c not in intrinsics]
            if missing:
                raise ConfigError(f"intrinsics: no intrinsics for camera(s) {missing}; have {sorted(intrinsics)}")
            bad = [c for c in self.cameras if not isinstance(intrinsics[c], PinholeIntrinsics)]
            if bad:
                raise ConfigError(f"intrinsics: expected PinholeIntrinsics for camera(s) {bad}")
        elif not callable(intrinsics):
            raise ConfigError(
                f"intrinsics: expected a mapping camera -> PinholeIntrinsics or a callable, got {type(intrinsics)}"
            )
        self.intrinsics = intrinsics
        if isinstance(detector, str):
            if detector not in ("mediapipe", "none"):
                raise ConfigError(f"detector: expected 'mediapipe', 'none' or a LandmarkDetector, got {detector!r}")
            self._detector_name = detector
            self._detector: LandmarkDetector | None = None
        elif isinstance(detector, LandmarkDetector):
            self._detector_name = str(getattr(detector, "name", type(detector).__name__))
            self._detector = detector
        else:
            raise ConfigError(f"detector: expected a name or a LandmarkDetector, got {type(detector).__name__}")
        self.mask_source = mask_source
        self.loader: ImageLoader = load_image if loader is None else loader
        self.variant = str(variant)
        self.min_face_px = float(min_face_px)
        self.progress = bool(progress)
        cache_path = None
        if cache:
            cache_path = (Path(cache_dir) if cache_dir is not None else self.root / CACHE_DIRNAME) / CACHE_NAME
        self.cache = LandmarkCache(cache_path, None if self._detector_name == "none" else self._detector_name)
        if prepare:
            self.prepare()

    # ------------------------------------------------------------------ detection
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if isinstance(state.get("_detector_name"), str) and state["_detector_name"] == "mediapipe":
            state["_detector"] = None  # MediaPipe graphs do not pickle; rebuilt lazily in a worker if needed
        return state

    def _get_detector(self) -> LandmarkDetector | None:
        if self._detector is None and self._detector_name == "mediapipe":
            self._detector = build_detector("mediapipe")
        return self._detector

    def _cache_key(self, path: Path) -> str:
        try:
            key = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            key = path.resolve().as_posix()
        return f"{key}#{self.variant}" if self.variant else key

    def _load_checked(self, camera: str, path: Path) -> tuple[np.ndarray, PinholeIntrinsics]:
        """The image and its intrinsics; ShapeError naming the file when their sizes differ."""
        image = self.loader(path)
        h, w = image.shape[:2]
        if isinstance(self.intrinsics, Mapping):
            intr = self.intrinsics[camera]
            if (w, h) != (intr.width, intr.height):
                raise ShapeError(
                    f"{path}: image is {w}x{h} pixels (width x height) but camera {camera!r}'s intrinsics are for "
                    f"{intr.width}x{intr.height}; expected images of the calibrated size (or fix the intrinsics)"
                )
        else:
            intr = self.intrinsics(camera, w, h)
        return image, intr

    def _landmarks(self, camera: str, path: Path, image: np.ndarray | None = None) -> tuple[np.ndarray | None, str]:
        """``(points (68, 2) image px or None, source)`` of one file; ``source`` is ``"cache"``, ``"detector"``
        (detected now) or ``"unavailable"`` (detector ``"none"`` and nothing cached)."""
        try:
            stat = path.stat()
        except OSError as exc:
            raise DfmvrError(f"{path}: image file cannot be read ({exc.strerror or exc})") from None
        key = self._cache_key(path)
        hit, points = self.cache.lookup(key, stat)
        if hit:
            return points, "cache"
        detector = self._get_detector()
        if detector is None:
            return None, "unavailable"  # detector "none": only cached landmarks are used
        if image is None:
            image, _ = self._load_checked(camera, path)
        found = detector.detect(image)
        points = None if found is None else np.asarray(found.points68, dtype=np.float32)
        confidence = None if found is None else float(found.confidence)
        self.cache.store(key, stat, points, confidence)
        return points, "detector"

    def prepare(self) -> PrepareSummary:
        """Detect the landmarks of every image not in the cache (tqdm bar), check image sizes against the
        intrinsics, save the cache, and warn when the left/right views look swapped (:meth:`check_view_order`).

        Raises:
            ShapeError: an image whose size differs from its camera's intrinsics (names the file).
            DfmvrError: an unreadable image (names the file), or the cache cannot be written.
        """
        start = time.perf_counter()
        jobs = [(cam, p) for r in self.records for cam, p in zip(self.cameras, r.paths, strict=True) if p is not None]
        from_cache = detected = faces = 0
        with tqdm(jobs, unit="image", desc="detect landmarks", disable=not self.progress) as bar:
            for camera, path in bar:
                points, source = self._landmarks(camera, path)
                if source == "detector":
                    detected += 1
                    if detected % _SAVE_EVERY == 0:
                        self.cache.save()
                elif source == "cache":
                    from_cache += 1
                faces += points is not None
        self.cache.save()
        if len(self.cameras) == 3:
            check = self.check_view_order()
            if check.looks_swapped:
                warnings.warn(
                    f"{self.root}: the side views look swapped: {check.left_swapped} '{self.cameras[0]}' views turn "
                    f"to the image's left and {check.right_swapped} '{self.cameras[-1]}' views to its right (expected "
                    f"the opposite: the '{self.cameras[0]}' camera sits on the rig's left); check the camera order",
                    stacklevel=2,
                )
        return PrepareSummary(len(jobs), from_cache, detected, faces, time.perf_counter() - start)

    def check_view_order(self, min_turn: float = 0.15) -> ViewOrderCheck:
        """Count, over the cached landmarks, the first/last views whose face turns the expected way.

        A camera on the rig's left (azimuth < 0) sees a face that looks at the front camera turned towards the
        image's right (:func:`face_turn` > 0); the right camera the opposite. Views turned less than ``min_turn``
        (eye-corner distances) are not counted. Uses only cached detections (run :meth:`prepare` first).
        """
        counts = {"left_ok": 0, "left_swapped": 0, "right_ok": 0, "right_swapped": 0}
        for record in self.records:
            for index, side, sign in ((0, "left", 1.0), (len(self.cameras) - 1, "right", -1.0)):
                path = record.paths[index]
                if path is None:
                    continue
                hit, points = self.cache.lookup(self._cache_key(path), path.stat())
                if not hit or points is None:
                    continue
                turn = sign * face_turn(points)
                if turn > min_turn:
                    counts[f"{side}_ok"] += 1
                elif turn < -min_turn:
                    counts[f"{side}_swapped"] += 1
        return ViewOrderCheck(**counts)

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.records)

    def _missing_view(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """``(K, A)`` of a view without an image: the camera's own K and letterbox when its size is known, else
        the canonical crop camera with an identity crop (a plausible camera: rendering it stays finite)."""
        if isinstance(self.intrinsics, Mapping):
            intr = self.intrinsics[camera]
            return intr.matrix(dtype=torch.float64).numpy(), _letterbox(intr.width, intr.height, self.crop.size)
        return self.crop.matrix(dtype=torch.float64).numpy(), np.array(((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if isinstance(index, (torch.Tensor, np.integer)):
            index = int(index)
        if not isinstance(index, int) or not -n <= index < n:
            raise IndexError(f"index {index!r} out of range for a dataset of {n} samples")
        index %= n
        record = self.records[index]
        v, s = len(self.cameras), self.crop.size
        images = np.zeros((v, s, s, 3), np.uint8)
        parts = np.zeros((v, s, s), np.int64)
        landmarks = np.zeros((v, 68, 2), np.float32)
        valid = np.zeros(v, bool)
        K = np.zeros((v, 3, 3))
        A = np.zeros((v, 2, 3))
        for i, (camera, path) in enumerate(zip(self.cameras, record.paths, strict=True)):
            if path is None:
                K[i], A[i] = self._missing_view(camera)
                continue
            image, intr = self._load_checked(camera, path)
            points, _ = self._landmarks(camera, path, image)
            view = crop_view(image, intr, camera=self.crop, landmarks=points, min_face_px=self.min_face_px)
            K[i], A[i] = view.K, view.A
            if not view.valid or view.landmarks_crop is None:
                continue
            valid[i] = True
            images[i] = view.image
            landmarks[i] = view.landmarks_crop
            if self.mask_source == "landmarks":
                parts[i] = parts_from_landmarks(view.landmarks_crop, s)
        K_t, A_t = torch.from_numpy(K), torch.from_numpy(A)
        valid_t = torch.from_numpy(valid)
        return {
            "images": torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0),
            "parts": torch.from_numpy(parts),
            "landmarks": torch.from_numpy(landmarks),
            "visibility": valid_t[:, None].expand(v, 68).clone(),
            "K_crop": intrinsics_in_crop(K_t, A_t).float(),
            "K": K_t.float(),
            "A": A_t.float(),
            "valid": valid_t,
            "has_3d": torch.tensor(False),
            "sample_index": torch.tensor(index, dtype=torch.int64),
        }


# ---------------------------------------------------------------------------------------- folder of triplets
def _rig_intrinsics(rig: str | Path | CameraRig | RigConfig | Mapping[str, PinholeIntrinsics]) -> dict:
    if isinstance(rig, (str, Path)):
        rig = load_rig(rig)
    elif isinstance(rig, RigConfig):
        rig = CameraRig.from_config(rig)
    if isinstance(rig, CameraRig):
        return dict(rig.intrinsics)
    if isinstance(rig, Mapping):
        return dict(rig)
    raise ConfigError(f"rig: expected a rig YAML path, a CameraRig or a mapping of intrinsics, got {type(rig)}")


class FolderTripletDataset(ImageTripletDataset):
    """A folder of camera triplets: ``root/<camera>/<stem>.<png|jpg|...>`` (see the module docstring).

    Samples are the union of the stems over all camera folders, in natural order; a stem missing from a camera's
    folder makes that view invalid. Intrinsics come from ``rig`` (a rig YAML such as ``config/rig.yaml``, a
    :class:`CameraRig`, or ``{camera: PinholeIntrinsics}``) or, without it, from
    ``root/camera_info/<camera>.yaml`` (:func:`read_camera_info_yaml`).

    Args:
        root: the folder.
        rig: see above (None: the ``camera_info`` files).
        cameras: the camera folders, in view order.
        detector, cache, cache_dir, crop, mask_source, min_face_px, prepare, progress: see
            :class:`ImageTripletDataset`.

    Raises:
        ConfigError: a missing root or camera folder, no images, ambiguous stems, missing intrinsics.
        ShapeError: an image whose size differs from the intrinsics (names the file).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        rig: str | Path | CameraRig | RigConfig | Mapping[str, PinholeIntrinsics] | None = None,
        cameras: Sequence[str] = DEFAULT_CAMERAS,
        detector: str | LandmarkDetector = "mediapipe",
        cache: bool = True,
        cache_dir: str | Path | None = None,
        crop: CropCamera | None = None,
        mask_source: str = "landmarks",
        min_face_px: float = 24.0,
        prepare: bool = True,
        progress: bool = True,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"{root}: triplet folder not found")
        cameras = tuple(cameras)
        listings = {}
        for camera in cameras:
            folder = root / camera
            if not folder.is_dir():
                have = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
                raise ConfigError(
                    f"{folder}: camera folder not found; expected one folder per camera {list(cameras)} "
                    f"(found folders {have})"
                )
            listings[camera] = list_images(folder)
        stems = sorted(set().union(*(set(files) for files in listings.values())), key=natural_key)
        if not stems:
            raise ConfigError(f"{root}: no images in the camera folders {list(cameras)} (suffixes {IMAGE_SUFFIXES})")
        records = [TripletRecord(stem, tuple(listings[c].get(stem) for c in cameras)) for stem in stems]
        if rig is not None:
            intrinsics: dict[str, PinholeIntrinsics] = _rig_intrinsics(rig)
            missing = [c for c in cameras if c not in intrinsics]
            if missing:
                raise ConfigError(f"rig: has no camera(s) {missing}; it has {sorted(intrinsics)}")
        else:
            missing_files = [root / "camera_info" / f"{c}.yaml" for c in cameras]
            missing_files = [p for p in missing_files if not p.is_file()]
            if missing_files:
                raise ConfigError(
                    f"{root}: no intrinsics: {', '.join(str(p) for p in missing_files)} not found; give a rig YAML "
                    "(rig=config/rig.yaml) or camera_calibration files in camera_info/"
                )
            intrinsics = {c: read_camera_info_yaml(root / "camera_info" / f"{c}.yaml") for c in cameras}
        super().__init__(
            records,
            root=root,
            cameras=cameras,
            intrinsics=intrinsics,
            detector=detector,
            cache=cache,
            cache_dir=cache_dir,
            crop=crop,
            mask_source=mask_source,
            min_face_px=min_face_px,
            prepare=prepare,
            progress=progress,
        )
