"""Evaluate a trained checkpoint (and the mean-face baseline) on a synthetic benchmark split (paper Table I style).

The network runs on the benchmark's crops exactly as at training-time evaluation (:class:`MeshEvaluator`): face-part
masks from the landmarks (or the rendered labels), the predicted pose mapped to each real crop camera; its meshes are
scored against the ground-truth meshes with the paper's metric (:mod:`dfmvr_core.evaluation`: landmark alignment,
95 mm crop, point-to-plane ICP, RMSE in mm; plus scan-to-mesh). ``views`` restricts the input to some cameras (e.g.
``("front",)`` for the single-view baseline of the same network: DF-MVR is trained with view dropout, paper V-C).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data.dataloader import default_collate
from tqdm import tqdm

from dfmvr_core.atomic_io import write_json_atomic
from dfmvr_core.errors import ConfigError
from dfmvr_core.evaluation import (
    METRIC_DEFINITIONS,
    RIG_SCALE_RMSE_DEFINITION,
    RIG_SCALE_RMSE_KEY,
    SCALED_RMSE_DEFINITION,
    SCALED_RMSE_KEY,
    error_map_image,
    save_png,
    statistics,
    summarize,
)
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.inference.checkpoint import Checkpoint, load_checkpoint
from dfmvr_core.morphable import MorphableModel, load_morphable_model
from dfmvr_training.data import SyntheticMultiViewDataset, gt_vertices
from dfmvr_training.error_sources import ERROR_SOURCE_DEFINITIONS, error_sources
from dfmvr_training.evaluation import (
    MeshIndices,
    evaluate_meshes,
    mean_face_baseline,
    model_indices,
    scale_aligned_rmse,
)
from dfmvr_training.step import decode_prediction
from dfmvr_training.train_data import MaskedViews

__all__ = [
    "CAMERA_ORDER",
    "BenchmarkSamples",
    "evaluate_checkpoint",
    "load_benchmark",
    "load_benchmark_checkpoint",
    "predict_outputs",
    "rig_metric_scales",
    "rig_scaled_rmse",
    "view_mask",
]

CAMERA_ORDER = ("left", "front", "right")


def view_mask(views: Sequence[str] | None, count: int) -> torch.Tensor:
    """``(count,)`` bool: which cameras of :data:`CAMERA_ORDER` the network is given (None: all).

    Raises:
        ConfigError: an unknown camera name or an empty list.
    """
    if views is None:
        return torch.ones(count, dtype=torch.bool)
    unknown = sorted(set(views) - set(CAMERA_ORDER))
    if unknown or not views:
        raise ConfigError(f"views: expected a non-empty subset of {list(CAMERA_ORDER)}, got {list(views)}")
    return torch.tensor([name in views for name in CAMERA_ORDER])


_view_mask = view_mask  # the former private name


@dataclass(frozen=True)
class BenchmarkSamples:
    """The first ``count`` samples of a benchmark split, ready for the network and the metric.

    Attributes:
        benchmark: the split's folder.
        model: the morphable model it was rendered with (float32, CPU).
        samples: ``count`` dataset items with ``input_parts`` (:class:`MaskedViews`), CPU tensors.
        gt: ``(count, N, 3)`` float64 ground-truth vertices, metres, model frame.
        faces: ``(F, 3)`` int64 triangles of the model.
        indices: the model's landmark / nose-tip vertices (metric alignment and crop centre).
        crop: the dataset's canonical crop camera.
        mask_source: where ``input_parts`` came from (``landmarks`` or ``rendered``).
        manifest: the split's manifest (identifies the data; compared on resume).
    """

    benchmark: Path
    model: MorphableModel
    samples: list[dict[str, Any]] = field(repr=False)
    gt: torch.Tensor = field(repr=False)
    faces: np.ndarray = field(repr=False)
    indices: MeshIndices = field(repr=False)
    crop: CropCamera
    mask_source: str
    manifest: dict[str, Any] = field(repr=False)

    @property
    def count(self) -> int:
        """Number of samples."""
        return len(self.samples)


def load_benchmark(
    benchmark: str | Path,
    model_path: str | Path,
    *,
    mask_source: str = "landmarks",
    count: int | None = None,
) -> BenchmarkSamples:
    """Read the first ``count`` samples (None: all) of ``benchmark`` and their ground-truth meshes.

    Raises:
        ConfigError: the benchmark was rendered with another morphable model, or a bad ``count``.
        ModelFileError: missing or damaged benchmark / model files (named).
    """
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ConfigError(f"count: expected a number of samples >= 1 or None, got {count!r}")
    model = load_morphable_model(model_path).to(dtype=torch.float32)
    dataset = SyntheticMultiViewDataset(benchmark, coefficient_sizes=model.coefficient_sizes)
    if dataset.model_fingerprint != model.fingerprint():
        raise ConfigError(f"benchmark: {benchmark} was rendered with another morphable model than {model_path}")
    crop = dataset.crop_camera
    samples_ds = MaskedViews(dataset, mask_source, crop.size)
    n = len(dataset) if count is None else min(count, len(dataset))
    samples = [samples_ds[i] for i in range(n)]
    gt = gt_vertices(model, default_collate(samples)).detach().double()
    return BenchmarkSamples(
        benchmark=Path(benchmark),
        model=model,
        samples=samples,
        gt=gt,
        faces=model.triangles.cpu().numpy(),
        indices=model_indices(model),
        crop=crop,
        mask_source=mask_source,
        manifest=dict(dataset.manifest),
    )


def load_benchmark_checkpoint(
    checkpoint: str | Path, bench: BenchmarkSamples, *, network: str | None = None
) -> Checkpoint:
    """:func:`load_checkpoint` checked against the benchmark's morphable model (sizes, expression kind, fingerprint).

    Raises:
        ModelFileError: missing, corrupt or mismatching checkpoint (naming the file and the problem).
    """
    model = bench.model
    return load_checkpoint(
        checkpoint,
        config=network,
        sizes=model.coefficient_sizes,
        expression_kind=model.expression_kind,
        model_fingerprint=model.fingerprint(),
    )


def predict_outputs(
    net: torch.nn.Module,
    bench: BenchmarkSamples,
    views: torch.Tensor,
    *,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``net`` (any network with DFMVRNet's ``forward(images, parts, valid)``) on every benchmark sample.

    Args:
        net: the network, in eval mode, on ``device``.
        bench: the samples.
        views: ``(V,)`` bool camera mask (:func:`view_mask`), and-ed with each sample's ``valid``.
        batch_size: samples per forward pass.
        device: where the network runs; decoding happens on the CPU.
        progress: show a tqdm bar.

    Returns:
        ``vertices (count, N, 3)`` float64 predicted vertices, metres, model frame; ``identity (count, K_id)`` and
        ``expression (count, K_exp)`` float32 predicted coefficients (the network's sizes).
    """
    vertices, identity, expression = [], [], []
    with torch.inference_mode():
        for start in tqdm(range(0, bench.count, batch_size), desc="network", disable=not progress):
            batch = default_collate(bench.samples[start : start + batch_size])
            valid = batch["valid"] & views
            raw = net(batch["images"].to(device), batch["input_parts"].to(device), valid.to(device))
            out = {k: v.float().cpu() for k, v in raw.items()}
            decoded, _, _ = decode_prediction(bench.model, out, batch["K_crop"], bench.crop)
            vertices.append(decoded.double())
            identity.append(out["identity"])
            expression.append(out["expression"])
    return torch.cat(vertices), torch.cat(identity), torch.cat(expression)


