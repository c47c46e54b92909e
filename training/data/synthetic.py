"""The synthetic multi-view face dataset: a sharded writer (``dfmvr make-dataset``) and a torch ``Dataset`` reader.

Layout of a dataset folder::

    manifest.json          format, model (path, fingerprint, content hash), seeds, configs, shard list + sha256
    shard_00000.npz        samples [0, shard_size)            (uncompressed np.savez, see ``shards.py``)
    shard_00001.npz        samples [shard_size, 2·shard_size)
    ...

Arrays of a shard with ``n`` samples, ``V`` views (left, front, right) and crop side ``S`` (224):

==========================  ==========================  ===============================================
key                          shape, dtype               meaning
==========================  ==========================  ===============================================
``sample_index``             (n,) int64                 global index of the sample in its split
``scene_seed``               (n,) uint64                :func:`~dfmvr_core.synthesis.scene_seed` of it
``crops``                    (n, V, S, S, 3) uint8      RGB face crops
``parts``                    (n, V, S, S) uint8         FacePart labels (the paper's 10-class face mask)
``landmarks_crop``           (n, V, 68, 2) float32      ground-truth 2D landmarks, crop pixels
``landmark_visibility``      (n, V, 68) bool            landmark inside the image and not occluded
``A``                        (n, V, 2, 3) float64       image → crop affine
``K``                        (n, V, 3, 3) float64       real camera intrinsics (full image pixels)
``T_camera_from_model``      (n, V, 4, 4) float64       camera(optical)-from-model, metres
``T_rig_from_model``         (n, 4, 4) float64          rig(reference camera)-from-model, metres
``T_camera_from_rig``        (n, V, 4, 4) float64       camera-from-rig, metres
``pose_label``               (n, V, 6) float32          (pitch, yaw, roll rad, tx, ty, tz m) in the crop
                                                        camera: ``camera_pose_to_crop(T, K, A, crop)``
``identity``                 (n, K_id) float32          ground-truth coefficients (model's full sizes)
``expression``               (n, K_exp) float32
``albedo``                   (n, K_tex) float32
``lighting``                 (n, V, 27) float32         SH lighting per view, camera frame
``landmarks_3d``             (n, 68, 3) float32         ground-truth 3D landmarks, metres, model frame
``camera_azimuth_deg``       (n, V) float32             each camera's azimuth (side yaw, Table V)
``head_angles_deg``          (n, 3) float32             head (pitch, yaw, roll) relative to the front camera
==========================  ==========================  ===============================================

**Determinism and splits.** Sample ``i`` of split ``s`` is drawn from ``scene_seed(seed, i, stream=SPLIT_STREAMS[s])``
(numpy ``SeedSequence(entropy=seed, spawn_key=(stream, i))``): ``train`` is stream 0 and ``benchmark`` stream 1, so
the benchmark never shares a scene with the training set of the same seed, and any sample can be regenerated on
its own. A resumed run therefore writes the same bytes as an uninterrupted one (same device and batch size).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from dfmvr_core import __version__
from dfmvr_core.atomic_io import write_json_atomic
from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError, ModelFileError, ShapeError
from dfmvr_core.geometry.crop import intrinsics_in_crop
from dfmvr_core.geometry.face_crop import CropCamera, camera_pose_to_crop
from dfmvr_core.morphable import CoefficientSizes, MorphableModel, load_morphable_model
from dfmvr_core.synthesis import FaceSceneSampler, SceneConfig, SceneRenderer, config_to_dict, scene_seed
from dfmvr_training.data.shards import npz_members, open_npz_memmaps, sha256_file, write_npz_shard

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "SPLIT_STREAMS",
    "DatasetSummary",
    "SyntheticMultiViewDataset",
    "generate_samples",
    "gt_vertices",
    "make_dataset",
    "model_content_hash",
]

FORMAT = "dfmvr-synthetic-multiview"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SPLIT_STREAMS: Mapping[str, int] = {"train": 0, "benchmark": 1}
"""Seed stream of each split (see the module docstring)."""

_SHARD_KEYS = (
    "sample_index",
    "scene_seed",
    "crops",
    "parts",
    "landmarks_crop",
    "landmark_visibility",
    "A",
    "K",
    "T_camera_from_model",
    "T_rig_from_model",
    "T_camera_from_rig",
    "pose_label",
    "identity",
    "expression",
    "albedo",
    "lighting",
    "landmarks_3d",
    "camera_azimuth_deg",
    "head_angles_deg",
)


def shard_name(index: int) -> str:
    """File name of shard ``index``: ``shard_00000.npz``."""
    return f"shard_{index:05d}.npz"


def model_content_hash(model: MorphableModel) -> str:
    """SHA-256 (hex, 16 chars) of the model's mean shape and bases: the ground truth depends on their values,
    which :meth:`MorphableModel.fingerprint` (topology and sizes) does not cover."""
    h = hashlib.sha256()
    for key in ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "albedo_basis"):
        h.update(getattr(model, key).detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    """What :func:`make_dataset` did."""

    out_dir: Path
    split: str
    samples_total: int
    samples_written: int
    shards_total: int
    shards_written: int
    seconds: float
    complete: bool

    @property
    def samples_per_second(self) -> float:
        return self.samples_written / self.seconds if self.seconds > 0 else math.nan


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def generate_samples(
    sampler: FaceSceneSampler,
    renderer: SceneRenderer,
    indices: list[int],
    seed: int,
    stream: int,
    batch_size: int = 8,
) -> dict[str, np.ndarray]:
    """Sample and render ``indices`` of a stream into crop arrays (the shard layout of the module docstring).

    Args:
        sampler: scene sampler of the model and scene config.
        renderer: scene renderer (its crop camera defines the crops and pose labels).
        indices: global sample indices.
        seed, stream: :func:`~dfmvr_core.synthesis.scene_seed` arguments.
        batch_size: scenes per renderer call.

    Returns:
        name → array with leading dim ``len(indices)``.
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    crop = renderer.crop_camera
    seeds = [scene_seed(seed, i, stream) for i in indices]
    columns: dict[str, list[np.ndarray]] = {k: [] for k in _SHARD_KEYS}
    for start in range(0, len(indices), batch_size):
        scenes = [sampler.sample(s) for s in seeds[start : start + batch_size]]
        renders = renderer.render(scenes, "crop")
        for scene, r in zip(scenes, renders, strict=True):
            columns["crops"].append(r.images)
            columns["parts"].append(r.parts)
            columns["landmarks_crop"].append(r.landmarks_2d.astype(np.float32))
            columns["landmark_visibility"].append(r.landmark_visibility)
            columns["A"].append(r.A)
            columns["K"].append(r.K_camera)
            columns["T_camera_from_model"].append(r.T_camera_from_model)
            columns["T_rig_from_model"].append(scene.T_rig_from_model)
            columns["T_camera_from_rig"].append(scene.T_camera_from_rig)
            columns["identity"].append(scene.identity)
            columns["expression"].append(scene.expression)
            columns["albedo"].append(scene.albedo)
            columns["lighting"].append(scene.lighting)
            columns["landmarks_3d"].append(r.landmarks_3d)
            columns["camera_azimuth_deg"].append(scene.camera_azimuth_deg.astype(np.float32))
            columns["head_angles_deg"].append(scene.head_angles_deg.astype(np.float32))
    arrays = {k: np.stack(v) for k, v in columns.items() if v}
    arrays["sample_index"] = np.asarray(indices, np.int64)
    arrays["scene_seed"] = np.asarray(seeds, np.uint64)
    angles, translation = camera_pose_to_crop(
        torch.from_numpy(arrays["T_camera_from_model"]),
        torch.from_numpy(arrays["K"]),
        torch.from_numpy(arrays["A"]),
        crop,
    )
    arrays["pose_label"] = torch.cat((angles, translation), dim=-1).numpy().astype(np.float32)
    return {k: arrays[k] for k in _SHARD_KEYS}


