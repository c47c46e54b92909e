"""Checkpoints: atomic save, weights-only load, every validation error (config, sizes, kind, fingerprint, keys,
shapes, values, format)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from dfmvr_core.errors import ModelFileError
from dfmvr_core.inference import load_checkpoint, save_checkpoint
from dfmvr_core.inference.checkpoint import CHECKPOINT_FORMAT
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import NetworkConfig

TINY = NetworkConfig(
    name="tiny", encoder_channels=(4, 8), fused_channels=4, regressor="cnn", regressor_width=0.25, input_downsample=4
)
SIZES = CoefficientSizes(identity=10, expression=5, albedo=6)
FINGERPRINT = "0123456789abcdef"


class NotATensor:
    """A Python object a weights-only load must refuse."""


@pytest.fixture
def saved(tmp_path) -> tuple[DFMVRNet, Path]:
    torch.manual_seed(0)
    net = DFMVRNet(TINY, SIZES, "blendshape")
    return net, save_checkpoint(tmp_path / "ck" / "net.pt", net, model_fingerprint=FINGERPRINT, extra={"epoch": 3})


def edited(path: Path, target: Path, **changes) -> Path:
    """Copy of a checkpoint with top-level entries replaced (``None`` values of ``drop`` removed)."""
    payload = torch.load(path, weights_only=True)
    for key in changes.pop("drop", ()):
        del payload[key]
    payload.update(changes)
    torch.save(payload, target)
    return target


def test_round_trip(saved):
    net, path = saved
    assert [p.name for p in path.parent.iterdir()] == ["net.pt"]  # atomic write: no temporary left
    checkpoint = load_checkpoint(
        path, config=TINY, sizes=SIZES, expression_kind="blendshape", model_fingerprint=FINGERPRINT
    )
    assert checkpoint.config == TINY and checkpoint.sizes == SIZES and checkpoint.expression_kind == "blendshape"
    assert checkpoint.model_fingerprint == FINGERPRINT and checkpoint.extra == {"epoch": 3}
    assert checkpoint.dfmvr_version
    rebuilt = checkpoint.build_network()
    assert not rebuilt.training
    images = torch.rand(1, 3, 3, 224, 224)
    masks = torch.randint(0, 10, (1, 3, 224, 224))
    net.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt.forward_flat(images, masks), net.forward_flat(images, masks))
    assert load_checkpoint(path, config="tiny").config == TINY  # by name


def test_unreadable_files(tmp_path, saved):
    with pytest.raises(ModelFileError, match=r"absent\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")
    data = saved[1].read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"truncated\.pt: cannot read checkpoint, file truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x02 not a checkpoint" * 10)
    with pytest.raises(ModelFileError, match=r"garbage\.pt: cannot read checkpoint"):
        load_checkpoint(garbage)


def test_python_objects_are_refused(tmp_path):
    path = tmp_path / "pickle.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "object": NotATensor()}, path)
    with pytest.raises(ModelFileError, match=r"pickle\.pt: .*weights-only load refuses"):
        load_checkpoint(path)


def test_not_a_dfmvr_checkpoint(tmp_path, saved):
    path = tmp_path / "plain.pt"
    torch.save(saved[0].state_dict(), path)
    with pytest.raises(ModelFileError, match=r"plain\.pt: not a dfmvr checkpoint"):
        load_checkpoint(path)
    old = edited(saved[1], tmp_path / "v2.pt", format_version=2)
    with pytest.raises(ModelFileError, match="format version 2, this dfmvr reads 1"):
        load_checkpoint(old)
    lacking = edited(saved[1], tmp_path / "lacking.pt", drop=["coefficient_sizes"])
    with pytest.raises(ModelFileError, match=r"lacks \['coefficient_sizes'\]"):
        load_checkpoint(lacking)
    bad_config = edited(saved[1], tmp_path / "config.pt", network_config={"name": "x", "fused_channels": 4})
    with pytest.raises(ModelFileError, match=r"invalid network_config: .*encoder_channels"):
        load_checkpoint(bad_config)


def test_expectation_mismatches(saved):
    _, path = saved
    with pytest.raises(ModelFileError, match="checkpoint is for network config 'tiny', expected 'paper'"):
        load_checkpoint(path, config="paper")
    wider = dataclasses.replace(TINY, fused_channels=8)
    with pytest.raises(ModelFileError, match=r"fused_channels=4 \(expected 8\)"):
        load_checkpoint(path, config=wider)
    with pytest.raises(
        ModelFileError, match="coefficient sizes identity 10, expression 5, albedo 6, expected identity 80"
    ):
        load_checkpoint(path, sizes=CoefficientSizes(80, 64, 80))
    with pytest.raises(ModelFileError, match="expression kind is 'blendshape', expected 'pca'"):
        load_checkpoint(path, expression_kind="pca")
    with pytest.raises(ModelFileError, match=f"fingerprint {FINGERPRINT}, expected ffff"):
        load_checkpoint(path, model_fingerprint="ffff")


def test_missing_fingerprint_is_refused_when_one_is_expected(tmp_path, saved):
    path = save_checkpoint(tmp_path / "nofp.pt", saved[0])
    assert load_checkpoint(path).model_fingerprint is None
    with pytest.raises(ModelFileError, match="records no morphable model fingerprint"):
        load_checkpoint(path, model_fingerprint=FINGERPRINT)


def test_state_dict_problems(tmp_path, saved):
    net, path = saved
    state = net.state_dict()
    key = "heads.identity.weight"
    cases = {
        "missing": ({k: v for k, v in state.items() if k != key}, f"1 missing key\\(s\\): {key}"),
        "unexpected": ({**state, "extra.weight": torch.zeros(1)}, "1 unexpected key\\(s\\): extra.weight"),
        "shape": ({**state, key: torch.zeros(3, 3)}, f"{key} \\(3, 3\\) torch.float32 \\(expected \\(10, 128\\)"),
        "dtype": ({**state, key: state[key].double()}, "torch.float64 \\(expected \\(10, 128\\) torch.float32\\)"),
        "nan": ({**state, key: torch.full_like(state[key], float("nan"))}, f"NaN or inf values: {key}"),
        "not a tensor": ({**state, key: [1.0, 2.0]}, "entries that are not tensors: 'heads.identity.weight'"),
    }
    for name, (bad_state, message) in cases.items():
        target = edited(path, tmp_path / f"{name.replace(' ', '_')}.pt", state_dict=bad_state)
        with pytest.raises(ModelFileError, match=rf"{target.name}: .*{message}"):
            load_checkpoint(target)
