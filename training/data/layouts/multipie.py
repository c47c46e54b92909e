"""CMU Multi-PIE (Gross et al. 2008/2010): multi-view faces under 20 flash illuminations, as training triplets.

Multi-PIE is licensed by Carnegie Mellon University (http://www.cs.cmu.edu/afs/cs/project/PIE/MultiPie/Multi-Pie/
Home.html); it has no 3D ground truth (DF-MVR trains on it without the 3D landmark loss, section V-A/B). The
official release layout::

    <root>/session01/multiview/<subject>/<recording>/<camera>/<subject>_<session>_<recording>_<cam>_<image>.png
        e.g. session01/multiview/001/01/05_1/001_01_01_051_00.png

with ``subject`` 3 digits, ``session`` and ``recording`` (the expression) 2 digits, the camera folder ``05_1`` and
its file-name form ``051`` (``05_1`` is accepted in file names too), and ``image`` the flash/illumination index
00-19 (all cameras fire for the same flash, so one index is one instant).

**Cameras.** 13 cameras on a ring at head height, 15° apart, listed in :data:`MULTIPIE_RING` from one end (11_0)
to the other (24_0) with 05_1 frontal, plus two cameras above the subject (08_1, 19_1: "from above", not on the
ring). :data:`MULTIPIE_YAW_DEG` gives the ring position in degrees (−90 … +90). So the ±45° pair of the paper's
rig is **08_0 / 19_0** (13_0 / 04_1 are ±30°; 08_1 is an elevated camera, not a ±45° view). Which end of the ring is
the rig's *left* is **not confirmed** here: the default ``cameras=("08_0", "05_1", "19_0")`` assumes 11_0's end is
the rig's left; ``prepare()`` checks the detected faces and warns when the side views turn the wrong way, then
pass ``cameras=("19_0", "05_1", "08_0")``. Multi-PIE publishes no intrinsics here:
:class:`~dfmvr_training.data.triplets.ApproximateIntrinsics` is used unless given.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.preprocess import LandmarkDetector
from dfmvr_training.data.triplets import (
    IMAGE_SUFFIXES,
    ApproximateIntrinsics,
    ImageTripletDataset,
    IntrinsicsSource,
    TripletRecord,
    natural_key,
)

__all__ = [
    "MULTIPIE_DEFAULT_CAMERAS",
    "MULTIPIE_ELEVATED",
    "MULTIPIE_RING",
    "MULTIPIE_YAW_DEG",
    "MultiPIEDataset",
    "multipie_records",
]

MULTIPIE_RING = ("11_0", "12_0", "09_0", "08_0", "13_0", "14_0", "05_1", "05_0", "04_1", "19_0", "20_0", "01_0", "24_0")
"""The 13 head-height cameras in ring order (15° apart), 05_1 frontal."""
MULTIPIE_YAW_DEG: Mapping[str, float] = {cam: -90.0 + 15.0 * i for i, cam in enumerate(MULTIPIE_RING)}
"""Ring position of each head-height camera, degrees (05_1 = 0; the sign convention is this module's, see above)."""
MULTIPIE_ELEVATED = ("08_1", "19_1")
"""The two cameras above the subject (not on the ring)."""
MULTIPIE_DEFAULT_CAMERAS = ("08_0", "05_1", "19_0")
"""Default (left, front, right): the ±45° pair and the frontal camera."""

_CAMERA = re.compile(r"^\d\d_\d$")
_FILE = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d\d)_?(\d)_(\d{2})$")


def _check_camera(name: str) -> str:
    if not isinstance(name, str) or not _CAMERA.match(name):
        raise ConfigError(f"cameras: expected Multi-PIE camera ids like '05_1', got {name!r}")
    return name


def _kept(value: object, allowed: set | None) -> bool:
    return allowed is None or value in allowed


def _subdirs(folder: Path, allowed: set | None) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and _kept(p.name, allowed)]


