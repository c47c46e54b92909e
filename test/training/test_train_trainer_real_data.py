"""The trainer takes folders of real camera triplets next to synthetic shards (no 3D labels for the real ones)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import yaml
from _trainer_testlib import smoke_config, tiny_datasets
from triplet_helpers import CAMERAS, INTRINSICS, rendered_faces, write_rgb

from dfmvr_training.train_data import is_triplet_folder
from dfmvr_training.trainer import Trainer


def _triplet_folder(root, ict_model):
    """Two identical rendered triplets in the folder layout, with ROS camera_calibration YAMLs."""
    faces = rendered_faces(ict_model)
    for stem in ("0001", "0002"):
        for cam in CAMERAS:
            write_rgb(root / cam / f"{stem}.png", faces[cam].image)
    K = INTRINSICS
    for cam in CAMERAS:
        info = {
            "image_width": K.width,
            "image_height": K.height,
            "camera_name": cam,
            "camera_matrix": {"rows": 3, "cols": 3, "data": [K.fx, 0.0, K.cx, 0.0, K.fy, K.cy, 0.0, 0.0, 1.0]},
            "distortion_model": "plumb_bob",
            "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        }
        (root / "camera_info").mkdir(exist_ok=True)
        (root / "camera_info" / f"{cam}.yaml").write_text(yaml.safe_dump(info))
    return root


def test_train_trainer_mixes_real_triplets_and_synthetic_shards(tmp_path_factory, tmp_path, ict_npz, ict_model):
    pytest.importorskip("mediapipe", reason="mediapipe is dfmvr's optional 'landmarks' extra (detects the faces)")
    data = tiny_datasets(tmp_path_factory, ict_npz)
    real = _triplet_folder(tmp_path_factory.mktemp("real_triplets"), ict_model)
    assert is_triplet_folder(real) and not is_triplet_folder(data["train"])
    config = smoke_config(data, tmp_path / "run", steps=3, batch_size=10)
    config = dataclasses.replace(config, data=(*config.data, real))
    trainer = Trainer(config)
    assert len(trainer.train_set) == 8 + 2
    batch = next(iter(trainer.loader))  # the whole data set: 8 synthetic samples with 3D labels, 2 real without
    assert int(batch["has_3d"].sum()) == 8 and batch["valid"].all()
    losses = trainer.train_step(batch)
    assert math.isfinite(losses["loss"])