def _settings(
    split: str, seed: int, count: int, shard_size: int, scene_config: SceneConfig, crop: CropCamera
) -> dict[str, Any]:
    """The manifest fields that define a dataset, apart from the model."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "split": split,
        "seed_stream": SPLIT_STREAMS[split],
        "seed": seed,
        "count": count,
        "shard_size": shard_size,
        "camera_names": [c.name for c in scene_config.rig.cameras],
        "scene_config": config_to_dict(scene_config),
        "crop_camera": config_to_dict(crop),
    }


def _model_entry(model: MorphableModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "fingerprint": model.fingerprint(),
        "content_sha256": model_content_hash(model),
        "expression_kind": model.expression_kind,
        "coefficient_sizes": dataclasses.asdict(model.coefficient_sizes),
        "num_vertices": model.num_vertices,
    }


def _refuse_mismatch(out_dir: Path, manifest: Mapping[str, Any], expected: Mapping[str, Any], model: bool) -> None:
    """ConfigError naming the settings (or, with ``model``, the model fields) that differ from the manifest."""
    if model:
        have = manifest.get("model", {})
        wrong = [
            f"model.{k}" for k in ("fingerprint", "content_sha256", "coefficient_sizes") if have.get(k) != expected[k]
        ]
    else:
        wrong = [k for k in expected if manifest.get(k) != expected[k]]
    if wrong:
        raise ConfigError(
            f"{out_dir}: holds a dataset made with other settings (changed: {', '.join(wrong)}; see its "
            f"{MANIFEST_NAME}); use another --out folder, or the same settings to resume"
        )


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: dataset manifest not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format_version {manifest.get('format_version')!r}; this build reads version {FORMAT_VERSION}"
        )
    return manifest


def make_dataset(
    out_dir: str | Path,
    model_path: str | Path,
    *,
    count: int,
    seed: int,
    split: str = "train",
    shard_size: int = 256,
    scene_config: SceneConfig | None = None,
    crop: CropCamera | None = None,
    progress: bool = True,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    max_shards: int | None = None,
) -> DatasetSummary:
    """Render a synthetic multi-view dataset into ``out_dir`` (resumable, deterministic per sample).

    Each shard is written atomically, then ``manifest.json`` (atomically) lists it with its SHA-256. A rerun with
    the same arguments keeps the listed shards whose checksum matches and writes the others (a damaged shard is
    rewritten with a warning); a rerun with another split, seed, count, shard size, model or config is refused.
    One writer per folder.

    Args:
        out_dir: dataset folder (created).
        model_path: morphable model file (anything :func:`~dfmvr_core.morphable.load_morphable_model` reads).
        count: number of samples, >= 1.
        seed: run seed, >= 0.
        split: ``train`` or ``benchmark`` (disjoint seed streams, see the module docstring).
        shard_size: samples per shard, >= 1.
        scene_config: the scene distribution (default :class:`~dfmvr_core.synthesis.SceneConfig`).
        crop: the crop camera (default :class:`~dfmvr_core.geometry.face_crop.CropCamera`).
        progress: show a tqdm bar.
        batch_size: scenes per renderer call.
        device: torch device to render on.
        max_shards: stop after writing this many new shards (time-sliced jobs; None = finish).

    Returns:
        :class:`DatasetSummary`.

    Raises:
        ConfigError: bad arguments, or a manifest in ``out_dir`` made with other arguments.
        ModelFileError: the model cannot be loaded, or ``out_dir`` holds an unreadable manifest.
    """
    if split not in SPLIT_STREAMS:
        raise ConfigError(f"split: expected one of {sorted(SPLIT_STREAMS)}, got {split!r}")
    count = _check_int("count", count, 1)
    seed = _check_int("seed", seed, 0)
    shard_size = _check_int("shard_size", shard_size, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if max_shards is not None:
        max_shards = _check_int("max_shards", max_shards, 0)
    scene_config = scene_config or SceneConfig()
    crop = crop or CropCamera()
    if not isinstance(scene_config, SceneConfig):
        raise ConfigError(f"scene_config: expected a SceneConfig, got {type(scene_config).__name__}")
    if not isinstance(crop, CropCamera):
        raise ConfigError(f"crop: expected a CropCamera, got {type(crop).__name__}")
    out_dir = Path(out_dir)
    settings = _settings(split, seed, count, shard_size, scene_config, crop)
    manifest_path = out_dir / MANIFEST_NAME
    manifest = _read_manifest(manifest_path) if manifest_path.exists() else None
    if manifest is not None:
        _refuse_mismatch(out_dir, manifest, settings, model=False)  # before the (slow) model load
    model = load_morphable_model(model_path)
    model_entry = _model_entry(model)
    num_shards = math.ceil(count / shard_size)

    done: dict[int, dict[str, Any]] = {}
    if manifest is not None:
        _refuse_mismatch(out_dir, manifest, model_entry, model=True)
        for entry in manifest.get("shards", []):
            try:
                path, index = out_dir / entry["file"], int(entry["index"])
                intact = path.is_file() and path.stat().st_size == entry["bytes"]
                intact = intact and sha256_file(path) == entry["sha256"]
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelFileError(f"{manifest_path}: malformed shard entry {entry!r} ({exc})") from None
            if intact:
                done[index] = entry
            else:
                warnings.warn(f"{path}: missing or damaged (checksum mismatch); writing it again", stacklevel=2)
    elif out_dir.is_dir() and any(out_dir.glob("shard_*.npz")):
        raise ConfigError(f"{out_dir}: holds shard files but no {MANIFEST_NAME}; use an empty --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".shard_*.npz.*"):  # temporaries of a killed writer (atomic_path names)
        stale.unlink(missing_ok=True)

    def write_manifest() -> None:
        shards = [done[k] for k in sorted(done)]
        complete_samples = sum(e["count"] for e in shards)
        write_json_atomic(
            manifest_path,
            {
                **settings,
                "model": {**model_entry, "path": str(Path(model_path).resolve())},
                "generator": {"dfmvr_version": __version__, "command": "dfmvr make-dataset", "device": str(device)},
                "complete": len(shards) == num_shards,
                "samples_complete": complete_samples,
                "shards": shards,
            },
        )

    sampler = FaceSceneSampler(model, scene_config)
    renderer = SceneRenderer(model, scene_config, crop, device=device)
    stream = SPLIT_STREAMS[split]
    written_samples = written_shards = 0
    start_time = time.perf_counter()
    initial = sum(e["count"] for e in done.values())
    with tqdm(total=count, initial=initial, unit="sample", disable=not progress, desc=f"make-dataset {split}") as bar:
        for k in range(num_shards):
            if k in done:
                continue
            if max_shards is not None and written_shards >= max_shards:
                break
            indices = list(range(k * shard_size, min(count, (k + 1) * shard_size)))
            parts: list[dict[str, np.ndarray]] = []
            for b in range(0, len(indices), batch_size):
                chunk = indices[b : b + batch_size]
                parts.append(generate_samples(sampler, renderer, chunk, seed, stream, batch_size))
                bar.update(len(chunk))
            arrays = {key: np.concatenate([p[key] for p in parts]) for key in _SHARD_KEYS}
            digest, size = write_npz_shard(out_dir / shard_name(k), arrays)
            done[k] = {
                "index": k,
                "file": shard_name(k),
                "first": indices[0],
                "count": len(indices),
                "sha256": digest,
                "bytes": size,
            }
            write_manifest()
            written_samples += len(indices)
            written_shards += 1
    if not manifest_path.exists() or written_shards == 0:
        write_manifest()  # records completion (or an empty start) even when nothing was left to write
    seconds = time.perf_counter() - start_time
    return DatasetSummary(
        out_dir=out_dir,
        split=split,
        samples_total=count,
        samples_written=written_samples,
        shards_total=num_shards,
        shards_written=written_shards,
        seconds=seconds,
        complete=len(done) == num_shards,
    )


# ---------------------------------------------------------------------------------------------------------- reader
def _fit(values: np.ndarray, size: int) -> np.ndarray:
    """Truncate or zero-pad the last dim to ``size``."""
    if values.shape[-1] >= size:
        return values[..., :size]
    pad = np.zeros((*values.shape[:-1], size - values.shape[-1]), values.dtype)
    return np.concatenate((values, pad), axis=-1)


class SyntheticMultiViewDataset(Dataset):
    """Reads a dataset written by :func:`make_dataset` (torch ``Dataset``; shards memory-mapped lazily).

    Each item is a dict of tensors (``V`` views, crop side ``S``):

    * ``images`` (V, 3, S, S) float32 in [0, 1]; ``parts`` (V, S, S) int64 FacePart labels; ``valid`` (V,) bool
      (all True: every synthetic view exists);
    * ``landmarks`` (V, 68, 2) float32 crop pixels; ``visibility`` (V, 68) bool;
    * ``K_crop`` (V, 3, 3) float32 ``= [A; 0 0 1]·K`` (what losses render with); ``K`` (V, 3, 3), ``A`` (V, 2, 3)
      float32;
    * ``T_camera_from_model`` (V, 4, 4) float32 metres; ``pose_label`` (V, 6) float32 (the network's pose target);
    * ``gt_identity``, ``gt_expression``, ``gt_albedo``: float32 sized to ``coefficient_sizes`` (truncated or
      zero-padded; the model's sizes when None), ``gt_identity_full``, ``gt_expression_full``, ``gt_albedo_full``:
      the full ground truth; ``gt_lighting`` (V, 27) float32;
    * ``landmarks_3d`` (68, 3) float32 metres, model frame; ``sample_index`` int64 scalar.

    Vertices come from :func:`gt_vertices` with the same model.

    Args:
        root: the dataset folder.
        coefficient_sizes: the network's coefficient sizes (ground truth is fitted to them).
        verify: ``"size"`` (default: manifest, every shard present with the listed size, readable ZIP and member
            shapes; cheap) or ``"sha256"`` (also hashes every shard: reads the whole dataset once).
        allow_incomplete: read the complete shards of an unfinished dataset instead of refusing it.
        max_open_shards: shards kept memory-mapped at once per process (one file descriptor each).

    Raises:
        ModelFileError: missing/invalid manifest, missing/truncated/corrupt shard or checksum mismatch (named).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        coefficient_sizes: CoefficientSizes | None = None,
        verify: str = "size",
        allow_incomplete: bool = False,
        max_open_shards: int = 32,
    ) -> None:
        if verify not in ("size", "sha256"):
            raise ConfigError(f"verify: expected 'size' or 'sha256', got {verify!r}")
        self.root = Path(root)
        self.manifest = _read_manifest(self.root / MANIFEST_NAME)
        m = self.manifest
        if not m.get("complete") and not allow_incomplete:
            raise ModelFileError(
                f"{self.root / MANIFEST_NAME}: the dataset is incomplete ({m.get('samples_complete')} of "
                f"{m.get('count')} samples); finish it with dfmvr make-dataset or pass allow_incomplete=True"
            )
        try:
            self.model_sizes = CoefficientSizes(**m["model"]["coefficient_sizes"])
            self.crop_camera = from_mapping(CropCamera, m["crop_camera"])
            self.camera_names = tuple(m["camera_names"])
            shards = sorted(m["shards"], key=lambda e: e["index"])
            files = [(e["file"], int(e["count"]), int(e["bytes"]), e["sha256"]) for e in shards]
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelFileError(f"{self.root / MANIFEST_NAME}: malformed manifest ({exc})") from None
        if coefficient_sizes is not None and not isinstance(coefficient_sizes, CoefficientSizes):
            raise ConfigError(f"coefficient_sizes: expected CoefficientSizes, got {type(coefficient_sizes).__name__}")
        self.coefficient_sizes = coefficient_sizes or self.model_sizes
        self._files = files
        self._offsets = np.cumsum([0] + [c for _, c, _, _ in files])
        self._max_open_shards = _check_int("max_open_shards", max_open_shards, 1)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._members = []
        for k, (name, n, size, digest) in enumerate(files):
            path = self.root / name
            if not path.is_file():
                raise ModelFileError(f"{path}: shard listed in the manifest is missing")
            if path.stat().st_size != size:
                raise ModelFileError(
                    f"{path}: {path.stat().st_size} bytes, manifest says {size} (truncated or rewritten shard)"
                )
            if verify == "sha256" and sha256_file(path) != digest:
                raise ModelFileError(f"{path}: checksum mismatch (sha256 differs from the manifest; corrupt shard)")
            members = npz_members(path)
            self._check_shard(k, {key: m.shape for key, m in members.items()}, n)
            self._members.append(members)

    @property
    def model_fingerprint(self) -> str:
        """``MorphableModel.fingerprint()`` of the model the dataset was rendered with."""
        return str(self.manifest["model"]["fingerprint"])

    @property
    def num_views(self) -> int:
        return len(self.camera_names)

    def _open(self, k: int) -> dict[str, np.ndarray]:
        """The memory-mapped arrays of shard ``k`` (least-recently-used cache of ``max_open_shards`` files)."""
        arrays = self._cache.get(k)
        if arrays is None:
            arrays = open_npz_memmaps(self.root / self._files[k][0], self._members[k])
            self._cache[k] = arrays
            while len(self._cache) > self._max_open_shards:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(k)
        return arrays

    def _check_shard(self, k: int, shapes: Mapping[str, tuple[int, ...]], n: int) -> None:
        path = self.root / self._files[k][0]
        missing = [key for key in _SHARD_KEYS if key not in shapes]
        if missing:
            raise ModelFileError(f"{path}: missing arrays {missing}")
        v, s, sizes = self.num_views, self.crop_camera.size, self.model_sizes
        expected = {
            "crops": (n, v, s, s, 3),
            "parts": (n, v, s, s),
            "landmarks_crop": (n, v, 68, 2),
            "landmark_visibility": (n, v, 68),
            "A": (n, v, 2, 3),
            "K": (n, v, 3, 3),
            "T_camera_from_model": (n, v, 4, 4),
            "pose_label": (n, v, 6),
            "identity": (n, sizes.identity),
            "expression": (n, sizes.expression),
            "albedo": (n, sizes.albedo),
            "lighting": (n, v, sizes.lighting),
            "landmarks_3d": (n, 68, 3),
            "sample_index": (n,),
        }
        for key, shape in expected.items():
            if tuple(shapes[key]) != shape:
                raise ModelFileError(f"{path}: {key} has shape {tuple(shapes[key])}, expected {shape}")

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # memory maps are reopened in each worker process
        return state

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if isinstance(index, (torch.Tensor, np.integer)):
            index = int(index)
        if not isinstance(index, int) or not -n <= index < n:
            raise IndexError(f"index {index!r} out of range for a dataset of {n} samples")
        index %= n
        k = int(np.searchsorted(self._offsets, index, side="right") - 1)
        i = index - int(self._offsets[k])
        a = self._open(k)
        sizes = self.coefficient_sizes
        crops = torch.from_numpy(np.array(a["crops"][i]))  # (V, S, S, 3) uint8, copied out of the map
        A = torch.from_numpy(np.array(a["A"][i]))
        K = torch.from_numpy(np.array(a["K"][i]))
        identity, expression, albedo = (np.array(a[key][i]) for key in ("identity", "expression", "albedo"))
        return {
            "images": crops.permute(0, 3, 1, 2).float().div_(255.0),
            "parts": torch.from_numpy(np.array(a["parts"][i])).long(),
            "valid": torch.ones(crops.shape[0], dtype=torch.bool),
            "landmarks": torch.from_numpy(np.array(a["landmarks_crop"][i])),
            "visibility": torch.from_numpy(np.array(a["landmark_visibility"][i])),
            "K_crop": intrinsics_in_crop(K, A).float(),
            "K": K.float(),
            "A": A.float(),
            "T_camera_from_model": torch.from_numpy(np.array(a["T_camera_from_model"][i])).float(),
            "pose_label": torch.from_numpy(np.array(a["pose_label"][i])),
            "gt_identity": torch.from_numpy(_fit(identity, sizes.identity)),
            "gt_expression": torch.from_numpy(_fit(expression, sizes.expression)),
            "gt_albedo": torch.from_numpy(_fit(albedo, sizes.albedo)),
            "gt_identity_full": torch.from_numpy(identity),
            "gt_expression_full": torch.from_numpy(expression),
            "gt_albedo_full": torch.from_numpy(albedo),
            "gt_lighting": torch.from_numpy(np.array(a["lighting"][i])),
            "landmarks_3d": torch.from_numpy(np.array(a["landmarks_3d"][i])),
            "sample_index": torch.tensor(int(a["sample_index"][i]), dtype=torch.int64),
        }


def gt_vertices(model: MorphableModel, sample: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Ground-truth vertices of a sample (or a collated batch) from its full coefficients.

    Args:
        model: the model the dataset was rendered with (``fingerprint()`` equal to the dataset's
            ``model_fingerprint``).
        sample: an item of :class:`SyntheticMultiViewDataset` (``gt_identity_full`` (K_id,), ``gt_expression_full``
            (K_exp,)) or a batch of them ((B, K)).

    Returns:
        (N, 3) or (B, N, 3) vertices in the model's dtype, metres, model frame.
    """
    identity = sample["gt_identity_full"]
    expression = sample["gt_expression_full"]
    single = identity.dim() == 1
    identity = identity[None] if single else identity
    expression = expression[None] if single else expression
    sizes = model.coefficient_sizes
    if identity.shape[-1] != sizes.identity or expression.shape[-1] != sizes.expression:
        raise ShapeError(
            f"sample: ground truth has {identity.shape[-1]} identity / {expression.shape[-1]} expression "
            f"coefficients, the model {sizes.identity} / {sizes.expression}; use the model the dataset was made with"
        )
    vertices = model.decode_shape(identity.to(model.device, model.dtype), expression.to(model.device, model.dtype))
    return vertices[0] if single else vertices
