"""The Markdown table of ``dfmvr eval --compare`` (``comparison.md``), in the manner of the paper's Table I.

One row per method: name, network (config name and kind), the cameras given, the point-to-plane RMSE (rigid and
scale-aligned) and the scan-to-mesh distance (mean ± std over the benchmark samples, mm), and the training budget
read from the checkpoint (steps × batch, samples seen, wall time, device; "n/a" where the checkpoint does not record
it). Below it, for the networks scored on a synthetic benchmark, where their error comes from (identity or
expression, :mod:`dfmvr_training.error_sources`).
"""

from __future__ import annotations

from typing import Any

from dfmvr_training.compare_budget import TrainingBudget, format_seconds

__all__ = ["comparison_markdown"]

_HEADER = (
    "Method",
    "Network",
    "Views",
    "RMSE (mm)",
    "RMSE, rig scale (mm)",
    "RMSE, scale aligned (mm)",
    "Scan-to-mesh (mm)",
    "Budget (steps × batch)",
    "Samples seen",
    "Wall time",
    "Device",
)


_METRICS = ("rmse_mm", "rmse_mm_rig_scale", "rmse_mm_with_scale", "scan_to_mesh_mm")
"""The metric columns, in table order."""


def _stat(stats: Any) -> str:
    if not isinstance(stats, dict) or stats.get("mean") is None:
        return "n/a"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _cells(row: dict[str, Any]) -> list[str]:
    views = row.get("views")
    views_text = f"{', '.join(views)} ({len(views)})" if views else "—"
    if row["kind"] == "mean_face":
        return [row["label"], "—", "—", *[_stat(row.get(key)) for key in _METRICS], *["—"] * 4]
    if row["status"] != "ok":
        return [row["label"], "n/a", views_text, *["**failed**"] * len(_METRICS), *["n/a"] * 4]
    network = row.get("network") or {}
    budget = TrainingBudget.from_dict(row.get("budget"))
    samples = budget.samples_seen
    return [
        row["label"],
        f"{network.get('name', 'n/a')} ({network.get('kind', 'n/a')})",
        views_text,
        *[_stat(row.get(key)) for key in _METRICS],
        budget.steps_text(),
        "n/a" if samples is None else str(samples),
        format_seconds(budget.seconds),
        budget.device or "n/a",
    ]


def _share(value: Any) -> str:
    return "n/a" if value is None else f"{round(100 * value)} %"


def _error_source_lines(entries: list[dict[str, Any]]) -> list[str]:
    """The "where the error comes from" table (:mod:`dfmvr_training.error_sources`) of the networks that have it."""
    rows = [row for row in entries if row.get("status") == "ok" and isinstance(row.get("error_sources"), dict)]
    if not rows:
        return []
    lines = [
        "",
        "Where the error comes from (the ground truth swapped in for one part of the prediction; share of the "
        "benchmark's front-face shape variation each predicted part explains, 0 % = the mean, 100 % = exact):",
        "",
        "| Method | RMSE, true identity (mm) | RMSE, true expression (mm) | Identity explained | Expression explained "
        "| R² of identity modes 1-5 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        sources = row["error_sources"]
        leading = ", ".join("n/a" if v is None else f"{v:.2f}" for v in sources.get("identity_r2_leading") or [])
        cells = [
            row["label"],
            _stat(sources.get("rmse_mm_true_identity")),
            _stat(sources.get("rmse_mm_true_expression")),
            _share(sources.get("identity_variance_explained")),
            _share(sources.get("expression_variance_explained")),
            leading or "n/a",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def comparison_markdown(result: dict[str, Any]) -> str:
    """``comparison.md`` from :func:`dfmvr_training.compare_eval.run_comparison`'s result."""
    lines = [
        "# Reconstruction error on the benchmark",
        "",
        f"Benchmark `{result['benchmark']}`, the same first {result['count']} samples for every method; "
        f"face masks from {result['mask_source']}.",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + "|".join("---" for _ in _HEADER) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in _cells(row)) + " |" for row in result["entries"]]
    lines += [
        "",
        "RMSE (mm): point-to-plane RMSE after rigid landmark alignment and ICP on the 95 mm front-face region "
        "(paper V-A, Table I): metric, a wrong face size counts. RMSE, rig scale (mm): the same after the prediction "
        "is brought to the face size the calibrated rig measures from two or more views (what the reconstructor "
        "outputs; equal to RMSE with one view). RMSE, scale aligned (mm): the same after a "
        "similarity alignment (one isotropic scale also fitted, as NoW and the MICC protocol of Deep3DFace do): the "
        "shape error without the overall face size, which face crops do not show. Scan-to-mesh (mm): mean distance "
        "from the ground-truth scan to the reconstructed surface (NoW). All mean ± std (population) over the samples.",
        "",
        result["budgets_statement"],
    ]
    lines += _error_source_lines(result["entries"])
    failed = [row for row in result["entries"] if row["status"] != "ok"]
    if failed:
        lines += ["", "Failed entries:", ""]
        lines += [f"- {row['label']}: {_cell(row.get('error', 'unknown error'))}" for row in failed]
    lines += [
        "",
        "Error maps: `entries/<method>/error_maps/<sample>.png` (blue 0 mm → red ≥ "
        f"{result['settings']['max_mm']:g} mm, grey outside the region).",
        "",
    ]
    return "\n".join(lines)
