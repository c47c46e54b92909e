"""Deep3DFace's hybrid loss terms: the naive Bayes skin model (fit, probability, files), skin attention, the
skin-attention photometric loss, the squared landmark loss, the perception loss with a small embedder, the texture
variance and the published weight preset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from dfmvr_core.errors import ConfigError, ModelFileError, ShapeError
from dfmvr_training.losses import (
    DEEP3DFACE_WEIGHTS,
    Deep3DFaceLossWeights,
    SkinColorModel,
    landmark_squared_loss,
    load_deep3dface_loss_weights,
    load_embedder,
    perception_loss,
    reflectance_loss,
    skin_attention,
    skin_photo_loss,
    texture_variance_loss,
)
from dfmvr_training.losses.deep3dface import freeze_embedder, rgb_to_ycrcb

SKIN = torch.tensor([0.85, 0.62, 0.50])


def _labelled_image(seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, size, size, 3) images: a skin-coloured disc (noisy) on a random coloured background, and its mask."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    mask = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).expand(2, size, size)
    background = torch.rand(2, size, size, 3, generator=g)
    skin = (SKIN + 0.03 * torch.randn(2, size, size, 3, generator=g)).clamp(0, 1)
    return torch.where(mask[..., None], skin, background), mask


# ---------------------------------------------------------------------------------------------------- skin model
def test_skin_model_fit_statistics_and_probability():
    images, mask = _labelled_image()
    model = SkinColorModel.fit(images, mask)
    colours = rgb_to_ycrcb(images.double())
    np.testing.assert_allclose(model.mean[1], colours[mask].mean(0).numpy(), atol=1e-9)
    np.testing.assert_allclose(model.var[0], colours[~mask].var(0, unbiased=False).numpy() + 1e-6, rtol=1e-6)
    assert model.prior[1] == pytest.approx(float(mask.float().mean()))
    prob = model.probability(images)
    assert prob.shape == mask.shape and prob.dtype == torch.float32
    assert float(prob[mask].mean()) > 0.95 and float(prob[~mask].mean()) < 0.2
    blue, skin = torch.tensor([[0.1, 0.2, 0.9]]), SKIN[None]
    assert float(model.probability(blue)) < 0.01 < 0.99 < float(model.probability(skin))
    # streamed fit == fit on everything at once
    streamed = SkinColorModel.fit_batches([(images[:1], mask[:1]), (images[1:], mask[1:])])
    np.testing.assert_allclose(streamed.mean, model.mean, atol=1e-12)
    np.testing.assert_allclose(streamed.var, model.var, rtol=1e-9)


def test_skin_model_fit_errors():
    images, mask = _labelled_image()
    with pytest.raises(ShapeError, match="no skin pixel"):
        SkinColorModel.fit(images, torch.zeros_like(mask))
    with pytest.raises(ShapeError, match="skin_masks"):
        SkinColorModel.fit(images, mask[:, :-1])
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ShapeError, match="images"):
        SkinColorModel.fit(bad, mask)
    with pytest.raises(ShapeError, match="var"):
        SkinColorModel(mean=np.zeros((2, 3)), var=-np.ones((2, 3)), prior=np.array([0.5, 0.5]))


def test_skin_model_save_load_round_trip_and_bad_files(tmp_path):
    images, mask = _labelled_image()
    model = SkinColorModel.fit(images, mask)
    path = model.save(tmp_path / "skin.npz")
    loaded = SkinColorModel.load(path)
    torch.testing.assert_close(loaded.probability(images), model.probability(images))
    with pytest.raises(ModelFileError, match="not found"):
        SkinColorModel.load(tmp_path / "missing.npz")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match=r"corrupt\.npz"):
        SkinColorModel.load(corrupt)
    other = tmp_path / "other.npz"
    np.savez(other, format=np.array("something-else"), format_version=np.array(1), color_space=np.array("ycrcb"),
             mean=model.mean, var=model.var, prior=model.prior)  # fmt: skip
    with pytest.raises(ModelFileError, match="format"):
        SkinColorModel.load(other)
    negative = tmp_path / "negative.npz"
    np.savez(negative, format=np.array("dfmvr-skin-color-model"), format_version=np.array(1),
             color_space=np.array("ycrcb"), mean=model.mean, var=-model.var, prior=model.prior)  # fmt: skip
    with pytest.raises(ModelFileError, match="var"):
        SkinColorModel.load(negative)
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, format=np.array("dfmvr-skin-color-model"), mean=model.mean)
    with pytest.raises(ModelFileError, match="lacks"):
        SkinColorModel.load(truncated)


def test_skin_attention_is_one_above_half_else_probability():
    prob = torch.tensor([0.0, 0.2, 0.5, 0.51, 0.9, 1.0])
    torch.testing.assert_close(skin_attention(prob), torch.tensor([0.0, 0.2, 0.5, 1.0, 1.0, 1.0]))
    with pytest.raises(ShapeError, match="probability"):
        skin_attention(torch.tensor([1.5]))


# ---------------------------------------------------------------------------------------------------- photo
def _photo_scene():
    b, v, h, w = 2, 2, 8, 8
    target = torch.full((b, v, h, w, 3), 0.5, dtype=torch.float64)
    region = torch.zeros(b, v, h, w, dtype=torch.bool)
    region[..., 2:6, 2:6] = True
    return target, region


def test_skin_photo_loss_weighted_mean_over_region_and_views():
    target, region = _photo_scene()
    rendered = target.clone()
    rendered[..., 0] += 0.3  # error 0.3 everywhere
    attention = torch.ones(target.shape[:-1], dtype=torch.float64)
    torch.testing.assert_close(skin_photo_loss(rendered, target, region, attention), torch.full((2,), 0.3).double())
    # two error levels, weighted by attention: (1 * 0.3 * 8 + 0.5 * 0.6 * 8) / (8 + 0.5 * 8)
    rendered[..., 2:4, :, 0] += 0.3  # rows 2-3 of the region: error 0.6
    attention[..., 2:4, :] = 0.5
    expected = (0.3 * 8 + 0.5 * 0.6 * 8) / (8 + 4)
    loss = skin_photo_loss(rendered, target, region, attention)
    torch.testing.assert_close(loss, torch.full((2,), expected).double())
    # pixels outside the region do not count; invalid views and views without a region leave the mean
    rendered[..., 0, 0, :] = 5.0
    rendered[1, 1] += 1.0
    valid = torch.tensor([[True, True], [True, False]])
    torch.testing.assert_close(skin_photo_loss(rendered, target, region, attention, valid), loss)
    empty = region.clone()
    empty[0, 1] = False
    rendered2 = rendered.clone()
    rendered2[0, 1] += 2.0
    torch.testing.assert_close(skin_photo_loss(rendered2, target, empty, attention, valid)[0], loss[0])
    none_valid = torch.zeros(2, 2, dtype=torch.bool)
    assert torch.equal(skin_photo_loss(rendered, target, region, attention, none_valid), torch.zeros(2).double())


def test_skin_photo_loss_gradient_only_inside_weighted_region_and_errors():
    target, region = _photo_scene()
    rendered = (target + 0.1).requires_grad_(True)
    attention = torch.ones(target.shape[:-1], dtype=torch.float64)
    attention[..., 3, 3] = 0.0
    skin_photo_loss(rendered, target, region, attention).sum().backward()
    grad = rendered.grad.abs().sum(-1)
    assert bool((grad[~region] == 0).all()) and float(grad[..., 3, 3].abs().max()) == 0.0
    assert bool((grad[..., 2, 2] > 0).all())
    same = target.clone().requires_grad_(True)
    skin_photo_loss(same, target, region, attention).sum().backward()
    assert torch.isfinite(same.grad).all()  # no NaN at a perfect fit
    with pytest.raises(ShapeError, match="input_rgb"):
        skin_photo_loss(rendered, target[:, :1], region, attention)
    with pytest.raises(ShapeError, match="attention"):
        skin_photo_loss(rendered, target, region, attention * 2)
    with pytest.raises(ShapeError, match="rendered_rgb"):
        skin_photo_loss(rendered.detach() * float("nan"), target, region, attention)


# ---------------------------------------------------------------------------------------------------- landmarks
def test_landmark_squared_loss_values_scale_and_visibility():
    target = torch.rand(2, 1, 68, 2, generator=torch.Generator().manual_seed(0)) * 64
    pred = target + torch.tensor([3.0, 4.0])  # distance 5 everywhere
    mean_w = (57 + 11 * 20) / 68
    torch.testing.assert_close(landmark_squared_loss(pred, target), torch.full((2,), 25 * mean_w))
    torch.testing.assert_close(landmark_squared_loss(pred, target, scale=2.0), torch.full((2,), 100 * mean_w))
    ones = torch.ones(68)
    torch.testing.assert_close(landmark_squared_loss(pred, target, weights=ones), torch.full((2,), 25.0))
    visibility = torch.zeros(2, 1, 68, dtype=torch.bool)
    visibility[:, :, :10] = True
    pred2 = pred.clone()
    pred2[:, :, 10:] += 100  # invisible points do not count
    torch.testing.assert_close(landmark_squared_loss(pred2, target, weights=ones, visibility=visibility), 25 * ones[:2])
    with pytest.raises(ShapeError, match="weights"):
        landmark_squared_loss(pred[:, :, :5], target[:, :, :5])
    with pytest.raises(ConfigError, match="scale"):
        landmark_squared_loss(pred, target, scale=0.0)


# ---------------------------------------------------------------------------------------------------- perception
class MeanColour(nn.Module):
    """(N, 3, S, S) → (N, 3) mean colour: embeddings whose cosine is computable by hand."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class TinyEmbedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def _solid(colour, b=1, v=2, size=16):
    return torch.tensor(colour, dtype=torch.float32).expand(b, v, size, size, 3).clone()


