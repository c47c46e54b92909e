"""Photo loss (paper eq. 2): weighting, region, view validity, gradients and input checks."""

from __future__ import annotations

import itertools

import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable import FacePart
from dfmvr_core.networks.face_parts import WeightMapConfig
from dfmvr_training.losses import photo_loss

B, V, H, W = 2, 3, 16, 16


def _scene(seed: int = 0):
    """Input images, a face-part map (skin square with a nose blob) and a rendered face mask per view."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(B, V, H, W, 3, generator=g, dtype=torch.float64)
    parts = torch.zeros(B, V, H, W, dtype=torch.int64)
    parts[..., 3:13, 3:13] = FacePart.SKIN
    parts[..., 7:9, 7:9] = FacePart.NOSE
    rendered_mask = torch.zeros(B, V, H, W, dtype=torch.bool)
    rendered_mask[..., 5:15, 5:15] = True  # overlaps the input face, and spills onto its background
    return image, parts, rendered_mask


def test_zero_for_identical_images_and_exact_for_a_constant_error():
    image, parts, mask = _scene()
    assert torch.equal(photo_loss(image, image, mask, parts), torch.zeros(B, dtype=torch.float64))
    for c in (0.01, 0.1, 0.3):
        shifted = image + torch.tensor([c, 0.0, 0.0], dtype=torch.float64)
        torch.testing.assert_close(photo_loss(shifted, image, mask, parts), torch.full((B,), c, dtype=torch.float64))
    grey = image + 0.2
    torch.testing.assert_close(
        photo_loss(grey, image, mask, parts), torch.full((B,), 0.2 * 3**0.5, dtype=torch.float64)
    )


def test_increases_with_the_perturbation():
    image, parts, mask = _scene()
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    losses = [photo_loss(image + s * noise, image, mask, parts) for s in (0.0, 0.01, 0.05, 0.2)]
    for smaller, larger in itertools.pairwise(losses):
        assert torch.all(larger > smaller)


def test_three_level_weights_normalised_by_their_sum():
    parts = torch.full((1, 1, 1, 3), int(FacePart.SKIN))
    parts[..., 0] = FacePart.NOSE
    parts[..., 2] = FacePart.OTHER
    image = torch.zeros(1, 1, 1, 3, 3, dtype=torch.float64)
    rendered = image.clone()
    rendered[0, 0, 0, 0, 0] = 1.0  # error 1 on the feature pixel only
    mask = torch.ones(1, 1, 1, 3, dtype=torch.bool)
    config = WeightMapConfig(dilation_px=0, normalize=False)
    # input_face region: feature (254) and skin (128) pixels; the background pixel is outside P.
    expected = 254.0 / (254.0 + 128.0)
    torch.testing.assert_close(photo_loss(rendered, image, mask, parts, config).item(), expected)
    # rendered region: the background pixel (32) joins the denominator.
    expected_all = 254.0 / (254.0 + 128.0 + 32.0)
    torch.testing.assert_close(photo_loss(rendered, image, mask, parts, config, region="rendered").item(), expected_all)
    # normalising the map does not change eq. 2
    torch.testing.assert_close(
        photo_loss(rendered, image, mask, parts, WeightMapConfig(dilation_px=0)).item(), expected
    )


def test_ignores_pixels_outside_the_intersection():
    image, parts, mask = _scene()
    rendered = image + 0.05
    reference = photo_loss(rendered, image, mask, parts)
    outside = ~(mask & (parts != FacePart.OTHER))
    garbage = rendered.clone()
    garbage[outside] = torch.rand(int(outside.sum()), 3, dtype=torch.float64) * 5
    torch.testing.assert_close(photo_loss(garbage, image, mask, parts), reference)
    # With region="rendered" the rendered face over the input background counts.
    assert torch.all(photo_loss(garbage, image, mask, parts, region="rendered") > reference * 2)


def test_invalid_views_are_excluded():
    image, parts, mask = _scene()
    rendered = image + 0.1 * torch.rand(image.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    valid = torch.tensor([[True, True, False], [False, True, True]])
    broken = rendered.clone()
    broken[0, 2] = 7.0
    broken[1, 0] = -3.0
    got = photo_loss(broken, image, mask, parts, valid=valid)
    first = photo_loss(rendered[:1, :2], image[:1, :2], mask[:1, :2], parts[:1, :2])
    second = photo_loss(rendered[1:, 1:], image[1:, 1:], mask[1:, 1:], parts[1:, 1:])
    torch.testing.assert_close(got, torch.cat([first, second]))
    # a view whose region is empty is left out; a sample without any counted view gives 0
    empty = mask.clone()
    empty[0, 0] = False
    torch.testing.assert_close(
        photo_loss(rendered, image, empty, parts)[0],
        photo_loss(rendered[:1, 1:], image[:1, 1:], mask[:1, 1:], parts[:1, 1:])[0],
    )
    assert photo_loss(rendered, image, mask, parts, valid=torch.zeros(B, V, dtype=torch.bool)).eq(0).all()


def test_gradient_only_inside_the_region():
    image, parts, mask = _scene()
    rendered = (image + 0.1).requires_grad_(True)
    photo_loss(rendered, image, mask, parts).sum().backward()
    grad_norm = rendered.grad.abs().sum(-1)
    region = mask & (parts != FacePart.OTHER)
    assert torch.all(grad_norm[region] > 0)
    assert torch.all(grad_norm[~region] == 0)
    assert torch.isfinite(rendered.grad).all()
    # identical images: zero loss, finite (zero) gradient, no NaN from the norm at 0
    same = image.clone().requires_grad_(True)
    photo_loss(same, image, mask, parts).sum().backward()
    assert torch.equal(same.grad, torch.zeros_like(same))


def test_bad_input_raises_naming_the_argument():
    image, parts, mask = _scene()
    nan = image.clone()
    nan[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ShapeError, match=r"rendered_rgb.*non-finite"):
        photo_loss(nan, image, mask, parts)
    with pytest.raises(ShapeError, match=r"input_rgb.*non-finite"):
        photo_loss(image, nan, mask, parts)
    with pytest.raises(ShapeError, match="input_rgb"):
        photo_loss(image, image[..., :8, :], mask, parts)
    with pytest.raises(ShapeError, match="rendered_rgb"):
        photo_loss(image.movedim(-1, 2), image, mask, parts)  # channels first is refused
    with pytest.raises(ShapeError, match="rendered_face_mask"):
        photo_loss(image, image, mask[:, :2], parts)
    with pytest.raises(ShapeError, match="input_parts"):
        photo_loss(image, image, mask, parts + 10)
    with pytest.raises(ShapeError, match="input_parts"):
        photo_loss(image, image, mask, parts.double())
    with pytest.raises(ShapeError, match="valid"):
        photo_loss(image, image, mask, parts, valid=torch.ones(B, V + 1, dtype=torch.bool))
    with pytest.raises(ConfigError, match="region"):
        photo_loss(image, image, mask, parts, region="everything")
