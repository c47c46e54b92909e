"""Training curves: a run's ``metrics.jsonl`` → a JSON summary and a PNG (loss and benchmark RMSE vs step).

``dfmvr train`` writes one JSON record per log step (``kind`` ``train`` with the loss terms, ``eval`` with the
benchmark RMSE and the mean-face baseline). :func:`write_curves` condenses them into what ``bench/results/`` keeps:
the train loss (and each weighted term) per logged step, the evaluation points, and a picture made with matplotlib
(the ``train`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dfmvr_core.atomic_io import atomic_path, write_json_atomic
from dfmvr_core.errors import ModelFileError

__all__ = ["read_metrics", "write_curves"]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a truncated last line, from a killed run, is ignored).

    Raises:
        ModelFileError: missing file or a corrupt line before the last.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: metrics file not found") from None
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ModelFileError(f"{path}: line {i + 1} is not JSON") from None
    return records


def write_curves(metrics: str | Path, out_json: str | Path, out_png: str | Path | None = None, **info: Any) -> dict:
    """Summarise ``metrics`` into ``out_json`` (and plot it into ``out_png``); ``info`` is stored as is.

    Returns:
        The summary: ``train`` (step, loss, lr and the weighted terms per logged step), ``eval`` (step, RMSE mean/std,
        baseline RMSE, 2D landmark px per evaluation), ``info``.
    """
    records = read_metrics(metrics)
    train = [
        {k: v for k, v in r.items() if k in ("step", "loss", "lr") or k.startswith("terms/")}
        for r in records
        if r.get("kind") == "train"
    ]
    keys = (
        "step",
        "rmse_mm_mean",
        "rmse_mm_std",
        "baseline_rmse_mm_mean",
        "rmse_mm_with_scale_mean",
        "baseline_rmse_mm_with_scale_mean",
        "landmark_2d_px",
    )
    evals = [{k: r[k] for k in keys if k in r} for r in records if r.get("kind") == "eval"]
    summary = {"info": info, "train": train, "eval": evals}
    write_json_atomic(out_json, summary)
    if out_png is not None:
        _plot(train, evals, Path(out_png), str(info.get("title", "training")))
    return summary


def _plot(train: list[dict], evals: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_rmse) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in train]
    ax_loss.plot(steps, [r["loss"] for r in train], label="total", color="black")
    for key in sorted({k for r in train for k in r if k.startswith("terms/")}):
        ax_loss.plot(steps, [r.get(key, float("nan")) for r in train], label=key.removeprefix("terms/"), alpha=0.7)
    ax_loss.set(xlabel="step", ylabel="weighted loss", title=f"{title}: training loss")
    ax_loss.legend(fontsize=8)
    if evals:
        e_steps = [r["step"] for r in evals]
        ax_rmse.errorbar(
            e_steps, [r["rmse_mm_mean"] for r in evals], yerr=[r.get("rmse_mm_std", 0.0) for r in evals],
            marker="o", label="network", capsize=3,
        )  # fmt: skip
        if "baseline_rmse_mm_mean" in evals[0]:
            ax_rmse.axhline(evals[0]["baseline_rmse_mm_mean"], color="gray", linestyle="--", label="mean face")
        scaled = [r for r in evals if "rmse_mm_with_scale_mean" in r]
        if scaled:
            ax_rmse.plot(
                [r["step"] for r in scaled], [r["rmse_mm_with_scale_mean"] for r in scaled],
                marker="s", color="tab:orange", label="network, scale aligned",
            )  # fmt: skip
        if "baseline_rmse_mm_with_scale_mean" in evals[-1]:
            value = evals[-1]["baseline_rmse_mm_with_scale_mean"]
            ax_rmse.axhline(value, color="tab:orange", linestyle=":", label="mean face, scale aligned")
        ax_rmse.legend(fontsize=8)
    ax_rmse.set(xlabel="step", ylabel="RMSE (mm)", title="benchmark RMSE (point-to-plane after ICP)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
