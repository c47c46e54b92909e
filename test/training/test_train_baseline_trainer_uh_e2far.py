"""UH-E2FAR through the trainer on the tiny 64-pixel dataset (network from a YAML file): the 3D-supervised loss falls,
the checkpoint records the kind, a resumed run matches; the shipped smoke config through ``dfmvr train``."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import yaml
from _baseline_testlib import TINY_UH_E2FAR, RestoreThreads, fixed_batch, fixed_loss
from _trainer_testlib import REPO, smoke_config, tiny_datasets

from dfmvr_core.cli.main import main
from dfmvr_core.inference import load_checkpoint
from dfmvr_core.morphable import load_morphable_model
from dfmvr_training.trainer import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory, ict_npz):
    return tiny_datasets(tmp_path_factory, ict_npz)


@pytest.fixture(scope="module")
def uh_run(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("uh_e2far")
    network = root / "tiny_uh_e2far.yaml"
    network.write_text(yaml.safe_dump({"network": TINY_UH_E2FAR}))
    config = smoke_config(
        data,
        root / "run",
        network=str(network),
        network_config=None,
        losses={"preset": "uh_e2far"},
        steps=40,
        lr=1e-3,
        checkpoint_every=20,
        image_every=20,
        num_threads=1,
    )
    with RestoreThreads():
        trainer = Trainer(config)
        batch = fixed_batch(trainer)
        before = fixed_loss(trainer, batch)
        summary = trainer.fit()
        after = fixed_loss(trainer, batch)
    return {"out": root / "run", "config": config, "trainer": trainer, "summary": summary, "before": before,
            "after": after}  # fmt: skip


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_baseline_uh_e2far_loss_falls(uh_run):
    losses = uh_run["trainer"].losses
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert uh_run["after"] < 0.9 * uh_run["before"], (uh_run["before"], uh_run["after"])
    train = [r for r in _records(uh_run["out"] / "metrics.jsonl") if r["kind"] == "train"]
    assert {"terms/neutral", "terms/expression", "terms/landmark"} <= set(train[-1])
    assert all(r["views_used"] == 1.0 for r in train)
    # shape errors in metres: a few millimetres for faces of the same model
    assert 1e-4 < train[-1]["raw/neutral"] < 0.02 and 1e-5 < train[-1]["raw/expression"] < 0.02


def test_train_baseline_uh_e2far_checkpoint_kind_preview_and_resume(uh_run, ict_npz):
    out = uh_run["out"]
    model = load_morphable_model(ict_npz)
    ckpt = load_checkpoint(out / "model.pt", sizes=model.coefficient_sizes, model_fingerprint=model.fingerprint())
    assert ckpt.kind == "uh_e2far" and ckpt.config.name == "tiny_uh_e2far"
    assert (out / "preview.png").is_file()
    assert np.isfinite(uh_run["summary"]["eval"]["rmse_mm_mean"])
    with RestoreThreads():
        resumed = Trainer(uh_run["config"], resume=True)  # same network description: accepted
        assert resumed.step == 40 and resumed.fit()["steps_this_run"] == 0


def test_train_baseline_uh_e2far_shipped_smoke_config_through_the_cli(data, tmp_path):
    text = (REPO / "config" / "training" / "uh_e2far_smoke.yaml").read_text()
    text = text.replace("out/data/smoke_train", str(data["train"])).replace(
        "out/data/smoke_benchmark", str(data["benchmark"])
    )
    text = text.replace("../shared/data/ict_facekit/ict_face_full_fp32.npz", str(data["model"]))
    config = tmp_path / "uh.yaml"
    config.write_text(text)
    stdout = io.StringIO()
    with RestoreThreads(), contextlib.redirect_stdout(stdout):
        rc = main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--steps", "3", "--no-progress"])
    assert rc == 0, stdout.getvalue()
    assert "steps        3" in stdout.getvalue() and "rmse_mm_mean" in stdout.getvalue()
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]
    assert saved["network_config"]["kind"] == "uh_e2far" and saved["losses"]["preset"] == "uh_e2far"