def _camera_images(folder: Path, camera: str) -> list[tuple[int, Path]]:
    """``(illumination index, path)`` of the images in one camera folder (none when the folder is missing)."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.iterdir():
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = _FILE.match(path.stem)
        if match is None:
            raise ConfigError(
                f"{path}: not a Multi-PIE file name (expected <subject>_<session>_<recording>_<cam>_<image>, e.g. "
                "001_01_01_051_00.png)"
            )
        found = f"{match.group(4)}_{match.group(5)}"
        if found != camera:
            raise ConfigError(f"{path}: an image of camera {found} in the folder of camera {camera}")
        out.append((int(match.group(6)), path))
    return out


def multipie_records(
    root: str | Path,
    *,
    cameras: Sequence[str] = MULTIPIE_DEFAULT_CAMERAS,
    sessions: Collection[str] | None = None,
    subjects: Collection[str] | None = None,
    recordings: Collection[str] | None = None,
    illuminations: Collection[int] | None = None,
    min_views: int = 1,
) -> list[TripletRecord]:
    """One :class:`TripletRecord` per (session, subject, recording, illumination) with ``>= min_views`` of the
    chosen cameras' images.

    Args:
        root: the folder holding ``session01`` … ``session04``.
        cameras: (left, front, right) camera ids, e.g. ``("08_0", "05_1", "19_0")``.
        sessions: session folder names to keep (``"session01"``), None = all.
        subjects: subject ids (``"001"``), recordings (``"01"``), illuminations (flash indices 0-19): filters.
        min_views: drop samples with fewer views (1..3).

    Returns:
        Records keyed ``session/subject/recording/illumination`` with ``extras`` of the same names.

    Raises:
        ConfigError: bad cameras or ``min_views``, a missing root, file names that do not parse, or no samples.
    """
    root = Path(root)
    cameras = tuple(_check_camera(c) for c in cameras)
    if len(cameras) != 3 or len(set(cameras)) != 3:
        raise ConfigError(f"cameras: expected 3 different camera ids (left, front, right), got {list(cameras)}")
    if isinstance(min_views, bool) or not isinstance(min_views, int) or not 1 <= min_views <= 3:
        raise ConfigError(f"min_views: expected 1, 2 or 3, got {min_views!r}")
    if not root.is_dir():
        raise ConfigError(f"{root}: Multi-PIE folder not found (expected <root>/session01/multiview/...)")
    keep = {
        "sessions": None if sessions is None else {str(s) for s in sessions},
        "subjects": None if subjects is None else {str(s) for s in subjects},
        "recordings": None if recordings is None else {str(s) for s in recordings},
        "illuminations": None if illuminations is None else {int(i) for i in illuminations},
    }
    session_dirs = sorted(p for p in root.glob("session*/multiview") if p.is_dir())
    if not session_dirs:
        raise ConfigError(f"{root}: no session*/multiview folders (expected the Multi-PIE release layout)")
    groups: dict[tuple[str, str, str, int], dict[int, Path]] = {}
    for multiview in session_dirs:
        session = multiview.parent.name
        if not _kept(session, keep["sessions"]):
            continue
        for subject_dir in _subdirs(multiview, keep["subjects"]):
            for recording_dir in _subdirs(subject_dir, keep["recordings"]):
                for view, camera in enumerate(cameras):
                    for image, path in _camera_images(recording_dir / camera, camera):
                        if _kept(image, keep["illuminations"]):
                            key = (session, subject_dir.name, recording_dir.name, image)
                            groups.setdefault(key, {})[view] = path
    records = []
    for key in sorted(groups, key=lambda k: (natural_key(k[0]), k[1], k[2], k[3])):
        found = groups[key]
        if len(found) < min_views:
            continue
        session, subject, recording, image = key
        records.append(
            TripletRecord(
                f"{session}/{subject}/{recording}/{image:02d}",
                tuple(found.get(v) for v in range(3)),
                {"session": session, "subject": subject, "recording": recording, "illumination": image},
            )
        )
    if not records:
        raise ConfigError(
            f"{root}: no Multi-PIE samples with >= {min_views} of the cameras {list(cameras)} (after the filters)"
        )
    return records


class MultiPIEDataset(ImageTripletDataset):
    """Multi-PIE triplets (items as :class:`~dfmvr_training.data.triplets.FolderTripletDataset`).

    Args:
        root: the folder holding ``session01`` … (see the module docstring).
        cameras: (left, front, right) camera ids (default :data:`MULTIPIE_DEFAULT_CAMERAS`).
        sessions, subjects, recordings, illuminations, min_views: see :func:`multipie_records`.
        intrinsics: ``{"left"|"front"|"right": PinholeIntrinsics}`` or a callable (default
            :class:`ApproximateIntrinsics`).
        detector, cache, cache_dir, crop, mask_source, min_face_px, prepare, progress: see
            :class:`~dfmvr_training.data.triplets.ImageTripletDataset` (``cache_dir`` for a read-only release).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        cameras: Sequence[str] = MULTIPIE_DEFAULT_CAMERAS,
        sessions: Collection[str] | None = None,
        subjects: Collection[str] | None = None,
        recordings: Collection[str] | None = None,
        illuminations: Collection[int] | None = None,
        min_views: int = 1,
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
        records = multipie_records(
            root,
            cameras=cameras,
            sessions=sessions,
            subjects=subjects,
            recordings=recordings,
            illuminations=illuminations,
            min_views=min_views,
        )
        self.camera_ids = tuple(cameras)
        super().__init__(
            records,
            root=root,
            cameras=("left", "front", "right"),
            intrinsics=ApproximateIntrinsics() if intrinsics is None else intrinsics,
            detector=detector,
            cache=cache,
            cache_dir=cache_dir,
            crop=crop,
            mask_source=mask_source,
            min_face_px=min_face_px,
            prepare=prepare,
            progress=progress,
        )