def test_perception_loss_hand_values_and_view_mask():
    red, green = _solid([1.0, 0.0, 0.0]), _solid([0.0, 1.0, 0.0])
    embedder = MeanColour()
    # [0, 1] input: (1,0,0)·(0,1,0) = 0 → 1; signed: (1,-1,-1)·(-1,1,-1)/3 = -1/3 → 4/3
    torch.testing.assert_close(perception_loss(embedder, red, green, signed_input=False), torch.tensor([1.0]))
    torch.testing.assert_close(perception_loss(embedder, red, green, input_size=8), torch.tensor([4.0 / 3.0]))
    assert float(perception_loss(embedder, red, red)) == pytest.approx(0.0, abs=1e-6)
    mixed = red.clone()
    mixed[:, 1] = green[:, 1]  # view 1 disagrees
    torch.testing.assert_close(perception_loss(embedder, red, mixed, input_size=None), torch.tensor([2.0 / 3.0]))
    valid = torch.tensor([[True, False]])
    assert float(perception_loss(embedder, red, mixed, valid)) == pytest.approx(0.0, abs=1e-6)
    none = torch.zeros(1, 2, dtype=torch.bool)
    assert float(perception_loss(embedder, red, mixed, none)) == 0.0


def test_perception_loss_gradient_reaches_rendering_not_embedder_and_bad_embedders():
    torch.manual_seed(0)
    embedder = freeze_embedder(TinyEmbedder())
    g = torch.Generator().manual_seed(1)
    inputs = torch.rand(2, 2, 24, 24, 3, generator=g)
    rendered = torch.rand(2, 2, 24, 24, 3, generator=g).requires_grad_(True)
    loss = perception_loss(embedder, inputs, rendered, input_size=16)
    assert loss.shape == (2,) and bool((loss > 0).all()) and bool((loss <= 2).all())
    loss.sum().backward()
    assert rendered.grad is not None and float(rendered.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in embedder.parameters())
    assert not embedder.training

    class Spatial(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ShapeError, match=r"embedder: expected float embeddings of shape \(4, D\)"):
        perception_loss(Spatial(), inputs, rendered.detach())

    class NotFinite(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3)) * float("nan")

    with pytest.raises(ShapeError, match="NaN"):
        perception_loss(NotFinite(), inputs, rendered.detach())
    with pytest.raises(ShapeError, match="rendered_rgb"):
        perception_loss(embedder, inputs, rendered.detach()[:, :1])
    with pytest.raises(ConfigError, match="input_size"):
        perception_loss(embedder, inputs, rendered.detach(), input_size=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_load_embedder_torchscript_and_export_files_and_errors(tmp_path):
    torch.manual_seed(0)
    module = TinyEmbedder()
    path = tmp_path / "embedder.pt"
    torch.jit.script(module).save(str(path))
    loaded = load_embedder(path)
    assert not loaded.training and all(not p.requires_grad for p in loaded.parameters())
    g = torch.Generator().manual_seed(2)
    inputs, rendered = torch.rand(1, 2, 16, 16, 3, generator=g), torch.rand(1, 2, 16, 16, 3, generator=g)
    torch.testing.assert_close(perception_loss(loaded, inputs, rendered), perception_loss(module, inputs, rendered))
    exported = tmp_path / "embedder.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.export.save(torch.export.export(module.eval(), (torch.rand(2, 3, 112, 112),), dynamic_shapes=({0: batch},)),
                      str(exported))  # fmt: skip
    from_export = load_embedder(exported)
    assert all(not p.requires_grad for p in from_export.parameters())
    torch.testing.assert_close(
        perception_loss(from_export, inputs, rendered), perception_loss(module, inputs, rendered)
    )
    with pytest.raises(ModelFileError, match="not found"):
        load_embedder(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match="not a TorchScript embedder"):
        load_embedder(corrupt)
    corrupt_export = tmp_path / "corrupt.pt2"
    corrupt_export.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFileError, match=r"not a torch\.export program"):
        load_embedder(corrupt_export)


