"""BiSeNet face parser: checkpoint-compatible layout, forward contract, checkpoint loading errors."""

from __future__ import annotations

import dataclasses
import socket
import urllib.request
from pathlib import Path

import pytest
import torch

from dfmvr_core.errors import ModelFileError, ShapeError
from dfmvr_core.networks.face_parser import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_CELEBA_CLASSES,
    BiSeNet,
    load_face_parser,
    normalize_imagenet,
)


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k  # every conv of the model is bias-free


def _bn(c: int) -> int:
    return 2 * c  # affine weight + bias


def _cbr(c_in: int, c_out: int, k: int) -> int:
    return _conv(c_in, c_out, k) + _bn(c_out)


def _basic_block(c_in: int, c_out: int) -> int:
    params = _cbr(c_in, c_out, 3) + _cbr(c_out, c_out, 3)
    return params + (_cbr(c_in, c_out, 1) if c_in != c_out else 0)  # stride-2 stages have a projection


def _expected_parameter_count(n_classes: int = 19) -> int:
    resnet = _cbr(3, 64, 7) + sum(
        _basic_block(c_in, c_out) + _basic_block(c_out, c_out)
        for c_in, c_out in ((64, 64), (64, 128), (128, 256), (256, 512))
    )
    arm = [_cbr(c_in, 128, 3) + _conv(128, 128, 1) + _bn(128) for c_in in (256, 512)]
    context = resnet + sum(arm) + 2 * _cbr(128, 128, 3) + _cbr(512, 128, 1)
    ffm = _cbr(256, 256, 1) + _conv(256, 64, 1) + _conv(64, 256, 1)
    heads = (_cbr(256, 256, 3) + _conv(256, n_classes, 1)) + 2 * (_cbr(128, 64, 3) + _conv(64, n_classes, 1))
    return context + ffm + heads


# Keys and shapes of face-parsing.PyTorch's 79999_iter.pth, read off that project's model.py / resnet.py.
CHECKPOINT_KEYS = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.bn1.running_mean": (64,),
    "cp.resnet.layer1.0.conv1.weight": (64, 64, 3, 3),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer2.0.downsample.1.running_var": (128,),
    "cp.resnet.layer4.1.bn2.weight": (512,),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm16.conv.bn.bias": (128,),
    "cp.arm32.conv.conv.weight": (128, 512, 3, 3),
    "cp.arm32.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm32.bn_atten.weight": (128,),
    "cp.conv_head32.conv.weight": (128, 128, 3, 3),
    "cp.conv_head16.conv.weight": (128, 128, 3, 3),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.conv.weight": (64, 128, 3, 3),
    "conv_out16.conv_out.weight": (19, 64, 1, 1),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


@pytest.fixture(scope="module")
def model() -> BiSeNet:
    torch.manual_seed(0)
    net = BiSeNet()
    # Non-trivial BatchNorm statistics so a checkpoint round trip that dropped buffers would show.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def checkpoint(tmp_path: Path, model: BiSeNet) -> Path:
    path = tmp_path / "79999_iter.pth"
    torch.save(model.state_dict(), path)
    return path


def test_parameter_count_matches_architecture_and_published_size(model: BiSeNet) -> None:
    n = sum(p.numel() for p in model.parameters())
    assert _expected_parameter_count() == 13_300_416
    assert n == 13_300_416
    assert abs(n - 13.3e6) / 13.3e6 < 0.01


def test_state_dict_has_checkpoint_key_names_and_shapes(model: BiSeNet) -> None:
    state = model.state_dict()
    for key, shape in CHECKPOINT_KEYS.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith(("sp.", "cp.resnet.fc")) for k in state)  # no spatial-path module, no classifier
    assert all(k.split(".")[0] in {"cp", "ffm", "conv_out", "conv_out16", "conv_out32"} for k in state)


@pytest.mark.parametrize("size", [(224, 224), (512, 512), (100, 130)])
def test_eval_output_is_logits_at_input_resolution(model: BiSeNet, size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1, NUM_CELEBA_CLASSES, *size)
    assert out.dtype == torch.float32


def test_training_mode_returns_main_and_two_auxiliary_logits(images: torch.Tensor) -> None:
    net = BiSeNet().train()
    out = net(images)
    assert isinstance(out, tuple) and len(out) == 3
    for logits in out:
        assert logits.shape == (2, 19, 64, 64)
    assert not torch.allclose(out[1], out[2])
    sum(o.sum() for o in out).backward()
    assert net.conv_out16.conv_out.weight.grad is not None and net.conv_out32.conv_out.weight.grad is not None


