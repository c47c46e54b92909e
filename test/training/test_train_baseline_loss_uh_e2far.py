"""UH-E2FAR's neutral / expressive shape losses on the ICT model: decomposition, values, masking of samples without
ground truth, gradients, errors; the weights preset."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_training.losses import (
    UH_E2FAR_WEIGHTS,
    UHE2FARLossWeights,
    expressive_shape_loss,
    load_uh_e2far_loss_weights,
    neutral_shape_loss,
)
from dfmvr_training.losses.uh_e2far import expression_offsets, neutral_shapes


@pytest.fixture(scope="module")
def coefficients(ict_model):
    sizes = ict_model.coefficient_sizes
    g = torch.Generator().manual_seed(0)
    identity = torch.randn(2, sizes.identity, generator=g)
    expression = torch.rand(2, sizes.expression, generator=g) * 0.5
    return identity, expression


def test_neutral_plus_offsets_is_the_decoded_shape(ict_model, coefficients):
    identity, expression = coefficients
    full = ict_model.decode_shape(identity, expression)
    torch.testing.assert_close(neutral_shapes(ict_model, identity) + expression_offsets(ict_model, expression), full)
    zero = torch.zeros_like(expression)
    torch.testing.assert_close(expression_offsets(ict_model, zero), torch.zeros_like(full))


def test_shape_losses_values_masking_and_separation(ict_model, coefficients):
    identity, expression = coefficients
    zero_id, zero_exp = torch.zeros_like(identity), torch.zeros_like(expression)
    assert float(neutral_shape_loss(ict_model, identity, identity).abs().max()) < 1e-5
    assert float(expressive_shape_loss(ict_model, expression, expression).abs().max()) < 1e-5
    # the mean face against the truth: the mean distance of the identity displacements
    expected = (neutral_shapes(ict_model, identity) - ict_model.mean_shape).norm(dim=-1).mean(dim=1)
    torch.testing.assert_close(neutral_shape_loss(ict_model, zero_id, identity), expected, rtol=1e-4, atol=1e-7)
    offsets = expression_offsets(ict_model, expression).norm(dim=-1).mean(dim=1)
    torch.testing.assert_close(expressive_shape_loss(ict_model, zero_exp, expression), offsets, rtol=1e-4, atol=1e-7)
    assert bool((expected > 1e-3).all())  # millimetres or more: a real signal in metres
    # samples without ground truth count 0; a region restricts the vertices
    valid = torch.tensor([True, False])
    masked = neutral_shape_loss(ict_model, zero_id, identity, valid)
    assert float(masked[1]) == 0.0 and float(masked[0]) == pytest.approx(float(expected[0]), rel=1e-4)
    region = torch.zeros(ict_model.num_vertices)
    region[:100] = 1.0
    part = neutral_shape_loss(ict_model, zero_id, identity, vertex_weights=region)
    first = (neutral_shapes(ict_model, identity) - ict_model.mean_shape)[:, :100].norm(dim=-1).mean(dim=1)
    torch.testing.assert_close(part, first, rtol=1e-4, atol=1e-7)


def test_shape_losses_gradients_reach_their_own_coefficients(ict_model, coefficients):
    identity, expression = coefficients
    pred_id = torch.zeros_like(identity, requires_grad=True)
    pred_exp = torch.zeros_like(expression, requires_grad=True)
    loss = neutral_shape_loss(ict_model, pred_id, identity) + expressive_shape_loss(ict_model, pred_exp, expression)
    loss.sum().backward()
    assert float(pred_id.grad.abs().sum()) > 0 and float(pred_exp.grad.abs().sum()) > 0
    masked = torch.zeros_like(identity, requires_grad=True)
    neutral_shape_loss(ict_model, masked, identity, torch.tensor([False, False])).sum().backward()
    assert float(masked.grad.abs().sum()) == 0.0


def test_shape_losses_reject_bad_input(ict_model, coefficients):
    identity, expression = coefficients
    with pytest.raises(ShapeError, match="identity"):
        neutral_shape_loss(ict_model, identity[:, :5], identity)
    with pytest.raises(ShapeError, match="expression"):
        expressive_shape_loss(ict_model, expression, expression[:, :3])
    with pytest.raises(ShapeError, match="batch size"):
        expressive_shape_loss(ict_model, expression[:1], expression)
    bad = identity.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ShapeError, match="identity"):
        neutral_shape_loss(ict_model, identity, bad)


def test_uh_e2far_weights_preset_and_errors():
    w = UH_E2FAR_WEIGHTS
    assert w.term_weights() == pytest.approx({"neutral": 100.0, "expression": 100.0, "landmark": 0.02})
    assert load_uh_e2far_loss_weights({}) == w
    assert load_uh_e2far_loss_weights({"preset": "uh_e2far", "unit_m": 0.001}) == dataclasses.replace(w, unit_m=0.001)
    with pytest.raises(ConfigError, match="preset"):
        load_uh_e2far_loss_weights({"preset": "deep3dface"})
    with pytest.raises(ConfigError, match="neutral"):
        load_uh_e2far_loss_weights({"neutral": -1.0})
    with pytest.raises(ConfigError, match="vertex_region"):
        UHE2FARLossWeights(vertex_region="ears")
    with pytest.raises(ConfigError, match="unit_m"):
        UHE2FARLossWeights(unit_m=0.0)
