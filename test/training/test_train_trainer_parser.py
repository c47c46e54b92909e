"""Face-parser mode: a few steps of the 10-class BiSeNet on the crops' parts, its checkpoint, its evaluation, and the
trained parser as the mask-loss parser of a reconstruction run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _trainer_testlib import smoke_config, tiny_datasets

from dfmvr_core.errors import ModelFileError
from dfmvr_core.morphable import NUM_FACE_PARTS
from dfmvr_training.parser_training import load_parser_checkpoint
from dfmvr_training.trainer import Trainer


@pytest.fixture(scope="module")
def parser_run(tmp_path_factory, ict_npz):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    out = tmp_path_factory.mktemp("parser_run")
    config = smoke_config(data, out, mode="parser", steps=4, lr=1e-3, checkpoint_every=4, image_every=2)
    trainer = Trainer(config)
    summary = trainer.fit()
    return {"data": data, "out": out, "trainer": trainer, "summary": summary}


def test_train_trainer_parser_mode_trains_and_evaluates(parser_run):
    losses = parser_run["trainer"].losses
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]  # 3-head cross-entropy from a random start falls fast at lr 1e-3
    evaluation = parser_run["summary"]["eval"]
    assert evaluation["count"] == 2 and 0.0 <= evaluation["mean_iou"] <= 1.0
    assert 0.0 < evaluation["pixel_accuracy"] <= 1.0
    train = [json.loads(line) for line in (parser_run["out"] / "metrics.jsonl").read_text().splitlines()]
    assert {"terms/main", "terms/aux16", "terms/aux32", "pixel_accuracy"} <= set(
        next(r for r in train if r["kind"] == "train")
    )
    assert (parser_run["out"] / "preview.png").is_file()


def test_train_trainer_parser_checkpoint_round_trip(parser_run):
    parser = load_parser_checkpoint(parser_run["out"] / "parser.pth")
    assert parser.num_classes == NUM_FACE_PARTS and not parser.training
    assert not any(p.requires_grad for p in parser.parameters())
    trained = parser_run["trainer"].net.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in parser.state_dict().items())
    assert (parser_run["out"] / "checkpoints" / "step_00000004" / "training_state.pt").is_file()
    bad = parser_run["out"] / "bad.pth"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(ModelFileError, match=r"bad\.pth"):
        load_parser_checkpoint(bad)


def test_train_trainer_mask_loss_with_trained_parser(parser_run, tmp_path):
    config = smoke_config(
        parser_run["data"],
        tmp_path / "run",
        steps=2,
        mask_loss_source="parser",
        parser_checkpoint=str(parser_run["out"] / "parser.pth"),
        benchmark=None,
        image_every=0,
    )
    trainer = Trainer(config)
    logs = trainer.train_step(next(iter(trainer.loader)))
    assert logs["terms/mask"] > 0 and np.isfinite(logs["loss"])
    assert logs["terms/mask"] == pytest.approx(3.0 * logs["raw/mask"], rel=1e-5)  # paper ω_m = 3
