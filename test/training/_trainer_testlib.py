"""Shared helpers of the trainer tests (test_train_trainer_*.py): tiny 64-pixel datasets made once per session and
the smoke config pointed at them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from dfmvr_core.synthesis import load_scene_config
from dfmvr_training.data import make_dataset
from dfmvr_training.train_config import TrainConfig, load_train_config

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO / "config" / "training" / "smoke.yaml"
SMOKE_SCENE = REPO / "config" / "training" / "smoke_scene.yaml"


def tiny_datasets(tmp_path_factory: Any, ict_npz: Path) -> dict[str, Path]:
    """8 training samples (shards of 4) and 2 benchmark samples with 64-pixel crops, made once per session (the
    folder under pytest's session base temp is reused by every test module; make_dataset resumes/keeps it)."""
    root = tmp_path_factory.getbasetemp() / "trainer_tiny_data"
    scene, crop = load_scene_config(SMOKE_SCENE)
    paths = {"train": root / "train", "benchmark": root / "benchmark"}
    for split, count in (("train", 8), ("benchmark", 2)):
        manifest = paths[split] / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()).get("complete"):
            continue  # made by an earlier test module of this session
        options = {"seed": 0, "split": split, "shard_size": 4, "scene_config": scene, "crop": crop, "progress": False}
        make_dataset(paths[split], ict_npz, count=count, **options)
    return {**paths, "model": ict_npz}


def smoke_config(data: dict[str, Path], out_dir: Path, **overrides: Any) -> TrainConfig:
    """config/training/smoke.yaml with the tiny datasets, the shared ICT model and ``out_dir``."""
    base = {
        "data": [str(data["train"])],
        "benchmark": str(data["benchmark"]),
        "morphable_model": str(data["model"]),
        "out_dir": str(out_dir),
    }
    return load_train_config(SMOKE_CONFIG, {**base, **overrides})


class Oracle(torch.nn.Module):
    """Stands in for a multi-view network in loss tests: returns the given coefficients whatever the input."""

    def __init__(self, out: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.out = out

    def forward(self, images: Any, masks: Any, valid: Any) -> dict[str, torch.Tensor]:
        return self.out
