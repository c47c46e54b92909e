"""The baseline training steps' geometry and plumbing: ground-truth coefficients through Deep3DFaceLoss / UHE2FARLoss
(all views and single view) make the data terms vanish, a zero pose does not; samples without 3D ground truth; the
single-view helpers; input errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _baseline_testlib import TinyEmbedder
from _trainer_testlib import Oracle, tiny_datasets
from torch.utils.data import default_collate

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable import FacePart
from dfmvr_core.networks.net_config import NetworkConfig
from dfmvr_core.networks.registry import build_network
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer
from dfmvr_training.baseline_step import (
    BaselineStepResult,
    Deep3DFaceLoss,
    SingleImageForward,
    UHE2FARLoss,
    choose_single_views,
    gather_views,
    weighted_sum,
)
from dfmvr_training.data import SyntheticMultiViewDataset
from dfmvr_training.losses import DEEP3DFACE_WEIGHTS, UH_E2FAR_WEIGHTS, SkinColorModel
from dfmvr_training.losses.deep3dface import freeze_embedder


class _SingleOracle(torch.nn.Module):
    """Single-image stand-in: the given coefficients of view ``view`` of each sample."""

    def __init__(self, out, view):
        super().__init__()
        self.out, self.view = out, view

    def forward(self, images):
        assert images.dim() == 4
        return {k: (v[:, self.view] if k in ("lighting", "pose") else v) for k, v in self.out.items()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ict_npz, ict_model):
    data = tiny_datasets(tmp_path_factory, ict_npz)
    dataset = SyntheticMultiViewDataset(data["train"], coefficient_sizes=ict_model.coefficient_sizes)
    batch = default_collate([dataset[i] for i in range(2)])
    batch["input_parts"] = batch["parts"]
    crop = dataset.crop_camera
    renderer = FaceRenderer(ict_model, FaceRenderConfig(height=crop.size, width=crop.size))
    skin = SkinColorModel.fit(batch["images"].movedim(2, -1), batch["parts"] == FacePart.SKIN)
    truth = {
        "identity": batch["gt_identity"],
        "expression": batch["gt_expression"],
        "albedo": batch["gt_albedo"],
        "lighting": batch["gt_lighting"],
        "pose": batch["pose_label"],
    }
    return {"batch": batch, "crop": crop, "renderer": renderer, "skin": skin, "truth": truth, "model": ict_model}


def _deep3dface(setup, single_view, embedder=None, **changes):
    changes = {"perception": 0.2 if embedder else 0.0, **changes}
    weights = dataclasses.replace(DEEP3DFACE_WEIGHTS, **changes)
    return Deep3DFaceLoss(
        setup["model"], setup["renderer"], weights, setup["crop"], setup["skin"], embedder, single_view=single_view
    )


def test_train_baseline_step_deep3dface_ground_truth_all_views(setup):
    torch.manual_seed(0)
    loss = _deep3dface(setup, single_view=False, embedder=freeze_embedder(TinyEmbedder()))
    batch = setup["batch"]
    result = loss(Oracle(setup["truth"]), batch, batch["valid"], epoch=0)
    assert isinstance(result, BaselineStepResult) and result.rendering.rgb.shape[:2] == (2, 3)
    assert float(result.raw["landmark"]) < 1e-4  # squared pixels
    assert float(result.raw["photo"]) < 0.03 and float(result.raw["perception"]) < 0.05
    assert set(result.terms) == {"photo", "landmark", "perception", "regularization", "lighting", "reflectance"}
    assert float(result.total) == pytest.approx(sum(float(v) for v in result.terms.values()), rel=1e-5)
    assert result.preview().shape == (3 * 64, 3 * 64, 3)


def test_train_baseline_step_deep3dface_single_view_and_zero_pose(setup):
    loss = _deep3dface(setup, single_view=True)
    batch, truth = setup["batch"], setup["truth"]
    used = torch.zeros(2, 3, dtype=torch.bool)
    used[:, 2] = True
    result = loss(_SingleOracle(truth, 2), batch, used, epoch=0)
    assert result.rendering.rgb.shape[:2] == (2, 1) and float(result.raw["landmark"]) < 1e-4
    assert "perception" not in result.terms and result.preview().shape == (64, 3 * 64, 3)
    guess = {k: v.clone().requires_grad_() for k, v in truth.items()}
    guess["pose"] = torch.zeros_like(truth["pose"], requires_grad=True)
    wrong = loss(_SingleOracle(guess, 2), batch, used, epoch=0)
    assert float(wrong.raw["landmark"]) > 100  # squared 224-crop pixels: the side view seen as frontal
    wrong.total.backward()
    assert float(guess["pose"].grad.abs().sum()) > 0 and float(guess["identity"].grad.abs().sum()) > 0
    both = used.clone()
    both[:, 0] = True
    with pytest.raises(ShapeError, match="one used view"):
        loss(_SingleOracle(truth, 2), batch, both, epoch=0)
    with pytest.raises(ConfigError, match="embedder"):
        _deep3dface(setup, single_view=True, perception=0.2)


def test_train_baseline_step_uh_e2far_ground_truth_and_missing_3d(setup):
    model, batch, truth = setup["model"], setup["batch"], setup["truth"]
    full = {**truth, "identity": batch["gt_identity_full"], "expression": batch["gt_expression_full"]}
    loss = UHE2FARLoss(model, setup["renderer"], UH_E2FAR_WEIGHTS, setup["crop"], single_view=False)
    result = loss(Oracle(full), batch, batch["valid"], epoch=0)
    assert result.rendering is None and set(result.terms) == {"neutral", "expression", "landmark"}
    assert float(result.raw["neutral"]) < 1e-6 and float(result.raw["expression"]) < 1e-6  # metres
    assert float(result.raw["landmark"]) < 1e-3
    assert result.preview().shape == (3 * 64, 3 * 64, 3)
    mean_face = {
        **full,
        "identity": torch.zeros_like(full["identity"]),
        "expression": torch.zeros_like(full["expression"]),
    }
    assert float(loss(Oracle(mean_face), batch, batch["valid"], 0).raw["neutral"]) > 1e-4
    no_3d = {**batch, "has_3d": torch.tensor([False, False])}
    masked = loss(Oracle(mean_face), no_3d, batch["valid"], 0)
    assert float(masked.raw["neutral"]) == 0.0 and float(masked.raw["expression"]) == 0.0
    real_only = {k: v for k, v in batch.items() if not k.startswith("gt_")}
    assert float(loss(Oracle(mean_face), real_only, batch["valid"], 0).raw["neutral"]) == 0.0
    single = UHE2FARLoss(model, setup["renderer"], UH_E2FAR_WEIGHTS, setup["crop"], single_view=True)
    used = torch.zeros(2, 3, dtype=torch.bool)
    used[:, 0] = True
    assert float(single(_SingleOracle(full, 0), batch, used, 0).raw["landmark"]) < 1e-3


def test_train_baseline_step_view_helpers():
    valid = torch.tensor([[True, True, True], [False, True, False], [False, False, False]])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([choose_single_views(valid, g) for _ in range(60)])
    assert bool((draws.sum(-1) == torch.tensor([1, 1, 0])).all()) and not bool((draws & ~valid).any())
    assert bool(draws[:, 0].any(0).all())  # every valid view of a full sample gets drawn
    again = torch.stack([choose_single_views(valid, torch.Generator().manual_seed(0)) for _ in range(2)])
    assert torch.equal(again[0], draws[0])
    with pytest.raises(ShapeError, match="valid"):
        choose_single_views(valid.float(), g)
    value = torch.arange(2 * 3 * 4).view(2, 3, 4)
    assert torch.equal(gather_views(value, torch.tensor([2, 0])), torch.stack([value[0, 2:3], value[1, 0:1]]))
    total, parts = weighted_sum({"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([2.0])}, {"a": 2.0, "b": 0.5})
    assert float(total) == 5.0 and float(parts["a"]) == 4.0
    with pytest.raises(ConfigError, match="'c'"):
        weighted_sum({"c": torch.ones(2)}, {"a": 1.0})


def test_train_baseline_step_single_image_forward(ict_model):
    from dfmvr_core.networks.baseline_config import BaselineNetworkConfig

    sizes = ict_model.coefficient_sizes
    uh = build_network(BaselineNetworkConfig(name="u", kind="uh_e2far", backbone_depth=18, backbone_width=0.25,
                                             input_size=64), sizes, "blendshape")  # fmt: skip
    out = SingleImageForward(uh)(torch.rand(2, 3, 64, 64))
    assert out["lighting"].shape == (2, 27) and out["pose"].shape == (2, 6)
    assert float(out["albedo"].abs().max()) == 0.0 and out["albedo"].shape == (2, sizes.albedo)
    full = uh(torch.rand(2, 3, 3, 64, 64))
    torch.testing.assert_close(out["lighting"], full["lighting"][:, 0])  # the same ambient light
    dfmvr = build_network(NetworkConfig(name="d", encoder_channels=(4, 8), fused_channels=4, input_size=64), sizes)
    with pytest.raises(ConfigError, match="per-image"):
        SingleImageForward(dfmvr)