def rig_metric_scales(bench: BenchmarkSamples, predictions: torch.Tensor, views: torch.Tensor) -> np.ndarray:
    """The face-size factor the reconstructor's rig gives each prediction (``metric_pose``, see
    :mod:`dfmvr_core.inference.metric_pose`): the given views' 2D landmarks (the benchmark's) triangulated with the
    crops' intrinsics ``K_crop`` and the rig's extrinsics (``T_camera_from_model`` of each view relative to the first
    given one, the same for every sample of a rig), and their inner 51 fitted by a similarity from the prediction's.

    Args:
        bench: the samples.
        predictions: ``(count, N, 3)`` model-frame vertices, metres.
        views: ``(V,)`` bool, the cameras given to the network.

    Returns:
        ``(count,)`` float64 factors; 1.0 where fewer than two views are given or the fit is refused (the
        reconstructor then keeps the decoded size too).
    """
    from dfmvr_core.inference.metric_pose import metric_pose_from_landmarks

    landmark_vertices = bench.model.landmarks68.cpu().numpy()
    scales = np.ones(bench.count)
    for i, sample in enumerate(bench.samples):
        given = (sample["valid"] & views).numpy()
        if given.sum() < 2:
            continue
        T = sample["T_camera_from_model"].double().numpy()
        T_camera_from_rig = T @ np.linalg.inv(T[int(np.flatnonzero(given)[0])])
        shape_landmarks = predictions[i].double().numpy()[landmark_vertices]
        K = sample["K_crop"].double().numpy()
        metric, _ = metric_pose_from_landmarks(
            sample["landmarks"].double().numpy(), given, K, T_camera_from_rig, shape_landmarks
        )
        if metric is not None:
            scales[i] = metric.scale
    return scales


def rig_scaled_rmse(
    bench: BenchmarkSamples, predictions: torch.Tensor, views: torch.Tensor, *, progress: bool = False
) -> list[float]:
    """Per sample, ``rmse_mm`` of the prediction brought to the rig's face size (:func:`rig_metric_scales`), mm."""
    scales = torch.as_tensor(rig_metric_scales(bench, predictions, views), dtype=predictions.dtype)
    scaled = predictions * scales[:, None, None]
    metrics = evaluate_meshes(scaled, bench.gt, bench.faces, indices=bench.indices, progress=progress)
    return [m.rmse_mm for m in metrics]


