"""Train configs of the baselines (the network kind picks the loss weights, baseline-only options and their errors,
the shipped YAML files), the init checkpoint of the C-Net stage and the skin-model fit at the start of a run."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _baseline_testlib import TINY_DEEP3DFACE, TINY_DEEP3DFACE_CNET, TINY_UH_E2FAR
from _trainer_testlib import REPO

from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.inference import save_checkpoint
from dfmvr_core.morphable import FacePart
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.registry import build_network
from dfmvr_training.losses import DEEP3DFACE_WEIGHTS, UH_E2FAR_WEIGHTS, Deep3DFaceLossWeights, LossWeights
from dfmvr_training.train_config import load_train_config, train_config_to_dict
from dfmvr_training.trainer import fit_skin_model, load_init_checkpoint

BASE = {"data": ["d"], "morphable_model": "m.npz", "steps": 10}


def test_train_baseline_config_kind_picks_the_loss_weights():
    d3df = load_train_config({**BASE, "network": "deep3dface"})
    assert d3df.network_kind == "deep3dface" and d3df.single_view
    assert d3df.loss_weights == dataclasses.replace(DEEP3DFACE_WEIGHTS, perception=0.0)  # no embedder
    assert "perception" in d3df.perception_loss_disabled_reason and d3df.mask_loss_disabled_reason is None
    with_embedder = load_train_config({**BASE, "network": "deep3dface", "perception_embedder": "e.pt2"})
    assert with_embedder.loss_weights == DEEP3DFACE_WEIGHTS and with_embedder.perception_loss_disabled_reason is None
    off = load_train_config({**BASE, "network": "deep3dface", "losses": {"perception": 0.0}})
    assert off.perception_loss_disabled_reason is None
    uh = load_train_config({**BASE, "network_config": TINY_UH_E2FAR, "losses": {"preset": "uh_e2far", "neutral": 2}})
    assert uh.loss_weights == dataclasses.replace(UH_E2FAR_WEIGHTS, neutral=2.0) and uh.single_view
    assert isinstance(uh.network_definition(), BaselineNetworkConfig)
    dfmvr = load_train_config(BASE)
    assert isinstance(dfmvr.loss_weights, LossWeights) and dfmvr.network_kind == "dfmvr" and not dfmvr.single_view
    cnet = load_train_config({**BASE, "network": "deep3dface_cnet", "init_checkpoint": "r.pt"})
    assert not cnet.single_view and cnet.freeze_rnet
    assert load_train_config({**BASE, "network": "deep3dface_cnet", "freeze_rnet": False}).init_checkpoint is None
    assert load_train_config({**BASE, "network": "deep3dface", "train_views": "all"}).single_view is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"network": "deep3dface", "losses": {"preset": "paper"}}, r"preset: 'paper' is the loss of 'dfmvr'"),
        ({"network": "uh_e2far", "losses": {"preset": "deep3dface"}}, "preset: 'deep3dface' is the loss of"),
        ({"losses": {"preset": "uh_e2far"}}, "network is a 'dfmvr' one"),
        ({"network": "deep3dface", "losses": {"photo": -1.0}}, "photo"),
        ({"network": "deep3dface", "losses": {"neutral": 1.0}}, "neutral: unknown field"),
        ({"network": "deep3dface", "ablation": "v5"}, "ablation: Table IV"),
        ({"network": "deep3dface_cnet"}, "init_checkpoint: the C-Net stage"),
        ({"network": "deep3dface_cnet", "init_checkpoint": "r.pt", "train_views": "single"}, "cannot train the C-Net"),
        ({"network": "deep3dface", "train_views": "some"}, "train.train_views"),
        ({"train_views": "single"}, "train_views: 'single' applies to baseline networks"),
        ({"network": "deep3dface", "skin_fit_samples": 0}, "train.skin_fit_samples"),
        ({"network": "deep3dface", "freeze_rnet": "yes"}, "train.freeze_rnet"),
        ({"network_config": {**TINY_DEEP3DFACE, "backbone_depth": 7}}, r"train\.network_config\.backbone_depth"),
        ({"network_config": {**TINY_DEEP3DFACE, "kind": "vgg"}}, r"train\.network_config\.kind"),
        ({"network": "missing.yaml"}, r"missing\.yaml"),
    ],
)
def test_train_baseline_config_errors_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config({**BASE, **override})


def test_train_baseline_config_round_trip_and_shipped_files():
    config = load_train_config({**BASE, "network_config": TINY_DEEP3DFACE_CNET, "init_checkpoint": "r.pt"})
    again = load_train_config(train_config_to_dict(config))
    assert again == config and again.network_definition() == config.network_definition()
    expected = {
        "deep3dface_smoke": ("deep3dface", True, 40),
        "deep3dface_cnet_smoke": ("deep3dface", False, 30),
        "uh_e2far_smoke": ("uh_e2far", True, 40),
        "deep3dface_cpu_budget": ("deep3dface", True, 600),
        "deep3dface_cnet_cpu_budget": ("deep3dface", False, 600),
        "uh_e2far_cpu_budget": ("uh_e2far", True, 600),
    }
    reference = load_train_config(REPO / "config" / "training" / "small_cpu_budget.yaml")
    for name, (kind, single, steps) in expected.items():
        loaded = load_train_config(REPO / "config" / "training" / f"{name}.yaml")
        assert (loaded.network_kind, loaded.single_view, loaded.steps) == (kind, single, steps), name
        if name.endswith("cpu_budget"):  # the same budget as the DF-MVR recipe they are compared with
            assert (loaded.data, loaded.benchmark, loaded.batch_size) == (
                reference.data,
                reference.benchmark,
                reference.batch_size,
            )
            assert loaded.steps == reference.steps and loaded.lr == reference.lr
    assert isinstance(load_train_config(REPO / "config" / "training" / "deep3dface_smoke.yaml").loss_weights,
                      Deep3DFaceLossWeights)  # fmt: skip


def _tiny(ict_model, **changes):
    config = BaselineNetworkConfig(**{**TINY_DEEP3DFACE, **changes})
    return build_network(config, ict_model.coefficient_sizes, ict_model.expression_kind)


def test_train_baseline_init_checkpoint_fills_the_rnet_and_refuses_misfits(ict_model, tmp_path):
    torch.manual_seed(0)
    rnet = _tiny(ict_model)
    path = save_checkpoint(tmp_path / "rnet.pt", rnet, model_fingerprint=ict_model.fingerprint())
    cnet = _tiny(ict_model, name="c", aggregation="cnet")
    fresh = {k: v.clone() for k, v in cnet.state_dict().items()}
    note, prior_budget = load_init_checkpoint(cnet, path, ict_model)
    assert "fresh: cnet" in note
    assert prior_budget.steps is None  # save_checkpoint without a training budget: nothing to sum
    for key, value in cnet.state_dict().items():
        expected = rnet.state_dict()[key] if key.startswith("rnet.") else fresh[key]
        assert torch.equal(value, expected), key
    wide = _tiny(ict_model, name="w", backbone_width=0.5)
    with pytest.raises(ConfigError, match="shape"):
        load_init_checkpoint(wide, path, ict_model)
    uh = build_network(BaselineNetworkConfig(**TINY_UH_E2FAR), ict_model.coefficient_sizes, ict_model.expression_kind)
    with pytest.raises(ModelFileError, match=r"rnet\.pt"):
        load_init_checkpoint(uh, path, ict_model)  # another network kind
    with pytest.raises(ModelFileError, match=r"missing\.pt"):
        load_init_checkpoint(cnet, tmp_path / "missing.pt", ict_model)
    rnet_again = _tiny(ict_model)
    cnet_path = save_checkpoint(tmp_path / "cnet.pt", cnet, model_fingerprint=ict_model.fingerprint())
    with pytest.raises(ConfigError, match="lacks"):
        load_init_checkpoint(rnet_again, cnet_path, ict_model)  # C-Net tensors the R-Net has no place for


def test_train_baseline_skin_model_fit_uses_ground_truth_samples_only():
    g = torch.Generator().manual_seed(0)
    parts = torch.zeros(3, 16, 16, dtype=torch.int64)
    parts[:, 4:12, 4:12] = FacePart.SKIN
    skin = torch.tensor([0.85, 0.62, 0.5])[:, None, None]
    synthetic = torch.where(parts[:, None] == FacePart.SKIN, skin, torch.rand(3, 3, 16, 16, generator=g) * 0.3)
    real = torch.rand(3, 3, 16, 16, generator=g)  # labels of real triplets are not trusted
    samples = [
        {"images": real, "parts": parts, "has_3d": torch.tensor(False)},
        {"images": synthetic, "parts": parts, "has_3d": torch.tensor(True)},
        {"images": synthetic, "parts": parts},
    ]
    model, used = fit_skin_model(samples, count=5)
    assert used == 2
    prob = model.probability(synthetic.movedim(1, -1))
    assert float(prob[parts == FacePart.SKIN].min()) > 0.9 and float(prob[parts != FacePart.SKIN].max()) < 0.1
    with pytest.raises(ConfigError, match="skin_model"):
        fit_skin_model(samples[:1], count=5)
