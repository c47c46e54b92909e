"""Trainer smoke runs on a tiny 64-pixel dataset: the loss falls, evaluation runs, outputs are complete and loadable;
the CLI end to end; the landmark mask source; TensorBoard events."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import cv2
import numpy as np
import pytest
import torch
import yaml
from _trainer_testlib import SMOKE_CONFIG, smoke_config, tiny_datasets

from dfmvr_core.cli.main import main
from dfmvr_core.inference import load_checkpoint
from dfmvr_core.morphable import load_morphable_model
from dfmvr_training.trainer import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory, ict_npz):
    return tiny_datasets(tmp_path_factory, ict_npz)


@pytest.fixture(scope="module")
def smoke_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_run")
    trainer = Trainer(smoke_config(data, out))
    summary = trainer.fit()
    return {"out": out, "trainer": trainer, "summary": summary}


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_trainer_loss_falls_over_30_steps(smoke_run):
    losses = smoke_run["trainer"].losses
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses


def test_train_trainer_learning_rate_is_cosine_annealed(smoke_run):
    lrs = [r["lr"] for r in _records(smoke_run["out"] / "metrics.jsonl") if r["kind"] == "train"]
    total, base = 30, 1e-4
    steps = [5, 10, 15, 20, 25, 30]  # log_every 5: lr used by step s is the one after s - 1 scheduler steps
    expected = [base * 0.5 * (1 + np.cos(np.pi * (s - 1) / total)) for s in steps]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert smoke_run["trainer"].optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_train_trainer_evaluates_rmse_and_baseline(smoke_run):
    evaluation = smoke_run["summary"]["eval"]
    assert evaluation["count"] == 2
    for key in (
        "rmse_mm_mean",
        "baseline_rmse_mm_mean",
        "rmse_mm_with_scale_mean",
        "baseline_rmse_mm_with_scale_mean",
        "landmark_2d_px",
    ):
        assert np.isfinite(evaluation[key]) and evaluation[key] > 0, key
    # a similarity alignment fits at least as well as a rigid one (it includes scale 1)
    assert evaluation["rmse_mm_with_scale_mean"] <= evaluation["rmse_mm_mean"] + 1e-6
    assert evaluation["baseline_rmse_mm_with_scale_mean"] <= evaluation["baseline_rmse_mm_mean"] + 1e-6
    assert 0.1 < evaluation["rmse_mm_mean"] < 20  # millimetres, a face-sized error
    records = [r for r in _records(smoke_run["out"] / "metrics.jsonl") if r["kind"] == "eval"]
    assert records and records[-1]["step"] == 30 and records[-1]["rmse_mm_mean"] == evaluation["rmse_mm_mean"]


def test_train_trainer_evaluation_counts_diverged_predictions_instead_of_crashing(smoke_run):
    trainer = smoke_run["trainer"]
    state = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    try:
        running_mean = next(k for k in state if k.endswith("running_mean"))
        trainer.net.state_dict()[running_mean].fill_(float("nan"))  # diverged BatchNorm statistics: NaN in eval mode
        evaluation = trainer.evaluate()
    finally:
        trainer.net.load_state_dict(state)
    assert evaluation["nonfinite"] == 2 and evaluation["count"] == 0 and np.isnan(evaluation["rmse_mm_mean"])
    assert np.isfinite(evaluation["baseline_rmse_mm_mean"])
    assert trainer.evaluate()["nonfinite"] == 0  # restored weights evaluate normally


def test_train_trainer_outputs_and_inference_checkpoint(smoke_run, ict_npz):
    out = smoke_run["out"]
    records = _records(out / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30]
    assert {"terms/photo", "terms/landmark_2d", "terms/landmark_3d", "terms/regularization"} <= set(train[0])
    assert "terms/mask" not in train[0]  # mask_loss_source none: ω_m = 0, and the reason is logged
    assert any("mask loss" in r.get("message", "") for r in records if r["kind"] == "info")
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 30 and latest["dir"] == "step_00000030"
    kept = sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["step_00000010", "step_00000020", "step_00000030"]  # keep_checkpoints 3
    model = load_morphable_model(ict_npz)
    ckpt = load_checkpoint(out / "model.pt", sizes=model.coefficient_sizes, model_fingerprint=model.fingerprint())
    assert ckpt.config.name == "smoke" and ckpt.extra["step"] == 30
    assert ckpt.extra["crop_camera"]["size"] == 64
    net = ckpt.build_network()
    trained = smoke_run["trainer"].net.state_dict()
    assert all(torch.equal(v, trained[k].cpu()) for k, v in net.state_dict().items())
    preview = cv2.imread(str(out / "preview.png"))
    assert preview.shape == (3 * 64, 3 * 64, 3)  # 3 views × (input | rendering | error)


def test_train_trainer_refuses_existing_run_without_resume(smoke_run, data):
    with pytest.raises(Exception, match="--resume"):
        Trainer(smoke_config(data, smoke_run["out"]))


def test_train_trainer_cli_landmark_masks_and_tensorboard(data, tmp_path):
    """The CLI with landmark masks; TensorBoard events too where the optional 'train' extra is installed."""
    has_tensorboard = importlib.util.find_spec("tensorboard") is not None
    config = tmp_path / "cfg.yaml"
    text = SMOKE_CONFIG.read_text()
    text = text.replace("out/data/smoke_train", str(data["train"])).replace(
        "out/data/smoke_benchmark", str(data["benchmark"])
    )
    text = text.replace("../shared/data/ict_facekit/ict_face_full_fp32.npz", str(data["model"]))
    text = text.replace("mask_input_source: rendered", "mask_input_source: landmarks")
    text = text.replace("tensorboard: false", f"tensorboard: {str(has_tensorboard).lower()}")
    config.write_text(text)
    out = tmp_path / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(["train", "--config", str(config), "--out", str(out), "--steps", "4", "--no-progress"])
    assert rc == 0, stdout.getvalue()
    assert "steps        4 (4 this run" in stdout.getvalue() and "rmse_mm_mean" in stdout.getvalue()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["mask_input_source"] == "landmarks" and saved["train"]["steps"] == 4
    if has_tensorboard:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulator = EventAccumulator(str(out / "tb"))
        accumulator.Reload()
        tags = accumulator.Tags()["scalars"]
        assert "train/loss" in tags and "train/terms/photo" in tags and "eval/rmse_mm_mean" in tags