def evaluate_checkpoint(
    checkpoint: str | Path | None,
    benchmark: str | Path,
    model_path: str | Path,
    out_dir: str | Path,
    *,
    network: str | None = None,
    views: Sequence[str] | None = None,
    mask_source: str = "landmarks",
    count: int | None = None,
    batch_size: int = 8,
    error_maps: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``checkpoint`` (None: the mean face only) on ``benchmark``; write ``summary.json`` and error maps.

    ``network`` (a config name) is checked against the checkpoint when given; None accepts the checkpoint's own
    config (e.g. an ablation variant of Table IV trained with ``ablation: v1``).

    Returns:
        The summary: per method (``network`` and ``mean_face``) RMSE / scan-to-mesh / scale-aligned RMSE
        (``rmse_mm_with_scale``) mean, std and median in mm, the count, the views used and the per-sample RMSEs; the
        network's reduction of both RMSEs against the mean face.
    """
    out_dir = Path(out_dir)
    bench = load_benchmark(benchmark, model_path, mask_source=mask_source, count=count)
    n, gt, faces = bench.count, bench.gt, bench.faces
    mask = view_mask(views, bench.samples[0]["valid"].shape[0])
    summary: dict[str, Any] = {
        "benchmark": str(benchmark),
        "count": n,
        "views": [c for c, used in zip(CAMERA_ORDER, mask.tolist(), strict=True) if used],
        "metric": "point-to-plane RMSE (mm) after landmark alignment + ICP on the 95 mm front-face region; "
        "scan_to_mesh_mm = mean ground-truth-to-surface distance",
        "definitions": {
            **METRIC_DEFINITIONS,
            SCALED_RMSE_KEY: SCALED_RMSE_DEFINITION,
            RIG_SCALE_RMSE_KEY: RIG_SCALE_RMSE_DEFINITION,
        },
        "methods": {},
    }
    results: dict[str, list[Any]] = {"mean_face": mean_face_baseline(bench.model, gt, progress=progress)}
    if checkpoint is not None:
        net = load_benchmark_checkpoint(checkpoint, bench, network=network).build_network("cpu")
        predictions, identity, expression = predict_outputs(net, bench, mask, batch_size=batch_size, progress=progress)
        results["network"] = evaluate_meshes(predictions, gt, faces, indices=bench.indices, progress=progress)
        summary["checkpoint"] = str(checkpoint)
        summary["error_sources"] = error_sources(bench, identity, expression, progress=progress)
        summary["definitions"].update(ERROR_SOURCE_DEFINITIONS)
    predicted = {"mean_face": bench.model.mean_shape.detach().cpu().double().expand_as(gt)}
    if checkpoint is not None:
        predicted["network"] = predictions
    for name, metrics in results.items():
        entry = summarize(metrics)
        entry["rmse_mm_per_sample"] = [round(float(m.rmse_mm), 4) for m in metrics]
        scaled = scale_aligned_rmse(predicted[name], gt, faces, indices=bench.indices, progress=progress)
        entry[SCALED_RMSE_KEY] = statistics(scaled)
        entry[f"{SCALED_RMSE_KEY}_per_sample"] = [round(float(v), 4) for v in scaled]
        # the mean face "sees" no camera: the rig measures its size from all of them, whatever the network is given
        rig_views = mask if name == "network" else torch.ones_like(mask)
        rig = rig_scaled_rmse(bench, predicted[name], rig_views, progress=progress)
        entry[RIG_SCALE_RMSE_KEY] = statistics(rig)
        entry[f"{RIG_SCALE_RMSE_KEY}_per_sample"] = [round(float(v), 4) for v in rig]
        summary["methods"][name] = entry
    maps_dir = out_dir / "error_maps"
    best = results.get("network", results["mean_face"])
    for i in range(min(error_maps, n)):
        image = error_map_image(gt[i].numpy(), faces, best[i].per_vertex_error_mm, max_mm=5.0, size=384)
        save_png(maps_dir / f"{i:05d}.png", image)
    if "network" in summary["methods"]:
        reductions = {
            "rmse_mm": "rmse_reduction_vs_mean_face",
            SCALED_RMSE_KEY: "rmse_with_scale_reduction_vs_mean_face",
            RIG_SCALE_RMSE_KEY: "rmse_rig_scale_reduction_vs_mean_face",
        }
        for key, name in reductions.items():
            net_rmse = summary["methods"]["network"][key]["mean"]
            base_rmse = summary["methods"]["mean_face"][key]["mean"]
            summary[name] = round(float(1.0 - net_rmse / base_rmse), 4) if base_rmse else None
    write_json_atomic(out_dir / "summary.json", summary)
    return summary
