"""Checkpoint / resume: a run resumed from its step-3 checkpoint computes the same step-4 loss as an uninterrupted
run; bad or foreign training-state files are refused with the right error."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from _trainer_testlib import smoke_config, tiny_datasets

from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_training.train_state import read_training_state
from dfmvr_training.trainer import Trainer

SETTINGS = {"steps": 5, "checkpoint_every": 3, "benchmark": None, "image_every": 0, "view_dropout": True}


@pytest.fixture(scope="module")
def data(tmp_path_factory, ict_npz):
    return tiny_datasets(tmp_path_factory, ict_npz)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    trainer = Trainer(smoke_config(data, out, **SETTINGS))
    trainer.fit()
    return {"out": out, "trainer": trainer}


def test_train_trainer_resume_reproduces_next_step_loss(uninterrupted, data, tmp_path):
    full = uninterrupted["trainer"]
    assert len(full.losses) == 5
    # A "killed" run: only the step-3 checkpoint survives; resume it into a fresh folder.
    out = tmp_path / "resumed"
    shutil.copytree(uninterrupted["out"] / "checkpoints" / "step_00000003", out / "checkpoints" / "step_00000003")
    (out / "checkpoints" / "latest.json").write_text(json.dumps({"step": 3, "dir": "step_00000003"}))
    resumed = Trainer(smoke_config(data, out, **SETTINGS), resume=True)
    assert resumed.step == 3 and resumed.epoch == 0 and resumed.sampler.epoch == 0
    resumed.fit()
    assert resumed.losses == pytest.approx(full.losses[3:], abs=1e-6)  # steps 4 (epoch 0, batch 3) and 5 (epoch 1)
    final_full, final_resumed = full.net.state_dict(), resumed.net.state_dict()
    assert all(torch.allclose(final_full[k], final_resumed[k], atol=1e-6) for k in final_full)
    # The training budget carries over: the exported model's wall time counts the run before the kill too.
    state = read_training_state(out / "checkpoints" / "step_00000003" / "training_state.pt")
    before = state["extra"]["train_seconds"]
    extra = torch.load(out / "model.pt", weights_only=True)["extra"]
    assert before > 0 and extra["train_seconds"] >= before
    assert extra["device"] == "cpu" and extra["world_size"] == 1 and extra["step"] == 5


def test_train_trainer_training_state_is_weights_only(uninterrupted):
    path = uninterrupted["out"] / "checkpoints" / "step_00000003" / "training_state.pt"
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "dfmvr-training-state" and payload["step"] == 3
    assert set(payload["rng"][0]) == {"python", "numpy", "torch", "cuda", "view_dropout"}
    assert payload["optimizer"]["state"] and payload["scheduler"]["last_epoch"] == 3


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage", "other_format", "missing_key"],
)
def test_train_trainer_corrupt_training_state_is_refused(uninterrupted, data, tmp_path, damage):
    good = uninterrupted["out"] / "checkpoints" / "step_00000003" / "training_state.pt"
    bad = tmp_path / "training_state.pt"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(b"not a checkpoint at all" * 100)
    elif damage == "other_format":
        torch.save({"format": "something-else"}, bad)
    else:
        payload = torch.load(good, weights_only=True)
        del payload["optimizer"]
        torch.save(payload, bad)
    with pytest.raises(ModelFileError, match=r"training_state\.pt"):
        read_training_state(bad)
    with pytest.raises(ModelFileError, match=r"training_state\.pt"):
        Trainer(smoke_config(data, tmp_path / "run", **SETTINGS), resume=bad)


def test_train_trainer_resume_refuses_another_run(uninterrupted, data, tmp_path):
    state = uninterrupted["out"] / "checkpoints" / "step_00000003"
    with pytest.raises(ConfigError, match="batch_size"):
        Trainer(smoke_config(data, tmp_path / "a", **{**SETTINGS, "batch_size": 1}), resume=state)
    with pytest.raises(ModelFileError, match="no checkpoint to resume"):
        Trainer(smoke_config(data, tmp_path / "b", **SETTINGS), resume=True)
