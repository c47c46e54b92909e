"""``dfmvr export`` end to end through ``dfmvr_core.cli.main.main`` (exit codes, messages, files, metadata).

A tiny network config (YAML, the same loader as ``--config small``/``paper``) keeps each export at about a second;
the named configs' exports are covered by test_inference_onnx_parity.py.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import yaml

import dfmvr_core.cli.main as cli_main
from dfmvr_core.inference import OnnxRuntimeBackend, read_onnx_metadata, save_checkpoint
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import load_network_config

TINY_YAML = {
    "network": {
        "name": "tiny",
        "encoder_channels": [4, 8],
        "fused_channels": 4,
        "regressor": "cnn",
        "regressor_width": 0.25,
        "input_downsample": 4,
    }
}


@pytest.fixture
def run_cli():
    """``main(argv)`` of the installed ``dfmvr`` command (``export`` comes from its entry point)."""
    return cli_main.main


@pytest.fixture
def tiny_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_YAML))
    return path


def test_fresh_export_warns_and_writes_both_files(run_cli, tiny_yaml, ict_npz, ict_model, tmp_path, capsys):
    out, parser_out = tmp_path / "out" / "model.onnx", tmp_path / "out" / "parser.onnx"
    argv = ["export", "--config", str(tiny_yaml), "--model", str(ict_npz), "-o", str(out)]
    assert run_cli([*argv, "--parser-out", str(parser_out), "--verify"]) == 0
    captured = capsys.readouterr()
    assert "network: no --checkpoint given: exporting FRESHLY INITIALISED (untrained) weights" in captured.err
    assert "face parser: no --parser-checkpoint given" in captured.err
    assert f"wrote {out}" in captured.out and "FRESH (untrained) weights" in captured.out
    assert "verify: ONNX Runtime vs PyTorch" in captured.out and f"wrote {parser_out}" in captured.out
    meta = read_onnx_metadata(out)
    assert meta["fresh_weights"] == "true" and meta["network"] == "tiny"
    assert meta["model_fingerprint"] == ict_model.fingerprint() and meta["expression_kind"] == "blendshape"
    assert read_onnx_metadata(parser_out)["kind"] == "dfmvr-face-parser"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "parser.onnx"]


def test_export_from_a_checkpoint(run_cli, tiny_yaml, ict_npz, ict_model, tmp_path, capsys):
    torch.manual_seed(1)
    net = DFMVRNet(load_network_config(tiny_yaml), ict_model.coefficient_sizes, ict_model.expression_kind)
    checkpoint = save_checkpoint(tmp_path / "net.pt", net, model_fingerprint=ict_model.fingerprint())
    out = tmp_path / "model.onnx"
    # no --config (the checkpoint's), --model must agree with the checkpoint
    assert run_cli(["export", "--checkpoint", str(checkpoint), "--model", str(ict_npz), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "FRESH" not in captured.err + captured.out
    backend = OnnxRuntimeBackend(out)
    assert backend.info.fresh_weights is False and backend.info.weights_source == str(checkpoint)
    images, masks = torch.rand(1, 3, 3, 224, 224), torch.randint(0, 10, (1, 3, 224, 224))
    with torch.no_grad():
        assert float((backend.run_flat(images, masks) - net.eval().forward_flat(images, masks)).abs().max()) < 1e-5


def test_checkpoint_for_another_model_is_refused(run_cli, tiny_yaml, ict_model, bfm_mat, tmp_path, capsys):
    net = DFMVRNet(load_network_config(tiny_yaml), ict_model.coefficient_sizes, ict_model.expression_kind)
    checkpoint = save_checkpoint(tmp_path / "net.pt", net, model_fingerprint=ict_model.fingerprint())
    out = tmp_path / "model.onnx"
    assert run_cli(["export", "--checkpoint", str(checkpoint), "--model", str(bfm_mat[0]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "dfmvr export: error:" in err and "net.pt" in err and "coefficient sizes identity 100" in err
    assert not out.exists()


def test_usage_errors(run_cli, tiny_yaml, ict_npz, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert run_cli(["export", "--config", "small", "-o", str(out)]) == 2
    assert "pass --model MORPHABLE_MODEL" in capsys.readouterr().err
    assert run_cli(["export", "--model", str(ict_npz), "-o", str(out)]) == 2
    assert "--config: required without --checkpoint" in capsys.readouterr().err
    argv = ["export", "--config", str(tiny_yaml), "--model", str(ict_npz), "-o", str(out)]
    assert run_cli([*argv, "--precision", "fp16"]) == 2
    assert "--precision: only with --trt-engine ENGINE" in capsys.readouterr().err
    assert run_cli([*argv, "--trt-engine", str(tmp_path / "e.plan"), "--max-batch", "0"]) == 2
    assert "--max-batch: expected a positive int, got 0" in capsys.readouterr().err
    assert run_cli(["export", "--config", "nonsense", "--model", str(ict_npz), "-o", str(out)]) == 2
    assert "not a named config" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_trt_engine_without_tensorrt_keeps_the_onnx_file(run_cli, tiny_yaml, ict_npz, tmp_path, capsys):
    out, engine = tmp_path / "model.onnx", tmp_path / "model.engine"
    argv = ["export", "--config", str(tiny_yaml), "--model", str(ict_npz), "-o", str(out), "--trt-engine", str(engine)]
    assert run_cli([*argv, "--precision", "fp32", "--max-batch", "2"]) == 2
    err = capsys.readouterr().err
    assert "--trt-engine: TensorRT not installed; use backend onnxruntime or torch" in err
    assert f"The ONNX file {out} was written" in err
    assert read_onnx_metadata(out)["network"] == "tiny" and not engine.exists()
