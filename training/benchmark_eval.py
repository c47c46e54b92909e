"""Evaluate a trained checkpoint (and the mean-face baseline) on a synthetic benchmark split (paper Table I style).

The network runs on the benchmark's crops exactly as at training-time evaluation (:class:`MeshEvaluator`): face-part
masks from the landmarks (or the rendered labels), the predicted pose mapped to each real crop camera; its meshes are
scored against the ground-truth meshes with the paper's metric (:mod:`dfmvr_core.evaluation`: landmark alignment,
95 mm crop, point-to-plane ICP, RMSE in mm; plus scan-to-mesh). ``views`` restricts the input to some cameras (e.g.
``("front",)`` for the single-view baseline of the same network: DF-MVR is trained with view dropout, paper V-C).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data.dataloader import default_collate
from tqdm import tqdm

from dfmvr_core.atomic_io import write_json_atomic
from dfmvr_core.errors import ConfigError
from dfmvr_core.evaluation import error_map_image, save_png, summarize
from dfmvr_core.inference.checkpoint import load_checkpoint
from dfmvr_core.morphable import load_morphable_model
from dfmvr_training.data import SyntheticMultiViewDataset, gt_vertices
from dfmvr_training.evaluation import evaluate_meshes, mean_face_baseline, model_indices
from dfmvr_training.step import decode_prediction
from dfmvr_training.train_data import MaskedViews

__all__ = ["CAMERA_ORDER", "evaluate_checkpoint"]

CAMERA_ORDER = ("left", "front", "right")


def _view_mask(views: Sequence[str] | None, count: int) -> torch.Tensor:
    if views is None:
        return torch.ones(count, dtype=torch.bool)
    unknown = sorted(set(views) - set(CAMERA_ORDER))
    if unknown or not views:
        raise ConfigError(f"views: expected a non-empty subset of {list(CAMERA_ORDER)}, got {list(views)}")
    return torch.tensor([name in views for name in CAMERA_ORDER])


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
        The summary: per method (``network`` and ``mean_face``) RMSE / scan-to-mesh mean, std and median in mm, the
        count, the views used and the per-sample RMSEs.
    """
    out_dir = Path(out_dir)
    model = load_morphable_model(model_path).to(dtype=torch.float32)
    dataset = SyntheticMultiViewDataset(benchmark, coefficient_sizes=model.coefficient_sizes)
    if dataset.model_fingerprint != model.fingerprint():
        raise ConfigError(f"benchmark: {benchmark} was rendered with another morphable model than {model_path}")
    crop = dataset.crop_camera
    samples_ds = MaskedViews(dataset, mask_source, crop.size)
    n = len(dataset) if count is None else min(count, len(dataset))
    samples = [samples_ds[i] for i in range(n)]
    view_mask = _view_mask(views, samples[0]["valid"].shape[0])
    gt = gt_vertices(model, default_collate(samples)).detach().double()
    faces = model.triangles.cpu().numpy()
    indices = model_indices(model)
    summary: dict[str, Any] = {
        "benchmark": str(benchmark),
        "count": n,
        "views": [c for c, used in zip(CAMERA_ORDER, view_mask.tolist(), strict=True) if used],
        "metric": "point-to-plane RMSE (mm) after landmark alignment + ICP on the 95 mm front-face region; "
        "scan_to_mesh_mm = mean ground-truth-to-surface distance",
        "methods": {},
    }
    results: dict[str, list[Any]] = {"mean_face": mean_face_baseline(model, gt, progress=progress)}
    predictions = None
    if checkpoint is not None:
        ckpt = load_checkpoint(
            checkpoint,
            config=network,
            sizes=model.coefficient_sizes,
            expression_kind=model.expression_kind,
            model_fingerprint=model.fingerprint(),
        )
        net = ckpt.build_network("cpu")
        outputs = []
        with torch.inference_mode():
            for start in tqdm(range(0, n, batch_size), desc="network", disable=not progress):
                batch = default_collate(samples[start : start + batch_size])
                valid = batch["valid"] & view_mask
                out = {k: v.float() for k, v in net(batch["images"], batch["input_parts"], valid).items()}
                vertices, _, _ = decode_prediction(model, out, batch["K_crop"], crop)
                outputs.append(vertices.double())
        predictions = torch.cat(outputs)
        results["network"] = evaluate_meshes(predictions, gt, faces, indices=indices, progress=progress)
        summary["checkpoint"] = str(checkpoint)
    for name, metrics in results.items():
        entry = summarize(metrics)
        entry["rmse_mm_per_sample"] = [round(float(m.rmse_mm), 4) for m in metrics]
        summary["methods"][name] = entry
    maps_dir = out_dir / "error_maps"
    best = results.get("network", results["mean_face"])
    for i in range(min(error_maps, n)):
        image = error_map_image(gt[i].numpy(), faces, best[i].per_vertex_error_mm, max_mm=5.0, size=384)
        save_png(maps_dir / f"{i:05d}.png", image)
    if "network" in summary["methods"]:
        net_rmse = summary["methods"]["network"]["rmse_mm"]["mean"]
        base_rmse = summary["methods"]["mean_face"]["rmse_mm"]["mean"]
        summary["rmse_reduction_vs_mean_face"] = round(float(1.0 - net_rmse / base_rmse), 4) if base_rmse else None
    write_json_atomic(out_dir / "summary.json", summary)
    return summary