def test_normalize_imagenet_and_parse_applies_it(model: BiSeNet, images: torch.Tensor) -> None:
    mean_image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert torch.allclose(normalize_imagenet(mean_image), torch.zeros(1, 3, 4, 4), atol=1e-6)
    one = normalize_imagenet(torch.ones(1, 3, 1, 1)).flatten()
    expected = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])
    assert torch.allclose(one, expected)
    with torch.no_grad():
        parsed = model.parse(images)
        assert torch.allclose(parsed, model(normalize_imagenet(images)))
        assert not torch.allclose(parsed, model(images), atol=1e-3)
        labels = model.parse_labels(images)
    assert labels.shape == (2, 64, 64) and labels.dtype == torch.int64
    assert torch.equal(labels, parsed.argmax(1))


def test_parse_is_differentiable_wrt_images(model: BiSeNet) -> None:
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    model.parse(x).logsumexp(1).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bad", [torch.zeros(1, 4, 32, 32), torch.zeros(3, 32, 32), torch.full((1, 3, 32, 32), float("nan"))]
)
def test_bad_images_raise_shape_error_naming_argument(model: BiSeNet, bad: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match="images"):
        model(bad)
    with pytest.raises(ShapeError, match="images"):
        model.parse(bad)


def test_normalize_rejects_integer_images() -> None:
    with pytest.raises(ShapeError, match="images"):
        normalize_imagenet(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_construction_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access during construction")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    net = BiSeNet()
    assert sum(p.numel() for p in net.parameters()) == 13_300_416


def test_round_trip_gives_identical_outputs_frozen_eval(model: BiSeNet, checkpoint: Path, images: torch.Tensor) -> None:
    loaded = load_face_parser(checkpoint)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    unfrozen = load_face_parser(checkpoint, freeze=False)
    assert all(p.requires_grad for p in unfrozen.parameters()) and not unfrozen.training


def test_wrapped_and_module_prefixed_checkpoint_loads(model: BiSeNet, tmp_path: Path, images: torch.Tensor) -> None:
    path = tmp_path / "wrapped.pth"
    state = {f"module.{k}": v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "iteration": 79999}, path)
    with torch.no_grad():
        assert torch.equal(load_face_parser(path)(images), model(images))


def _save(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save(state, path)
    return path


def test_missing_key_names_file_and_key(model: BiSeNet, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    del state["cp.arm32.conv_atten.weight"]
    path = _save(tmp_path / "missing.pth", state)
    with pytest.raises(ModelFileError, match=r"missing\.pth.*1 missing key\(s\): cp\.arm32\.conv_atten\.weight"):
        load_face_parser(path)


def test_wrong_shape_names_key_and_shapes(model: BiSeNet, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    state["conv_out.conv_out.weight"] = torch.zeros(11, 256, 1, 1)  # e.g. an 11-class LaPa checkpoint
    path = _save(tmp_path / "shape.pth", state)
    with pytest.raises(ModelFileError, match=r"shape\.pth.*conv_out\.conv_out\.weight \(11, 256, 1, 1\) \(expected"):
        load_face_parser(path)


def test_unexpected_key_is_reported(model: BiSeNet, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    state["sp.conv1.conv.weight"] = torch.zeros(64, 3, 7, 7)
    path = _save(tmp_path / "extra.pth", state)
    with pytest.raises(ModelFileError, match=r"extra\.pth.*unexpected key\(s\): sp\.conv1\.conv\.weight"):
        load_face_parser(path)


def test_non_finite_weights_are_refused(model: BiSeNet, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    state["ffm.conv1.weight"] = torch.full_like(state["ffm.conv1.weight"], float("nan"))
    path = _save(tmp_path / "nan.pth", state)
    with pytest.raises(ModelFileError, match=r"nan\.pth.*ffm\.conv1\.weight"):
        load_face_parser(path)


def test_truncated_file_names_file(checkpoint: Path, tmp_path: Path) -> None:
    data = checkpoint.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"truncated\.pth"):
        load_face_parser(path)


def test_missing_file_and_foreign_content(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"nope\.pth.*not found"):
        load_face_parser(tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelFileError, match=r"garbage\.pth"):
        load_face_parser(garbage)
    listed = _save(tmp_path / "list.pth", [torch.zeros(1)])  # type: ignore[arg-type]
    with pytest.raises(ModelFileError, match=r"list\.pth.*expected a state_dict"):
        load_face_parser(listed)


@dataclasses.dataclass
class _Pickled:
    value: int = 1


def test_non_weights_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickle.pth"
    torch.save({"cp.resnet.conv1.weight": _Pickled()}, path)
    with pytest.raises(ModelFileError, match=r"pickle\.pth.*weights-only"):
        load_face_parser(path)


def test_ten_class_parser_loads(tmp_path: Path) -> None:
    """`dfmvr train --mode parser` writes 10-class parsers (the paper's face parts); they load with their head."""
    torch.manual_seed(0)
    ten = BiSeNet(10)
    path = _save(tmp_path / "parts.pth", {"state_dict": ten.state_dict()})
    loaded = load_face_parser(path)
    assert loaded.conv_out.conv_out.out_channels == 10
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded.parse(x), ten.eval().parse(x))
