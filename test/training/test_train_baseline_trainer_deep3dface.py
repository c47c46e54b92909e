"""Deep3DFace through the trainer on the tiny 64-pixel dataset: the R-Net stage (single views, hybrid loss with a small
perception embedder, skin model fitted at the start) and the C-Net stage (from the R-Net checkpoint, R-Net frozen,
all views): the loss falls, outputs record the network kind, the frozen R-Net does not change."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from _baseline_testlib import (
    TINY_DEEP3DFACE,
    TINY_DEEP3DFACE_CNET,
    RestoreThreads,
    export_embedder,
    fixed_batch,
    fixed_loss,
)
from _trainer_testlib import smoke_config, tiny_datasets

from dfmvr_core.inference import load_checkpoint
from dfmvr_core.morphable import FacePart, load_morphable_model
from dfmvr_training.losses import SkinColorModel
from dfmvr_training.train_state import read_training_state
from dfmvr_training.trainer import Trainer

COMMON = {"num_threads": 1, "log_every": 5, "eval_samples": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory, ict_npz):
    return tiny_datasets(tmp_path_factory, ict_npz)


@pytest.fixture(scope="module")
def rnet_run(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("deep3dface_rnet")
    embedder = export_embedder(root / "embedder.pt2")
    config = smoke_config(
        data,
        root / "run",
        network_config=TINY_DEEP3DFACE,
        losses={"preset": "deep3dface"},
        perception_embedder=str(embedder),
        steps=40,
        lr=1e-3,
        checkpoint_every=20,
        image_every=20,
        **COMMON,
    )
    with RestoreThreads():
        trainer = Trainer(config)
        batch = fixed_batch(trainer)
        before = fixed_loss(trainer, batch)
        summary = trainer.fit()
        after = fixed_loss(trainer, batch)
    return {"out": root / "run", "trainer": trainer, "summary": summary, "before": before, "after": after}


@pytest.fixture(scope="module")
def cnet_run(rnet_run, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("deep3dface_cnet") / "run"
    config = smoke_config(
        data,
        out,
        network_config=TINY_DEEP3DFACE_CNET,
        losses={"preset": "deep3dface"},
        init_checkpoint=str(rnet_run["out"] / "model.pt"),
        skin_model=str(rnet_run["out"] / "skin_model.npz"),
        steps=30,
        lr=1e-2,
        checkpoint_every=30,
        image_every=0,
        **COMMON,
    )
    with RestoreThreads():
        trainer = Trainer(config)
        initial = {k: v.clone() for k, v in trainer.net.state_dict().items()}
        batch = fixed_batch(trainer)
        before = fixed_loss(trainer, batch)
        summary = trainer.fit()
        after = fixed_loss(trainer, batch)
    return {"out": out, "trainer": trainer, "summary": summary, "before": before, "after": after, "initial": initial}


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_baseline_rnet_loss_falls_with_every_hybrid_term(rnet_run):
    losses = rnet_run["trainer"].losses
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert rnet_run["after"] < 0.9 * rnet_run["before"], (rnet_run["before"], rnet_run["after"])
    train = [r for r in _records(rnet_run["out"] / "metrics.jsonl") if r["kind"] == "train"]
    terms = {"photo", "landmark", "perception", "regularization", "lighting", "reflectance"}
    assert {f"terms/{t}" for t in terms} <= set(train[-1])
    assert train[-1]["raw/perception"] > 0 and train[-1]["views_used"] == 1.0  # single-view training
    weights = rnet_run["trainer"].config.loss_weights
    assert train[-1]["terms/photo"] == pytest.approx(weights.photo * train[-1]["raw/photo"], rel=1e-5)


def test_train_baseline_rnet_outputs_record_the_kind_and_skin_model(rnet_run, ict_npz, data):
    out = rnet_run["out"]
    model = load_morphable_model(ict_npz)
    ckpt = load_checkpoint(out / "model.pt", sizes=model.coefficient_sizes, model_fingerprint=model.fingerprint())
    assert ckpt.kind == "deep3dface" and ckpt.config.name == "tiny_deep3dface" and ckpt.config.aggregation == "mean"
    assert ckpt.extra["loss_weights"]["photo"] == 1.92 and ckpt.extra["step"] == 40
    state = read_training_state(out / "checkpoints" / "step_00000040" / "training_state.pt")
    assert state["network"]["kind"] == "deep3dface"
    assert rnet_run["summary"]["eval"]["count"] == 2 and np.isfinite(rnet_run["summary"]["eval"]["rmse_mm_mean"])
    preview = cv2.imread(str(out / "preview.png"))
    assert preview.shape == (64, 3 * 64, 3)  # the one trained view: input | rendering | error
    skin = SkinColorModel.load(out / "skin_model.npz")
    sample = rnet_run["trainer"].train_set[0]
    prob = skin.probability(sample["images"].movedim(1, -1))
    is_skin = sample["parts"] == FacePart.SKIN
    assert float(prob[is_skin].mean()) > 0.5 > float(prob[sample["parts"] == FacePart.OTHER].mean())
    messages = [r.get("message", "") for r in _records(out / "metrics.jsonl") if r["kind"] == "info"]
    assert any("skin model: fitted" in m for m in messages)
    assert not any("perception" in m for m in messages)  # an embedder was given


def test_train_baseline_cnet_stage_trains_the_cnet_only(cnet_run, rnet_run):
    trainer = cnet_run["trainer"]
    assert trainer.net.rnet_frozen and not trainer.task.single_view
    rnet_weights = rnet_run["trainer"].net.state_dict()
    final = trainer.net.state_dict()
    for key, value in final.items():  # parameters and BatchNorm statistics of the R-Net are those of the checkpoint
        if key.startswith("rnet."):
            assert torch.equal(value, rnet_weights[key].cpu()), key
    changed = [k for k, v in final.items() if k.startswith("cnet.") and not torch.equal(v, cnet_run["initial"][k])]
    assert "cnet.out.weight" in changed
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in trainer.net.cnet.parameters()}
    assert len(trainer.losses) == 30 and all(np.isfinite(trainer.losses))
    assert cnet_run["after"] < cnet_run["before"] - 1e-3, (cnet_run["before"], cnet_run["after"])


def test_train_baseline_cnet_outputs_and_notes(cnet_run, ict_npz):
    out = cnet_run["out"]
    model = load_morphable_model(ict_npz)
    ckpt = load_checkpoint(out / "model.pt", sizes=model.coefficient_sizes, model_fingerprint=model.fingerprint())
    assert ckpt.kind == "deep3dface" and ckpt.config.aggregation == "cnet"
    records = _records(out / "metrics.jsonl")
    assert [r["views_used"] for r in records if r["kind"] == "train"] == [3.0] * 6  # all views, every step
    messages = " | ".join(r.get("message", "") for r in records if r["kind"] == "info")
    assert "initialised from" in messages and "fresh: cnet" in messages and "R-Net is frozen" in messages
    assert "perception loss (eq. 4) is off" in messages and "skin model: " in messages
    assert "terms/perception" not in next(r for r in records if r["kind"] == "train")
