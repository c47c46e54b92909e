"""Training curves from metrics.jsonl: summary JSON, PNG, killed-run tolerance."""

from __future__ import annotations

import json

import cv2
import pytest

from dfmvr_core.errors import ModelFileError
from dfmvr_training.curves import read_metrics, write_curves


def _metrics(path, last_line_truncated=False):
    lines = [json.dumps({"kind": "info", "step": 0, "message": "start"})]
    for step in (10, 20, 30):
        lines.append(
            json.dumps({"kind": "train", "step": step, "loss": 5.0 - step / 10, "lr": 1e-4, "terms/photo": 1.0})
        )
    lines.append(
        json.dumps({"kind": "eval", "step": 30, "rmse_mm_mean": 1.5, "rmse_mm_std": 0.2, "baseline_rmse_mm_mean": 2.0})
    )
    text = "\n".join(lines) + "\n"
    if last_line_truncated:
        text += '{"kind": "train", "st'
    path.write_text(text)
    return path


def test_curves_summary_and_picture(tmp_path) -> None:
    metrics = _metrics(tmp_path / "metrics.jsonl", last_line_truncated=True)
    summary = write_curves(metrics, tmp_path / "curve.json", tmp_path / "curve.png", title="t", hardware="cpu")
    assert [r["step"] for r in summary["train"]] == [10, 20, 30]
    assert summary["train"][-1]["loss"] == pytest.approx(2.0)
    assert summary["eval"] == [{"step": 30, "rmse_mm_mean": 1.5, "rmse_mm_std": 0.2, "baseline_rmse_mm_mean": 2.0}]
    assert json.loads((tmp_path / "curve.json").read_text())["info"]["hardware"] == "cpu"
    image = cv2.imread(str(tmp_path / "curve.png"))
    assert image is not None and image.shape[1] > image.shape[0] > 100


def test_corrupt_metrics_are_refused(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train"}\nnot json\n{"kind": "train"}\n')
    with pytest.raises(ModelFileError, match=r"line 2 is not JSON"):
        read_metrics(path)
    with pytest.raises(ModelFileError, match="not found"):
        read_metrics(tmp_path / "missing.jsonl")


def test_curves_keep_the_scale_aligned_rmse(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    record = {
        "kind": "eval",
        "step": 5,
        "rmse_mm_mean": 1.5,
        "rmse_mm_with_scale_mean": 1.2,
        "baseline_rmse_mm_mean": 2.0,
        "baseline_rmse_mm_with_scale_mean": 1.8,
        "seconds": 3.0,
    }
    train = {"kind": "train", "step": 5, "loss": 1.0, "lr": 1e-4}
    path.write_text(json.dumps(train) + "\n" + json.dumps(record) + "\n")
    plain = write_curves(path, tmp_path / "plain.json", tmp_path / "plain.png")
    assert plain["eval"] == [{k: v for k, v in record.items() if k not in ("kind", "seconds")}]
    assert cv2.imread(str(tmp_path / "plain.png")) is not None
