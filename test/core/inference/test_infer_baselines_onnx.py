"""The baselines through the export and the backends: ONNX Runtime against PyTorch (dynamic batch, invalid views with
NaN), metadata with the network kind, TorchBackend, ``dfmvr export --config <baseline>``."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

import dfmvr_core.cli.main as cli_main
from dfmvr_core.inference import (
    OnnxRuntimeBackend,
    OnnxRuntimeCoefficientBackend,
    TorchBackend,
    export_onnx,
    read_onnx_metadata,
)
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.registry import build_network

SIZES = CoefficientSizes(identity=10, expression=5, albedo=6)
S = 64
TOLERANCE = 1e-4
CONFIGS = {
    "deep3dface_cnet": BaselineNetworkConfig(
        name="tiny-d3c", kind="deep3dface", backbone_depth=18, backbone_width=0.25, aggregation="cnet", input_size=S
    ),
    "uh_e2far": BaselineNetworkConfig(
        name="tiny-uh", kind="uh_e2far", backbone_depth=18, backbone_width=0.25, input_size=S
    ),
}


def make(config: BaselineNetworkConfig) -> nn.Module:
    """Heads re-drawn to O(1) outputs (the initialisation is nearly constant, which would make parity weak)."""
    torch.manual_seed(0)
    net = build_network(config, SIZES, "blendshape")
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 1.0)
            nn.init.normal_(module.bias, 0.0, 0.5)
    return net.eval()


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def exported(request, tmp_path_factory):
    config = CONFIGS[request.param]
    net = make(config)
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / f"{config.name}.onnx", model_fingerprint="f00d")
    return config, net, path


def test_onnxruntime_matches_torch(exported):
    config, net, path = exported
    backend = OnnxRuntimeBackend(path, ["CPUExecutionProvider"])
    assert backend.info.config == config and backend.info.mask_input == "none"
    images = torch.rand(3, 3, 3, S, S, generator=torch.Generator().manual_seed(4))
    valid = torch.tensor([[True, False, True], [True, True, True], [False, True, False]])
    images[~valid] = float("nan")  # invalid views never reach the output, in the graph too
    ours = backend.run_flat(images, None, valid)
    with torch.no_grad():
        reference = net.forward_flat(images, None, valid)
    assert ours.shape == (3, net.flat_size) and torch.isfinite(ours).all()
    assert float((ours - reference).abs().max()) < TOLERANCE
    assert float(reference.std()) > 0.1  # the outputs vary: the comparison means something
    parts = backend.run(images, None, valid)
    assert torch.allclose(parts["identity"], net(images, None, valid)["identity"], atol=TOLERANCE)


def test_metadata_records_the_kind(exported):
    config, net, path = exported
    meta = read_onnx_metadata(path)
    stored = yaml.safe_load(meta["network_config"])
    assert stored["kind"] == config.kind and stored["name"] == config.name
    assert meta["inputs"] == '["images","valid"]' and meta["mask_input"] == "none"
    assert meta["flat_size"] == str(net.flat_size) and meta["model_fingerprint"] == "f00d"


def test_torch_and_onnx_coefficient_backends_agree(exported):
    _, net, path = exported
    images = torch.rand(1, 3, 3, S, S, generator=torch.Generator().manual_seed(5))
    torch_out = TorchBackend(net).run(images.numpy(), None, None)
    onnx_out = OnnxRuntimeCoefficientBackend(path, providers=["CPUExecutionProvider"], batch_size=1).run(images)
    for name in torch_out:
        assert float((torch_out[name] - onnx_out[name]).abs().max()) < TOLERANCE


def test_cli_exports_a_baseline_config(tmp_path, ict_npz, capsys):
    section = {"name": "tiny-cli", "kind": "deep3dface", "backbone_depth": 18, "backbone_width": 0.25}
    section.update(aggregation="cnet", input_size=S)
    config = tmp_path / "d3.yaml"
    config.write_text(yaml.safe_dump({"network": section}))
    out = tmp_path / "d3.onnx"
    code = cli_main.main(["export", "--config", str(config), "--model", str(ict_npz), "-o", str(out), "--verify"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "network 'tiny-cli'" in captured.out and "verify: ONNX Runtime vs PyTorch" in captured.out
    assert yaml.safe_load(read_onnx_metadata(out)["network_config"])["aggregation"] == "cnet"
