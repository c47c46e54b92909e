"""Trainer options of the default model's CPU recipe: learning-rate warm-up, a fixed subset of input views (the
single-view baseline of the same network) and ``torch.compile`` of the training forward."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _trainer_testlib import smoke_config, tiny_datasets

from dfmvr_training.trainer import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory, ict_npz):
    return tiny_datasets(tmp_path_factory, ict_npz)


def _train_records(out):
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def test_train_trainer_warmup_ramps_the_rate_then_anneals(data, tmp_path):
    trainer = Trainer(
        smoke_config(data, tmp_path, steps=20, warmup_steps=8, log_every=1, lr=1e-3, eval_every=0, image_every=0)
    )
    trainer.fit()
    lrs = [r["lr"] for r in _train_records(tmp_path)]
    cosine = [0.5 * (1 + np.cos(np.pi * s / 20)) for s in range(20)]
    expected = [1e-3 * min(1.0, (s + 1) / 8) * cosine[s] for s in range(20)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert lrs[0] < lrs[3] < lrs[7] and lrs[7] > lrs[19]


def test_train_trainer_input_views_feeds_only_those_cameras(data, tmp_path, monkeypatch):
    seen = []
    trainer = Trainer(
        smoke_config(
            data, tmp_path, steps=3, input_views=["front"], view_dropout=False, log_every=1, image_every=0, eval_every=0
        )
    )
    forward = trainer.net.forward

    def spy(images, masks, valid):
        seen.append(valid.clone())
        return forward(images, masks, valid)

    monkeypatch.setattr(trainer.net, "forward", spy)
    summary = trainer.fit()
    assert len(seen) >= 4  # 3 training steps + the final evaluation
    for valid in seen:
        assert valid.tolist() == [[False, True, False]] * len(valid)
    assert all(r["views_used"] == 1.0 for r in _train_records(tmp_path))
    assert np.isfinite(summary["eval"]["rmse_mm_mean"])
    notes = [json.loads(line).get("message", "") for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("input views: front only" in note for note in notes)


def test_train_trainer_compile_trains_like_eager(data, tmp_path, monkeypatch):
    """``compile: true`` runs the step through torch.compile (Dynamo traces the network) with the eager run's losses.

    Inductor's C++ code generation takes minutes on this CPU, so the traced graphs run on Dynamo's ``eager`` backend:
    what is tested is that the network compiles without graph errors and trains the same.
    """
    calls = []
    real_compile = torch.compile

    def eager_backend_compile(module, **kwargs):
        calls.append(module)
        return real_compile(module, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_backend_compile)
    settings = {"steps": 4, "log_every": 1, "image_every": 0, "eval_every": 0, "num_workers": 0}
    eager = Trainer(smoke_config(data, tmp_path / "eager", **settings))
    eager.fit()
    assert not calls
    compiled = Trainer(smoke_config(data, tmp_path / "compiled", compile=True, **settings))
    assert len(calls) == 1 and calls[0] is compiled.net
    compiled.fit()
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-4)
    for (name, a), b in zip(eager.net.state_dict().items(), compiled.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=name)


def test_train_trainer_second_stage_records_both_stages_budget(data, tmp_path):
    """A run started from another run's model (init_checkpoint, the default model's stage 2) exports the summed
    budget that ``dfmvr eval --compare`` reads, with each stage's own."""
    from dfmvr_core.inference import load_checkpoint
    from dfmvr_training.compare_budget import budget_from_extra

    settings = {"log_every": 1, "image_every": 0, "eval_every": 0, "num_workers": 0}
    first = Trainer(smoke_config(data, tmp_path / "stage1", steps=3, **settings))
    first.fit()
    second = Trainer(
        smoke_config(
            data, tmp_path / "stage2", steps=2, init_checkpoint=str(tmp_path / "stage1" / "model.pt"), **settings
        )
    )
    assert any("initialised from" in note for note in second.task.notes)
    second.fit()
    extra = load_checkpoint(tmp_path / "stage2" / "model.pt").extra
    budget = budget_from_extra(extra)
    assert extra["step"] == 2 and budget.steps == 5 and budget.samples_seen == 5 * 2  # smoke batch size 2
    assert [stage["steps"] for stage in extra["budget"]["stages"]] == [3, 2]
    assert budget.seconds == pytest.approx(sum(stage["seconds"] for stage in extra["budget"]["stages"]), abs=0.2)
    # another batch size: the steps cannot be summed, the checkpoint keeps its own stage
    third = Trainer(
        smoke_config(
            data,
            tmp_path / "stage3",
            steps=1,
            batch_size=4,
            init_checkpoint=str(tmp_path / "stage1" / "model.pt"),
            **settings,
        )
    )
    third.fit()
    extra = load_checkpoint(tmp_path / "stage3" / "model.pt").extra
    assert "budget" not in extra and budget_from_extra(extra).steps == 1
