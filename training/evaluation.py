"""Evaluation runs: predicted meshes against ground truth with the paper's metric (``dfmvr eval``).

Three entry points, all built on :func:`dfmvr_core.evaluation.evaluate_pair` (see
:mod:`dfmvr_core.evaluation.metrics` for the metric's definition):

* :func:`evaluate_directory` — pairs the files of a prediction folder and a ground-truth folder by stem,
  writes ``summary.json``, one ``samples/<stem>.json`` per pair and ``error_maps/<stem>.png``; resumable.
* :func:`evaluate_meshes` — in-memory batches (e.g. the network's decoded vertices), for the trainer.
* :func:`mean_face_baseline` — the morphable model's mean shape against each ground truth: the score a
  network must beat.

Landmarks and the nose tip come from :class:`MeshIndices` (vertex indices of one topology, e.g. the
morphable model's 68 iBUG landmarks, nose tip = landmark 30) or, for ``.npz`` meshes, from a stored
``landmarks`` (K, 3) array (metres, same frame as the mesh).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dfmvr_core.atomic_io import write_json_atomic
from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError, ShapeError
from dfmvr_core.evaluation import (
    IBUG_NOSE_TIP,
    METRIC_DEFINITIONS,
    EvalConfig,
    PairMetrics,
    error_map_image,
    evaluate_pair,
    save_png,
    summarize,
)
from dfmvr_core.mesh_io import MESH_SUFFIXES, read_mesh
from dfmvr_core.morphable import MorphableModel
from dfmvr_core.morphable.npz_format import UNIT_TO_METRES

__all__ = [
    "MeshIndices",
    "evaluate_directory",
    "evaluate_meshes",
    "mean_face_baseline",
    "model_indices",
    "scale_aligned_rmse",
    "summary_table",
]


@dataclass(frozen=True)
class MeshIndices:
    """Vertex indices of the landmarks and the nose tip on one mesh topology.

    Attributes:
        landmarks: ``(K,)`` int vertex indices (e.g. the model's 68 iBUG landmarks), or None.
        nose: vertex index of the nose tip (cropping centre), or None (``landmarks[30]`` when K = 68).
        num_vertices: vertex count of the topology ``landmarks`` belong to; meshes with another count get no
            landmarks from here. None: any mesh (the caller vouches for the indices).
        nose_num_vertices: the same for ``nose`` (default: ``num_vertices``). A nose index given for the
            ground truth's own topology (``dfmvr eval --nose-index``) uses None.
    """

    landmarks: np.ndarray | None = None
    nose: int | None = None
    num_vertices: int | None = None
    nose_num_vertices: int | None = -1

    def __post_init__(self) -> None:
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks)
            if lm.ndim != 1 or lm.dtype.kind not in "iu" or len(lm) < 3:
                raise ShapeError(
                    f"landmarks: expected (K,) integer vertex indices with K >= 3, got {lm.shape} {lm.dtype}"
                )
            object.__setattr__(self, "landmarks", lm.astype(np.int64))
        if self.nose is None and self.landmarks is not None and len(self.landmarks) == 68:
            object.__setattr__(self, "nose", int(self.landmarks[IBUG_NOSE_TIP]))
        if self.nose_num_vertices == -1:
            object.__setattr__(self, "nose_num_vertices", self.num_vertices)

    def applies_to(self, vertices: np.ndarray) -> bool:
        """Whether ``landmarks`` are meant for a mesh of ``len(vertices)`` vertices."""
        return self.num_vertices is None or len(vertices) == self.num_vertices

    def landmark_points(self, vertices: np.ndarray, name: str) -> np.ndarray | None:
        """``(K, 3)`` landmark points of ``vertices``, or None (no landmarks, or another topology)."""
        if self.landmarks is None or not self.applies_to(vertices):
            return None
        if self.landmarks.max() >= len(vertices):
            raise ShapeError(f"{name}: landmark index {self.landmarks.max()} out of range for {len(vertices)} vertices")
        return vertices[self.landmarks]

    def nose_point(self, vertices: np.ndarray, name: str) -> np.ndarray | None:
        """``(3,)`` nose tip of ``vertices``, or None."""
        if self.nose is None or (self.nose_num_vertices is not None and len(vertices) != self.nose_num_vertices):
            return None
        if not 0 <= self.nose < len(vertices):
            raise ShapeError(f"{name}: nose index {self.nose} out of range for {len(vertices)} vertices")
        return vertices[self.nose]

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (for summaries)."""
        return {
            "landmarks": None if self.landmarks is None else len(self.landmarks),
            "nose_index": self.nose,
            "num_vertices": self.num_vertices,
            "nose_num_vertices": self.nose_num_vertices,
        }


def model_indices(model: MorphableModel) -> MeshIndices:
    """The morphable model's 68 iBUG landmark vertices and nose tip (landmark 30), for meshes of its topology."""
    landmarks = model.landmarks68.detach().cpu().numpy().astype(np.int64)
    return MeshIndices(landmarks=landmarks, nose=int(landmarks[IBUG_NOSE_TIP]), num_vertices=model.num_vertices)


def _to_numpy_list(name: str, meshes: Any) -> list[np.ndarray]:
    """``(B, N, 3)`` tensor/array or a sequence of ``(N_b, 3)`` → list of float64 arrays."""
    if isinstance(meshes, torch.Tensor):
        meshes = meshes.detach().to("cpu", torch.float64).numpy()
    if isinstance(meshes, np.ndarray):
        if meshes.ndim != 3 or meshes.shape[-1] != 3:
            raise ShapeError(f"{name}: expected shape (B, N, 3), got {meshes.shape}")
        return [np.asarray(m, dtype=np.float64) for m in meshes]
    out = []
    for i, mesh in enumerate(meshes):
        if isinstance(mesh, torch.Tensor):
            mesh = mesh.detach().to("cpu", torch.float64).numpy()
        out.append(np.asarray(mesh, dtype=np.float64))
        if out[-1].ndim != 2 or out[-1].shape[-1] != 3:
            raise ShapeError(f"{name}[{i}]: expected shape (N, 3), got {out[-1].shape}")
    return out


def _faces_numpy(faces: Any) -> np.ndarray:
    if isinstance(faces, torch.Tensor):
        faces = faces.detach().cpu().numpy()
    return np.asarray(faces)


def evaluate_meshes(
    pred_vertices: Any,
    gt_vertices: Any,
    faces: Any,
    *,
    gt_faces: Any = None,
    indices: MeshIndices | None = None,
    config: EvalConfig | None = None,
    progress: bool = False,
) -> list[PairMetrics]:
    """Evaluate in-memory predictions against ground truths, pair by pair.

    Args:
        pred_vertices: ``(B, N, 3)`` tensor/array or a sequence of ``(N, 3)``, metres (any frame).
        gt_vertices: ``(B, N_g, 3)`` or a sequence of ``(N_g_b, 3)``, metres.
        faces: ``(F, 3)`` int triangles of the predictions (tensor or array).
        gt_faces: triangles of the ground truths (default: ``faces``, i.e. the same topology).
        indices: landmarks (initial alignment) and nose tip (crop centre) as vertex indices, applied to the
            predictions and to ground truths of their topology (e.g. :func:`model_indices`). The nose tip is
            required; without landmarks the ICP starts from the meshes as given.
        config: metric settings (default: the paper's protocol).
        progress: show a tqdm bar.

    Returns:
        One :class:`~dfmvr_core.evaluation.PairMetrics` per pair (``summarize`` them for mean/std/median).

    Raises:
        ShapeError: batch sizes differ, bad shapes, or no nose tip for a ground truth.
    """
    preds = _to_numpy_list("pred_vertices", pred_vertices)
    gts = _to_numpy_list("gt_vertices", gt_vertices)
    if len(preds) != len(gts):
        raise ShapeError(f"pred_vertices / gt_vertices: {len(preds)} predictions but {len(gts)} ground truths")
    pred_f = _faces_numpy(faces)
    gt_f = pred_f if gt_faces is None else _faces_numpy(gt_faces)
    indices = indices or MeshIndices()
    results = []
    for i, (pred, gt) in enumerate(tqdm(list(zip(preds, gts, strict=True)), desc="eval", disable=not progress)):
        results.append(_evaluate_one(pred, pred_f, gt, gt_f, indices, None, None, config, f"sample {i}"))
    return results


def scale_aligned_rmse(
    pred_vertices: Any,
    gt_vertices: Any,
    faces: Any,
    *,
    indices: MeshIndices | None = None,
    progress: bool = False,
) -> list[float]:
    """Per pair, the companion of ``rmse_mm`` after a similarity alignment (``SCALED_RMSE_DEFINITION``: landmarks
    and ICP also fit one isotropic scale), mm. Same arguments as :func:`evaluate_meshes`."""
    config = EvalConfig(with_scale=True)
    metrics = evaluate_meshes(pred_vertices, gt_vertices, faces, indices=indices, config=config, progress=progress)
    return [m.rmse_mm for m in metrics]


def mean_face_baseline(
    model: MorphableModel,
    gt_vertices: Any,
    *,
    gt_faces: Any = None,
    config: EvalConfig | None = None,
    progress: bool = False,
) -> list[PairMetrics]:
    """The morphable model's mean shape evaluated against every ground truth (a trivial baseline).

    Ground truths of the model's topology get the model's landmarks and nose tip; others need
    ``gt_faces`` and, through :func:`evaluate_pair`, a nose tip (use :func:`evaluate_meshes` directly then).
    """
    gts = _to_numpy_list("gt_vertices", gt_vertices)
    mean = model.mean_shape.detach().to("cpu", torch.float64).numpy()
    return evaluate_meshes(
        [mean] * len(gts),
        gts,
        model.triangles,
        gt_faces=gt_faces,
        indices=model_indices(model),
        config=config,
        progress=progress,
    )


def _evaluate_one(
    pred_v: np.ndarray,
    pred_f: np.ndarray,
    gt_v: np.ndarray,
    gt_f: np.ndarray,
    indices: MeshIndices,
    pred_lm_file: np.ndarray | None,
    gt_lm_file: np.ndarray | None,
    config: EvalConfig | None,
    name: str,
) -> PairMetrics:
    """One pair: landmarks from the files or the indices, nose tip from the indices or the 68 gt landmarks."""
    pred_lm = pred_lm_file if pred_lm_file is not None else indices.landmark_points(pred_v, f"{name} prediction")
    gt_lm = gt_lm_file if gt_lm_file is not None else indices.landmark_points(gt_v, f"{name} ground truth")
    nose = indices.nose_point(gt_v, f"{name} ground truth")
    if nose is None and gt_lm is not None and len(gt_lm) == 68:
        nose = gt_lm[IBUG_NOSE_TIP]
    if nose is None:
        raise ShapeError(
            f"{name}: no nose tip for the ground truth ({len(gt_v)} vertices): give the nose vertex index of its "
            "topology (--nose-index), a model of the same topology (--model), or store 'landmarks' (68, 3) in "
            "its .npz"
        )
    if pred_lm is None or gt_lm is None:
        pred_lm = gt_lm = None  # no initial alignment: ICP starts from the meshes as given
    elif len(pred_lm) != len(gt_lm):
        raise ShapeError(f"{name}: {len(pred_lm)} predicted landmarks but {len(gt_lm)} ground-truth landmarks")
    return evaluate_pair(
        pred_v, pred_f, gt_v, gt_f, nose_tip=nose, pred_landmarks=pred_lm, gt_landmarks=gt_lm, config=config
    )


# ------------------------------------------------------------------------------------------------ directories
def _index_folder(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DfmvrError(f"{folder}: {what} folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in MESH_SUFFIXES:
            if path.stem in files:
                raise DfmvrError(
                    f"{folder}: two {what} meshes share the stem {path.stem!r}: {files[path.stem].name}, {path.name}"
                )
            files[path.stem] = path
    return files


def _load(path: Path, units: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Vertices (metres), faces and optional stored landmarks (metres) of one mesh file."""
    vertices, faces = read_mesh(path)
    landmarks = None
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "landmarks" in data.files:
                landmarks = np.asarray(data["landmarks"], dtype=np.float64)
                if landmarks.ndim != 2 or landmarks.shape[1] != 3 or not np.isfinite(landmarks).all():
                    raise ModelFileError(f"{path}: 'landmarks' must be finite (K, 3) points, got {landmarks.shape}")
    scale = UNIT_TO_METRES[units]
    return vertices * scale, faces, None if landmarks is None else landmarks * scale


def _check_units(name: str, units: str) -> None:
    if units not in UNIT_TO_METRES:
        raise ConfigError(f"{name}: unknown units {units!r}; expected one of {sorted(UNIT_TO_METRES)}")


def _read_sample(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """A finished sample's record, or None when absent, unreadable or made with other settings."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("settings") != settings:
        return None
    return record


def evaluate_directory(
    pred_dir: str | Path | None,
    gt_dir: str | Path,
    out_dir: str | Path,
    *,
    indices: MeshIndices | None = None,
    config: EvalConfig | None = None,
    pred_units: str = "m",
    gt_units: str = "m",
    baseline_model: MorphableModel | None = None,
    error_maps: bool = True,
    max_mm: float = 5.0,
    map_size: int = 512,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every prediction against the ground truth of the same file stem.

    Meshes are ``.ply``, ``.obj`` or ``.npz`` (``vertices``, ``faces``, optional ``landmarks`` (K, 3)).
    Writes, all atomically:

    * ``OUT/samples/<stem>.json`` — the pair's numbers (``PairMetrics.to_dict``) and the settings used;
    * ``OUT/error_maps/<stem>.png`` — the ground-truth face region coloured by point-to-plane error
      (0 to ``max_mm``), when ``error_maps``;
    * ``OUT/summary.json`` — definitions, settings, count, mean/std/median/min/max per metric (mm), the
      per-sample numbers and the stems found on one side only.

    Resumable: a pair whose sample JSON exists with the same settings (and whose error map exists, when
    asked for) is not evaluated again; its numbers are read back.

    Args:
        pred_dir: folder of predicted meshes, or None with ``baseline_model`` (its mean shape is the
            prediction for every ground truth).
        gt_dir: folder of ground-truth meshes.
        out_dir: output folder (created).
        indices: landmark / nose-tip vertex indices (:func:`model_indices` or :class:`MeshIndices`).
        config: metric settings (default: the paper's protocol).
        pred_units, gt_units: units of the files ("m", "dm", "cm", "mm"); converted to metres.
        baseline_model: see ``pred_dir``.
        error_maps: write the PNG error maps.
        max_mm: error shown red in the maps.
        map_size: error-map size in pixels.
        progress: show a tqdm bar.

    Returns:
        The summary written to ``summary.json``.

    Raises:
        DfmvrError: missing folders, no pairs, ambiguous stems; ModelFileError / ShapeError for a bad mesh
        (naming the file).
    """
    config = config or EvalConfig()
    _check_units("pred_units", pred_units)
    _check_units("gt_units", gt_units)
    if (pred_dir is None) == (baseline_model is None):
        raise DfmvrError("give either a prediction folder or a baseline model, not both or neither")
    if not (isinstance(max_mm, (int, float)) and np.isfinite(max_mm) and max_mm > 0):
        raise ConfigError(f"max_mm: expected a positive number of millimetres, got {max_mm!r}")
    if isinstance(map_size, bool) or not isinstance(map_size, int) or not 96 <= map_size <= 8192:
        raise ConfigError(f"map_size: expected an integer number of pixels in [96, 8192], got {map_size!r}")
    out_dir = Path(out_dir)
    gt_files = _index_folder(Path(gt_dir), "ground-truth")
    if baseline_model is not None:
        pred_files: dict[str, Path] = {}
        stems = sorted(gt_files)
        mean = baseline_model.mean_shape.detach().to("cpu", torch.float64).numpy()
        baseline_faces = baseline_model.triangles.detach().cpu().numpy()
        indices = indices or model_indices(baseline_model)
    else:
        pred_files = _index_folder(Path(pred_dir), "prediction")
        stems = sorted(set(pred_files) & set(gt_files))
    if not stems:
        raise DfmvrError(f"no prediction/ground-truth pairs with the same file stem in {pred_dir} and {gt_dir}")
    indices = indices or MeshIndices()
    settings = {
        "config": dataclasses.asdict(config),
        "pred_units": pred_units,
        "gt_units": gt_units,
        "indices": indices.describe(),
        "baseline": None if baseline_model is None else f"mean shape of {baseline_model.name}",
        "error_maps": {"max_mm": float(max_mm), "size": int(map_size)} if error_maps else None,
    }

    records: dict[str, dict[str, Any]] = {}
    resumed = 0
    for stem in tqdm(stems, desc="dfmvr eval", unit="pair", disable=not progress):
        sample_path = out_dir / "samples" / f"{stem}.json"
        map_path = out_dir / "error_maps" / f"{stem}.png"
        record = _read_sample(sample_path, settings)
        if record is not None and (not error_maps or map_path.is_file()):
            records[stem] = record
            resumed += 1
            continue
        gt_v, gt_f, gt_lm = _load(gt_files[stem], gt_units)
        if baseline_model is not None:
            pred_v, pred_f, pred_lm = mean, baseline_faces, None
        else:
            pred_v, pred_f, pred_lm = _load(pred_files[stem], pred_units)
        try:
            metrics = _evaluate_one(pred_v, pred_f, gt_v, gt_f, indices, pred_lm, gt_lm, config, stem)
        except ShapeError as exc:
            raise ShapeError(f"{stem} ({gt_files[stem]}): {exc}") from None
        if error_maps:
            region_vertices = gt_v[metrics.region_indices]
            image = error_map_image(region_vertices, metrics.region_faces, metrics.point_to_plane_mm, max_mm, map_size)
            save_png(map_path, image)
        record = {
            "stem": stem,
            "pred": None if baseline_model is not None else str(pred_files[stem]),
            "gt": str(gt_files[stem]),
            **metrics.to_dict(),
            "settings": settings,
        }
        write_json_atomic(sample_path, record)
        records[stem] = record

    summary = {
        "definitions": dict(METRIC_DEFINITIONS),
        "settings": settings,
        **summarize(list(records.values())),
        "resumed": resumed,
        "unmatched": {
            "pred_only": sorted(set(pred_files) - set(gt_files)),
            "gt_only": [] if baseline_model is not None else sorted(set(gt_files) - set(pred_files)),
        },
        "samples": {stem: {k: v for k, v in rec.items() if k != "settings"} for stem, rec in records.items()},
    }
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def summary_table(summary: dict[str, Any]) -> str:
    """A few human-readable lines of a summary (for the CLI)."""
    lines = [f"pairs        {summary['count']} ({summary.get('resumed', 0)} resumed)"]
    for key, label in (("rmse_mm", "RMSE p2plane"), ("scan_to_mesh_mm", "scan-to-mesh")):
        stats = summary[key]
        if stats["mean"] is not None:
            lines.append(
                f"{label} mean {stats['mean']:.4f} mm  std {stats['std']:.4f}  median {stats['median']:.4f}  "
                f"max {stats['max']:.4f}"
            )
    unmatched = summary.get("unmatched", {})
    for side, label in (
        ("pred_only", "predictions without ground truth"),
        ("gt_only", "ground truths without prediction"),
    ):
        stems = unmatched.get(side) or []
        if stems:
            shown = ", ".join(stems[:5]) + (", ..." if len(stems) > 5 else "")
            lines.append(f"{label}: {len(stems)} ({shown})")
    return "\n".join(lines)
