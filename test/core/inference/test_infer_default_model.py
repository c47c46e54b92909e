"""The embedded default checkpoint (``checkpoint: default``) and float16 checkpoint storage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dfmvr_core.errors import ConfigError, ModelFileError
from dfmvr_core.inference.checkpoint import load_checkpoint, save_checkpoint
from dfmvr_core.inference.default_model import packaged_checkpoint_path, resolve_checkpoint
from dfmvr_core.inference.reconstructor_config import ReconstructorConfig
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.net_config import NetworkConfig
from dfmvr_core.networks.registry import build_network

SIZES = CoefficientSizes(identity=6, expression=4, albedo=5)
TINY = NetworkConfig(name="tiny", encoder_channels=(4, 8), fused_channels=4, regressor="cnn", input_size=64)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(TINY, SIZES, "pca").eval()


def test_resolve_checkpoint_names_the_missing_embedded_file(tmp_path: Path):
    assert resolve_checkpoint(None) is None
    assert resolve_checkpoint(tmp_path / "w.pt") == tmp_path / "w.pt"  # other values pass through unchanged
    absent = tmp_path / "weights" / "small_ict_synthetic.pt"
    with pytest.raises(ModelFileError, match=r"checkpoint 'default'.*not installed.*small_ict_synthetic\.pt"):
        resolve_checkpoint("default", packaged=absent)
    absent.parent.mkdir()
    absent.write_bytes(b"x")
    assert resolve_checkpoint("default", packaged=absent) == absent


def test_reconstructor_config_resolves_default_to_the_packaged_file(tmp_path: Path):
    model = tmp_path / "m.npz"
    if packaged_checkpoint_path().is_file():
        config = ReconstructorConfig(morphable_model=model, checkpoint=Path("default"))
        assert config.checkpoint == packaged_checkpoint_path()
    else:
        with pytest.raises(ModelFileError, match="embedded default model is not installed"):
            ReconstructorConfig(morphable_model=model, checkpoint=Path("default"))


def test_float16_storage_halves_the_file_and_loads_back_as_float32(tmp_path: Path):
    net = _net()
    full = save_checkpoint(tmp_path / "full.pt", net, model_fingerprint="abc")
    half = save_checkpoint(tmp_path / "half.pt", net, model_fingerprint="abc", weights_dtype="float16")
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded = load_checkpoint(half, model_fingerprint="abc")
    reference = net.state_dict()
    for name, value in loaded.state_dict.items():
        assert value.dtype == reference[name].dtype, name
        if value.is_floating_point():
            assert torch.allclose(value, reference[name], rtol=1e-3, atol=1e-4), name
    images = torch.rand(1, 3, 3, 64, 64)
    masks = torch.zeros(1, 3, 64, 64, dtype=torch.long)
    valid = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        a = net(images, masks, valid)["identity"]
        b = loaded.build_network()(images, masks, valid)["identity"]
    assert torch.allclose(a, b, atol=1e-3)


def test_float16_storage_refuses_out_of_range_weights_and_bad_names(tmp_path: Path):
    net = _net()
    with pytest.raises(ConfigError, match="weights_dtype"):
        save_checkpoint(tmp_path / "x.pt", net, weights_dtype="int8")
    with torch.no_grad():
        next(p for p in net.parameters() if p.dim() > 1).view(-1)[0] = 1e6  # beyond float16's 65504
    with pytest.raises(ConfigError, match=r"outside torch\.float16's range"):
        save_checkpoint(tmp_path / "x.pt", net, weights_dtype="float16")


def test_truncated_and_mismatched_checkpoints_say_which(tmp_path: Path):
    net = _net()
    good = save_checkpoint(tmp_path / "good.pt", net, model_fingerprint="abc", weights_dtype="float16")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"truncated\.pt"):
        load_checkpoint(truncated)
    with pytest.raises(ModelFileError, match=r"No such file|does not exist|not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ModelFileError, match="morphable model fingerprint abc, expected def"):
        load_checkpoint(good, model_fingerprint="def")
    with pytest.raises(ModelFileError, match="network config 'tiny', expected 'small'"):
        load_checkpoint(good, config="small")


def test_pack_checkpoint_keeps_the_weights_and_the_recipe(tmp_path: Path):
    from dfmvr_core.inference.default_model import pack_checkpoint

    net = _net()
    source = save_checkpoint(tmp_path / "model.pt", net, model_fingerprint="abc", extra={"step": 7, "eval": {"x": 1.0}})
    packed = pack_checkpoint(source, tmp_path / "weights" / "packed.pt")
    loaded = load_checkpoint(packed, model_fingerprint="abc", config=TINY)
    assert loaded.extra["step"] == 7 and loaded.extra["packed_from"] == "model.pt"
    assert packed.stat().st_size < 0.7 * source.stat().st_size
    with pytest.raises(ModelFileError, match=r"missing\.pt"):
        pack_checkpoint(tmp_path / "missing.pt", tmp_path / "out.pt")