# ---------------------------------------------------------------------------------------------------- others
def test_texture_variance_is_the_reflectance_prior():
    g = torch.Generator().manual_seed(0)
    albedo = torch.rand(2, 10, 3, generator=g, dtype=torch.float64)
    skin = torch.zeros(10, dtype=torch.bool)
    skin[2:8] = True
    torch.testing.assert_close(texture_variance_loss(albedo, skin), reflectance_loss(albedo, skin))
    uniform = albedo.clone()
    uniform[:, skin] = 0.4
    torch.testing.assert_close(texture_variance_loss(uniform, skin), torch.zeros(2, dtype=torch.float64))


def test_deep3dface_weights_preset_overrides_and_errors():
    w = DEEP3DFACE_WEIGHTS  # sicxu/Deep3DFaceRecon_pytorch models/facerecon_model.py defaults
    published = (w.photo, w.landmark, w.perception, w.regularization, w.lighting, w.reflectance)
    assert published == (1.92, 1.6e-3, 0.2, 3e-4, 10.0, 5.0)
    assert w.regularization_weights == (1.0, 0.8, 1.7e-2) and w.landmark_scheme == "deep3dface"
    assert w.term_weights() == {
        "photo": 1.92,
        "landmark": 1.6e-3,
        "perception": 0.2,
        "regularization": 3e-4,
        "lighting": 10.0,
        "reflectance": 5.0,
    }
    assert load_deep3dface_loss_weights(None) == w
    assert load_deep3dface_loss_weights({"preset": "deep3dface", "perception": 0.0}) == dataclasses.replace(
        w, perception=0.0
    )
    with pytest.raises(ConfigError, match="preset"):
        load_deep3dface_loss_weights({"preset": "paper"})
    with pytest.raises(ConfigError, match="photo"):
        load_deep3dface_loss_weights({"photo": -1.0})
    with pytest.raises(ConfigError, match="colour"):
        load_deep3dface_loss_weights({"colour": 1.0})
    with pytest.raises(ConfigError, match="landmark_scheme"):
        Deep3DFaceLossWeights(landmark_scheme="nope")
