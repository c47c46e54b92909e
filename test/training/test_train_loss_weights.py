"""Loss weights (presets, YAML, ablations) and the overall loss (paper IV-E)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_training.losses import (
    AUTHORS_CODE_WEIGHTS,
    PAPER_WEIGHTS,
    TERM_NAMES,
    LossWeights,
    ablation_loss_weights,
    load_loss_weights,
    total_loss,
)


def test_paper_preset_values():
    w = PAPER_WEIGHTS
    assert (w.photo, w.mask, w.landmark, w.regularization) == (4.0, 3.0, 1.0, 3e-4)  # ω_p, ω_m, ω_l, ω_reg
    assert (w.landmark_2d, w.landmark_3d) == (0.02, 1.0)  # eq. 7
    assert w.regularization_weights == (1.0, 0.8, 0.017)  # eq. 8
    assert (w.lighting, w.reflectance, w.mask_start_epoch) == (0.0, 0.0, 0)
    assert w.use_landmark_3d and w.landmark_2d_scheme == "paper"
    terms = w.term_weights()
    assert terms == pytest.approx(
        {"photo": 4.0, "mask": 3.0, "landmark_2d": 0.02, "landmark_3d": 100.0, "regularization": 3e-4,
         "lighting": 0.0, "reflectance": 0.0, "vertex": 0.0}
    )  # fmt: skip
    assert set(terms) == set(TERM_NAMES)


def test_authors_code_preset_values():
    w = AUTHORS_CODE_WEIGHTS
    assert (w.photo, w.mask, w.landmark_2d, w.landmark_3d, w.regularization) == (24.0, 1.0, 0.02, 1.0, 3e-4)
    assert (w.lighting, w.reflectance) == (10.0, 5.0)
    assert (w.photo_region, w.mask_region, w.landmark_2d_scheme) == ("rendered", "all", "authors_code")
    assert w.term_weights(epoch=100)["mask"] == 0.0 and w.term_weights(epoch=101)["mask"] == 1.0


def test_ablations():
    v5 = ablation_loss_weights(PAPER_WEIGHTS, "v5")
    assert not v5.use_landmark_3d and v5.term_weights()["landmark_3d"] == 0.0
    assert ablation_loss_weights(PAPER_WEIGHTS, "v4").term_weights()["mask"] == 0.0
    assert ablation_loss_weights(PAPER_WEIGHTS, "v2") == PAPER_WEIGHTS
    with pytest.raises(ConfigError, match="variant"):
        ablation_loss_weights(PAPER_WEIGHTS, "v7")


def test_validation_names_the_field():
    with pytest.raises(ConfigError, match="photo"):
        LossWeights(photo=-1.0)
    with pytest.raises(ConfigError, match="landmark_3d_unit_m"):
        LossWeights(landmark_3d_unit_m=0.0)
    with pytest.raises(ConfigError, match="photo_region"):
        LossWeights(photo_region="face")
    with pytest.raises(ConfigError, match="mask_start_epoch"):
        LossWeights(mask_start_epoch=-1)
    with pytest.raises(ConfigError, match="use_landmark_3d"):
        LossWeights(use_landmark_3d="no")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER_WEIGHTS.photo = 1.0  # type: ignore[misc]


def test_load_by_name_mapping_and_yaml(tmp_path: Path):
    assert load_loss_weights("paper") is PAPER_WEIGHTS
    assert load_loss_weights("authors_code") is AUTHORS_CODE_WEIGHTS
    assert load_loss_weights({"use_landmark_3d": False}) == dataclasses.replace(PAPER_WEIGHTS, use_landmark_3d=False)
    path = tmp_path / "train.yaml"
    path.write_text("losses:\n  preset: authors_code\n  photo: 12\n  use_landmark_3d: false\n")
    loaded = load_loss_weights(path, section="losses")
    assert loaded == dataclasses.replace(AUTHORS_CODE_WEIGHTS, photo=12.0, use_landmark_3d=False)
    flat = tmp_path / "weights.yaml"
    flat.write_text("mask: 0.5\n")
    assert load_loss_weights(flat) == dataclasses.replace(PAPER_WEIGHTS, mask=0.5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("losses:\n  photo: heavy\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: losses\.photo"):
        load_loss_weights(bad, section="losses")
    bad.write_text("photon: 1\n")
    with pytest.raises(ConfigError, match="photon"):
        load_loss_weights(bad)
    bad.write_text("preset: deep3dface\n")
    with pytest.raises(ConfigError, match="preset"):
        load_loss_weights(bad)
    bad.write_text("photo: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_loss_weights(bad)
    with pytest.raises(ConfigError, match="section"):
        load_loss_weights(flat, section="losses")
    with pytest.raises(ConfigError, match="preset"):
        load_loss_weights(tmp_path / "missing.yaml")


def _terms(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {name: torch.rand(b, generator=g, dtype=torch.float64) for name in TERM_NAMES}


def test_total_is_the_weighted_sum_of_batch_means():
    terms = _terms()
    total, parts = total_loss(terms, AUTHORS_CODE_WEIGHTS, epoch=200)
    multipliers = AUTHORS_CODE_WEIGHTS.term_weights(200)
    expected = sum(multipliers[k] * terms[k].mean() for k in TERM_NAMES)
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(sum(parts.values()), total)
    torch.testing.assert_close(parts["photo"], 24.0 * terms["photo"].mean())
    assert all(not p.requires_grad for p in parts.values())
    # gradients reach each term with its multiplier / B
    photo = terms["photo"].clone().requires_grad_(True)
    total, _ = total_loss({**terms, "photo": photo}, PAPER_WEIGHTS)
    total.backward()
    torch.testing.assert_close(photo.grad, torch.full((4,), 4.0 / 4, dtype=torch.float64))
    # before the mask start epoch, the mask term adds nothing
    early, early_parts = total_loss(terms, AUTHORS_CODE_WEIGHTS, epoch=3)
    assert early_parts["mask"] == 0
    torch.testing.assert_close(early, expected - 1.0 * terms["mask"].mean())


def test_total_term_checks():
    terms = _terms()
    v5 = ablation_loss_weights(PAPER_WEIGHTS, "v5")
    paper_terms = {k: v for k, v in terms.items() if k not in ("landmark_3d", "lighting", "reflectance")}
    total, parts = total_loss(paper_terms, v5)  # no 3D landmarks needed for v5
    assert "landmark_3d" not in parts and torch.isfinite(total)
    with pytest.raises(ConfigError, match="landmark_3d"):
        total_loss(paper_terms, PAPER_WEIGHTS)
    with pytest.raises(ConfigError, match="depth"):
        total_loss({**terms, "depth": terms["photo"]}, PAPER_WEIGHTS)
    with pytest.raises(ShapeError, match="mask"):
        total_loss({**terms, "mask": torch.rand(3, dtype=torch.float64)}, PAPER_WEIGHTS)
    with pytest.raises(ShapeError, match="photo"):
        total_loss({**terms, "photo": torch.rand(4, 1, dtype=torch.float64)}, PAPER_WEIGHTS)
    nan = terms["regularization"].clone()
    nan[0] = float("nan")
    with pytest.raises(ShapeError, match=r"regularization.*non-finite"):
        total_loss({**terms, "regularization": nan}, PAPER_WEIGHTS)
    with pytest.raises(ConfigError, match="weights"):
        total_loss(terms, {"photo": 1.0})  # type: ignore[arg-type]
