"""``dfmvr eval --compare``: several checkpoints (DF-MVR, the baselines) and the mean face on one benchmark, one table.

Every entry of a :class:`~dfmvr_training.compare_spec.CompareSpec` is scored on the same first ``eval_samples``
samples of the benchmark with the same metric as ``dfmvr eval --benchmark`` (built on
:mod:`dfmvr_training.benchmark_eval`, so the numbers are those of evaluating the checkpoint alone): the paper's
point-to-plane RMSE after landmark alignment + ICP on the 95 mm front-face region (section V-A, Table I) and the
mean scan-to-mesh distance, both in mm. Any checkpoint :func:`dfmvr_core.inference.checkpoint.load_checkpoint`
accepts works (the network is rebuilt from the checkpoint and only its ``forward(images, parts, valid)`` is used).

Output (``out_dir``), every file written atomically:

* ``comparison.md``: the table (method, network, views, RMSE mean ± std, scan-to-mesh mean ± std, training budget
  steps × batch, samples seen, wall time, device) and whether the training budgets are equal
  (:mod:`dfmvr_training.compare_budget`);
* ``comparison.json``: the same with the per-sample numbers, the metric definitions and settings;
* ``entries/<slug>/result.json`` and ``entries/<slug>/error_maps/<sample:05d>.png`` per entry (blue → red from 0
  to ``max_mm``, the paper's Fig. 13 style; grey outside the 95 mm region).

Resumable: an entry whose ``result.json`` matches the checkpoint's SHA-256, its views, the sample count, the
benchmark (manifest hash), the morphable model and the metric / map settings (and whose maps exist) is read back, not
recomputed. A failing entry (missing or corrupt checkpoint, a checkpoint for another model, ...) is reported naming
it; by default the others still run and the table marks it failed (``fail_fast`` stops at the first instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from dfmvr_core.atomic_io import write_json_atomic, write_text_atomic
from dfmvr_core.errors import DfmvrError, ModelFileError
from dfmvr_core.evaluation import (
    METRIC_DEFINITIONS,
    RIG_SCALE_RMSE_DEFINITION,
    RIG_SCALE_RMSE_KEY,
    SCALED_RMSE_DEFINITION,
    SCALED_RMSE_KEY,
    EvalConfig,
    PairMetrics,
    error_map_image,
    save_png,
    statistics,
    summarize,
)
from dfmvr_training.benchmark_eval import (
    BenchmarkSamples,
    load_benchmark,
    load_benchmark_checkpoint,
    predict_outputs,
    rig_scaled_rmse,
    view_mask,
)
from dfmvr_training.compare_budget import TrainingBudget, budget_from_extra, budgets_statement
from dfmvr_training.compare_spec import MEAN_FACE_LABEL, CompareEntry, CompareSpec, label_slug
from dfmvr_training.compare_table import comparison_markdown
from dfmvr_training.error_sources import ERROR_SOURCE_DEFINITIONS, error_sources
from dfmvr_training.evaluation import evaluate_meshes, mean_face_baseline, scale_aligned_rmse

__all__ = ["ENTRY_ERRORS", "file_sha256", "run_comparison"]

ENTRY_ERRORS = (DfmvrError, RuntimeError, ValueError, OSError)
"""What a failing entry may raise (dfmvr's own errors; torch's RuntimeError, e.g. a network that cannot take the
benchmark's crops); anything else is a bug and propagates."""
RESULT_NAME = "result.json"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes.

    Raises:
        ModelFileError: the file is missing or unreadable.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a folder, expected a checkpoint file") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the checkpoint ({exc})") from None


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _settings(spec: CompareSpec, bench: BenchmarkSamples) -> dict[str, Any]:
    """What every result depends on besides the entry itself (JSON round-tripped, so it compares equal on resume)."""
    manifest = json.dumps(bench.manifest, sort_keys=True, default=str).encode()
    settings = {
        "benchmark_manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "model_fingerprint": bench.model.fingerprint(),
        "count": bench.count,
        "mask_source": spec.mask_source,
        "metric": dataclasses.asdict(EvalConfig()),
        "scaled_metric": dataclasses.asdict(EvalConfig(with_scale=True)),  # rmse_mm_with_scale
        "rig_scale": "metric_pose inner-51 similarity",  # rmse_mm_rig_scale
        "error_maps": _map_count(spec, bench.count),
        "max_mm": spec.max_mm,
        "map_size": spec.map_size,
    }
    return json.loads(json.dumps(settings))


