"""Coefficient regularisation (paper eq. 8) and the authors' lighting / reflectance priors."""

from __future__ import annotations

import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.morphable import FacePart, ambient_sh
from dfmvr_training.losses import (
    PAPER_REGULARIZATION_WEIGHTS,
    lighting_regularization_loss,
    reflectance_loss,
    regularization_loss,
)


def test_eq8_weighted_squared_norms():
    assert PAPER_REGULARIZATION_WEIGHTS == (1.0, 0.8, 0.017)
    identity = torch.zeros(2, 100)
    expression = torch.zeros(2, 53)
    albedo = torch.zeros(2, 60)
    assert torch.equal(regularization_loss(identity, expression, albedo), torch.zeros(2))
    identity[0, :4] = 0.5  # ‖α‖² = 1
    expression[1, 0] = 1.0  # a fully active blendshape, ‖β‖² = 1
    albedo[1, :] = 2.0  # ‖γ‖² = 240
    torch.testing.assert_close(
        regularization_loss(identity, expression, albedo), torch.tensor([1.0, 0.8 + 0.017 * 240])
    )
    torch.testing.assert_close(
        regularization_loss(identity, expression, albedo, weights=(2.0, 0.0, 1.0)), torch.tensor([2.0, 240.0])
    )
    # increasing with the coefficients, gradient 2·ω·x
    x = torch.full((1, 100), 0.3, requires_grad=True)
    regularization_loss(x, torch.zeros(1, 53), torch.zeros(1, 60)).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((1, 100), 0.6))
    assert regularization_loss(2 * x.detach(), expression[:1], albedo[:1]) > regularization_loss(
        x.detach(), expression[:1], albedo[:1]
    )


def test_regularization_bad_input():
    ok = (torch.zeros(2, 10), torch.zeros(2, 5), torch.zeros(2, 6))
    with pytest.raises(ShapeError, match="expression"):
        regularization_loss(ok[0], torch.zeros(3, 5), ok[2])
    with pytest.raises(ShapeError, match="albedo"):
        regularization_loss(ok[0], ok[1], torch.zeros(2, 6, 1))
    nan = torch.zeros(2, 10)
    nan[1, 1] = float("nan")
    with pytest.raises(ShapeError, match=r"identity.*non-finite"):
        regularization_loss(nan, ok[1], ok[2])
    with pytest.raises(ConfigError, match="weights"):
        regularization_loss(*ok, weights=(1.0, -1.0, 0.0))
    with pytest.raises(ConfigError, match="weights"):
        regularization_loss(*ok, weights=(1.0, 1.0))


def test_lighting_prior_is_zero_for_white_light():
    white = ambient_sh(3, intensity=0.9).view(1, 3, 27)
    assert lighting_regularization_loss(white).abs().max() < 1e-12
    tinted = white.clone().view(1, 3, 3, 9)
    tinted[:, :, 0, 0] += 0.3  # red DC
    loss = lighting_regularization_loss(tinted.view(1, 3, 27))
    assert loss.shape == (1,) and loss.item() > 0
    torch.testing.assert_close(lighting_regularization_loss(tinted.view(1, 3, 27)[:, 0]), loss)  # (B, 27) accepted
    with pytest.raises(ShapeError, match="sh"):
        lighting_regularization_loss(torch.zeros(1, 3, 26))


def test_reflectance_prior_is_the_skin_albedo_variance(ict_model):
    skin = ict_model.part_labels == FacePart.SKIN
    uniform = torch.full((1, ict_model.num_vertices, 3), 0.6)
    assert reflectance_loss(uniform, skin).abs().max() < 1e-12
    varied = uniform.clone()
    varied[0, ~skin] = 0.0  # non-skin vertices do not count
    assert reflectance_loss(varied, skin).abs().max() < 1e-12
    spots = uniform.clone()
    spots[0, torch.nonzero(skin).flatten()[::2], 0] += 0.2
    assert reflectance_loss(spots, skin).item() > 0
    with pytest.raises(ShapeError, match="skin_mask"):
        reflectance_loss(uniform, skin[:-1])
    with pytest.raises(ShapeError, match="skin_mask"):
        reflectance_loss(uniform, torch.zeros_like(skin))