def _map_count(spec: CompareSpec, count: int) -> int:
    return count if spec.error_maps is None else min(spec.error_maps, count)


def _read_record(entry_dir: Path, key: dict[str, Any], maps: int) -> dict[str, Any] | None:
    """A finished entry's record when it matches ``key`` and its error maps exist, else None."""
    try:
        record = json.loads((entry_dir / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("status") != "ok":
        return None
    if any(record.get(name) != value for name, value in key.items()):
        return None
    if not all((entry_dir / "error_maps" / f"{i:05d}.png").is_file() for i in range(maps)):
        return None
    return record


def _finish(
    entry_dir: Path,
    key: dict[str, Any],
    info: dict[str, Any],
    metrics: list[PairMetrics],
    scaled: list[float],
    rig: list[float],
    bench: BenchmarkSamples,
    spec: CompareSpec,
) -> dict[str, Any]:
    """Write the entry's error maps and ``result.json`` (``scaled`` / ``rig``: each sample's ``rmse_mm_with_scale`` /
    ``rmse_mm_rig_scale``); return the record."""
    maps_dir = entry_dir / "error_maps"
    shutil.rmtree(maps_dir, ignore_errors=True)  # maps of an earlier, different run of this entry
    for i in range(key["settings"]["error_maps"]):
        image = error_map_image(
            bench.gt[i].numpy(), bench.faces, metrics[i].per_vertex_error_mm, max_mm=spec.max_mm, size=spec.map_size
        )
        save_png(maps_dir / f"{i:05d}.png", image)
    record = {
        **key,
        **info,
        "status": "ok",
        **summarize(metrics),
        SCALED_RMSE_KEY: statistics(scaled),
        RIG_SCALE_RMSE_KEY: statistics(rig),
        "per_sample": {
            "rmse_mm": [float(m.rmse_mm) for m in metrics],
            "scan_to_mesh_mm": [float(m.scan_to_mesh_mm) for m in metrics],
            SCALED_RMSE_KEY: [float(v) for v in scaled],
            RIG_SCALE_RMSE_KEY: [float(v) for v in rig],
        },
    }
    write_json_atomic(entry_dir / RESULT_NAME, record)
    return record


def _evaluate_network(
    entry: CompareEntry, bench: BenchmarkSamples, spec: CompareSpec, settings: dict[str, Any], progress: bool
) -> dict[str, Any]:
    entry_dir = spec.out_dir / "entries" / entry.slug
    key = {
        "kind": "network",
        "checkpoint_sha256": file_sha256(entry.checkpoint),
        "views": list(entry.views),
        "expected_network": entry.network,
        "settings": settings,
    }
    record = _read_record(entry_dir, key, settings["error_maps"])
    if record is not None:
        return {**record, "resumed": True}
    checkpoint = load_benchmark_checkpoint(entry.checkpoint, bench, network=entry.network)
    device = _device(spec.device)
    net = checkpoint.build_network(device)
    mask = view_mask(entry.views, bench.samples[0]["valid"].shape[0])
    predictions, identity, expression = predict_outputs(
        net, bench, mask, batch_size=spec.batch_size, device=device, progress=progress
    )
    metrics = evaluate_meshes(predictions, bench.gt, bench.faces, indices=bench.indices, progress=progress)
    scaled = scale_aligned_rmse(predictions, bench.gt, bench.faces, indices=bench.indices, progress=progress)
    rig = rig_scaled_rmse(bench, predictions, mask, progress=progress)
    info = {
        "network": {
            "name": checkpoint.config.name,
            "kind": getattr(checkpoint, "kind", None) or getattr(checkpoint.config, "kind", "dfmvr"),
            "dfmvr_version": checkpoint.dfmvr_version,
        },
        "budget": budget_from_extra(checkpoint.extra).to_dict(),
        "device": str(device),
        "error_sources": error_sources(bench, identity, expression, progress=progress),
    }
    return {**_finish(entry_dir, key, info, metrics, scaled, rig, bench, spec), "resumed": False}


def _evaluate_mean_face(
    bench: BenchmarkSamples, spec: CompareSpec, settings: dict[str, Any], progress: bool
) -> dict[str, Any]:
    entry_dir = spec.out_dir / "entries" / label_slug(MEAN_FACE_LABEL)
    key = {"kind": "mean_face", "settings": settings}
    record = _read_record(entry_dir, key, settings["error_maps"])
    if record is not None:
        return {**record, "resumed": True}
    metrics = mean_face_baseline(bench.model, bench.gt, progress=progress)
    mean = bench.model.mean_shape.detach().cpu().double().expand_as(bench.gt)
    scaled = scale_aligned_rmse(mean, bench.gt, bench.faces, indices=bench.indices, progress=progress)
    all_views = torch.ones(bench.samples[0]["valid"].shape[0], dtype=torch.bool)
    rig = rig_scaled_rmse(bench, mean, all_views, progress=progress)
    return {**_finish(entry_dir, key, {}, metrics, scaled, rig, bench, spec), "resumed": False}


def _row(label: str, slug: str, record: dict[str, Any], entry: CompareEntry | None) -> dict[str, Any]:
    """The comparison's view of one entry (the record without the shared settings)."""
    row = {"label": label, "slug": slug, **{k: v for k, v in record.items() if k != "settings"}}
    if entry is not None:
        row["checkpoint"] = str(entry.checkpoint)
        row["views"] = list(entry.views)
    if row.get("status") == "ok":
        row["error_maps"] = f"entries/{slug}/error_maps"
    return row


def run_comparison(spec: CompareSpec, *, progress: bool = True) -> dict[str, Any]:
    """Score every entry of ``spec`` (and the mean face) on the same benchmark samples; write the comparison.

    Args:
        spec: what to compare and where to write (see :class:`~dfmvr_training.compare_spec.CompareSpec`).
        progress: tqdm bars (entries, network batches, metric).

    Returns:
        The content of ``comparison.json``: ``benchmark``, ``count``, ``metric`` (definitions), ``entries`` (one
        row per entry in spec order, the mean face last: ``label``, ``status`` ``ok``/``failed``, ``error``,
        ``rmse_mm`` and ``scan_to_mesh_mm`` statistics in mm, ``per_sample``, ``network``, ``budget``,
        ``resumed``), ``budgets_equal`` (True / False / None = unknown), ``budgets_statement`` and ``failed``
        (labels).

    Raises:
        ConfigError / ModelFileError: the benchmark or the morphable model cannot be used (nothing is written);
        with ``spec.fail_fast``, the first failing entry's error, prefixed with the entry's label.
    """
    bench = load_benchmark(spec.benchmark, spec.morphable_model, mask_source=spec.mask_source, count=spec.eval_samples)
    settings = _settings(spec, bench)
    jobs: list[CompareEntry | None] = [*spec.entries, *([None] if spec.mean_face else [])]
    rows = []
    for entry in tqdm(jobs, desc="dfmvr eval --compare", unit="entry", disable=not progress):
        if entry is None:
            record = _evaluate_mean_face(bench, spec, settings, progress)
            rows.append(_row(MEAN_FACE_LABEL, label_slug(MEAN_FACE_LABEL), record, None))
            continue
        try:
            record = _evaluate_network(entry, bench, spec, settings, progress)
        except ENTRY_ERRORS as exc:
            message = f"entry {entry.label!r} ({entry.checkpoint}): {exc}"
            if spec.fail_fast:
                raise (type(exc)(message) if isinstance(exc, DfmvrError) else DfmvrError(message)) from exc
            record = {"kind": "network", "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        rows.append(_row(entry.label, entry.slug, record, entry))

    trained: dict[str, tuple[str, TrainingBudget]] = {}  # one budget per distinct checkpoint
    for row in rows:
        if row["kind"] == "network" and row["status"] == "ok":
            trained.setdefault(row["checkpoint_sha256"], (row["label"], TrainingBudget.from_dict(row.get("budget"))))
    equal, statement = budgets_statement(list(trained.values()))
    result = {
        "benchmark": str(spec.benchmark),
        "morphable_model": str(spec.morphable_model),
        "count": bench.count,
        "mask_source": spec.mask_source,
        "metric": {
            **METRIC_DEFINITIONS,
            SCALED_RMSE_KEY: SCALED_RMSE_DEFINITION,
            RIG_SCALE_RMSE_KEY: RIG_SCALE_RMSE_DEFINITION,
            **ERROR_SOURCE_DEFINITIONS,
        },
        "settings": settings,
        "entries": rows,
        "budgets_equal": equal,
        "budgets_statement": statement,
        "failed": [row["label"] for row in rows if row["status"] != "ok"],
    }
    write_json_atomic(spec.out_dir / "comparison.json", result)
    write_text_atomic(spec.out_dir / "comparison.md", comparison_markdown(result))
    return result
