"""Mask loss (paper eq. 3): the 19 → 10 class mapping, values, regions, validity and gradients through a
FaceRenderer rendering of the ICT face into a tiny parser."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry import euler_pose_to_camera
from dfmvr_core.morphable import FacePart, ambient_sh
from dfmvr_core.networks.face_parser import BiSeNet
from dfmvr_core.networks.face_parts import CelebAClass, celeba_to_face_parts_table
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer
from dfmvr_training.losses import celeba_logits_to_part_log_probs, mask_loss, parse_rendered_views

B, V, H, W = 2, 3, 12, 12
# One CelebA class standing for each face part (to build confident 19-class logits from a part map).
REPRESENTATIVE = torch.tensor(
    [
        CelebAClass.HAIR,
        CelebAClass.SKIN,
        CelebAClass.L_BROW,
        CelebAClass.R_BROW,
        CelebAClass.L_EYE,
        CelebAClass.R_EYE,
        CelebAClass.NOSE,
        CelebAClass.MOUTH,
        CelebAClass.U_LIP,
        CelebAClass.L_LIP,
    ]
)


def _parts(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    parts = torch.zeros(B, V, H, W, dtype=torch.int64)
    parts[..., 2:10, 2:10] = torch.randint(1, 10, (B, V, 8, 8), generator=g)
    return parts


def _confident_logits(parts: torch.Tensor, margin: float = 30.0) -> torch.Tensor:
    """(B, V, 19, H, W) logits whose argmax class maps back to ``parts``."""
    celeba = REPRESENTATIVE[parts]
    return margin * torch.nn.functional.one_hot(celeba, 19).movedim(-1, 2).to(torch.float64)


def test_celeba_to_part_log_probs_sum_probabilities_of_each_group():
    logits = torch.randn(2, 19, 5, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    log_p = celeba_logits_to_part_log_probs(logits)
    assert log_p.shape == (2, 10, 5, 4)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(2, 5, 4, dtype=torch.float64))
    probs = logits.softmax(1)
    table = celeba_to_face_parts_table()
    for part in FacePart:
        expected = probs[:, table == part].sum(1)
        torch.testing.assert_close(log_p[:, part].exp(), expected)
    # hair, neck, ears, cloth, hat and background all count as background
    assert table[CelebAClass.HAIR] == FacePart.OTHER and table[CelebAClass.NECK] == FacePart.OTHER


def test_near_zero_for_a_matching_parse_and_increasing_with_errors():
    parts = _parts()
    logits = _confident_logits(parts)
    assert torch.all(mask_loss(logits, parts) < 1e-9)
    face = parts != FacePart.OTHER
    previous = mask_loss(logits, parts)
    g = torch.Generator().manual_seed(4)
    for fraction in (0.1, 0.3, 0.6):
        wrong = parts.clone()
        flip = face & (torch.rand(parts.shape, generator=g) < fraction)
        wrong[flip] = (parts[flip] % 9) + 1  # another face part
        loss = mask_loss(_confident_logits(wrong), parts)
        assert torch.all(loss > previous)
        previous = loss
    # a uniform parse over the 10 parts costs log 10 per pixel
    uniform = torch.zeros(B, V, 10, H, W, dtype=torch.float64)
    torch.testing.assert_close(
        mask_loss(uniform, parts), torch.full((B,), torch.log(torch.tensor(10.0)).item(), dtype=torch.float64)
    )


def test_region_input_face_ignores_background_pixels_and_all_counts_them():
    parts = _parts()
    logits = _confident_logits(parts)
    spoiled = logits.clone()
    background = (parts == FacePart.OTHER).unsqueeze(2).expand_as(spoiled)
    spoiled[background] = 0.0
    spoiled[:, :, CelebAClass.SKIN][parts == FacePart.OTHER] = 30.0  # background parsed as skin
    torch.testing.assert_close(mask_loss(spoiled, parts), mask_loss(logits, parts))
    assert torch.all(mask_loss(spoiled, parts, region="all") > 1.0)


def test_invalid_views_are_excluded():
    parts = _parts()
    logits = _confident_logits(parts)
    noisy = logits + 5 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    valid = torch.tensor([[True, False, True], [True, True, True]])
    broken = noisy.clone()
    broken[0, 1] = torch.randn(19, H, W, dtype=torch.float64) * 100
    got = mask_loss(broken, parts, valid)
    expected0 = mask_loss(noisy[:1, [0, 2]], parts[:1, [0, 2]])
    torch.testing.assert_close(got[0], expected0[0])
    torch.testing.assert_close(got[1], mask_loss(noisy, parts)[1])


def test_bad_input_raises_naming_the_argument():
    parts = _parts()
    logits = _confident_logits(parts)
    nan = logits.clone()
    nan[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ShapeError, match=r"parser_logits.*non-finite"):
        mask_loss(nan, parts)
    with pytest.raises(ShapeError, match=r"parser_logits.*C = 7"):
        mask_loss(logits[:, :, :7], parts)
    with pytest.raises(ShapeError, match="input_parts"):
        mask_loss(logits, parts[..., :5])
    with pytest.raises(ShapeError, match="input_parts"):
        mask_loss(logits, parts - 1)
    with pytest.raises(ShapeError, match="valid"):
        mask_loss(logits, parts, torch.ones(B, dtype=torch.bool))
    with pytest.raises(ConfigError, match="region"):
        mask_loss(logits, parts, region="face")


# ------------------------------------------------------------------ gradients through a rendering
SIZE = 32


@pytest.fixture(scope="module")
def tiny_scene(ict_model):
    """The ICT face seen by three 32×32 cameras (yaw −30°, 0°, +30°) at 0.6 m."""
    model = ict_model
    angles = torch.tensor([[0.0, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    R, t = euler_pose_to_camera(angles, torch.zeros(3, 3), reference_distance=0.6)
    K = torch.tensor([[70.0, 0.0, 15.5], [0.0, 70.0, 15.5], [0.0, 0.0, 1.0]]).expand(V, 3, 3)
    renderer = FaceRenderer(model, FaceRenderConfig(height=SIZE, width=SIZE))
    sh = ambient_sh(V, intensity=1.0).view(1, V, 27)
    with torch.no_grad():
        reference = renderer.render_posed(model.mean_shape[None], R[None], t[None], K, model.mean_albedo[None], sh)
    return model, renderer, R[None], t[None], K, sh, reference


def _render(scene, identity, albedo):
    model, renderer, R, t, K, sh, _ = scene
    expression = torch.zeros(1, model.coefficient_sizes.expression)
    vertices, colours = model.decode(identity, expression, albedo)
    return renderer.render_posed(vertices, R, t, K, colours, sh)


def test_gradient_flows_from_the_mask_loss_through_the_rendering_to_the_coefficients(tiny_scene):
    model, *_, reference = tiny_scene
    sizes = model.coefficient_sizes
    assert reference.face_mask.float().mean() > 0.15  # the face fills a good part of each tiny view
    torch.manual_seed(0)
    parser = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 19, 3, padding=1))
    for p in parser.parameters():
        p.requires_grad_(False)  # frozen, as DF-MVR's pretrained BiSeNet
    identity = (0.3 * torch.randn(1, sizes.identity)).requires_grad_(True)
    albedo = (0.3 * torch.randn(1, sizes.albedo)).requires_grad_(True)
    rendering = _render(tiny_scene, identity, albedo)
    logits = parse_rendered_views(parser, rendering.rgb)
    assert logits.shape == (1, V, 19, SIZE, SIZE)
    loss = mask_loss(logits, reference.parts)
    assert loss.shape == (1,) and loss.item() > 0
    loss.sum().backward()
    for name, coeff in (("identity", identity), ("albedo", albedo)):
        assert coeff.grad is not None and torch.isfinite(coeff.grad).all(), name
        assert coeff.grad.abs().max() > 0, f"no gradient reaches the {name} coefficients"
    # the authors' variant parses a detached rendering: no gradient at all
    identity.grad = None
    rendering = _render(tiny_scene, identity, albedo)
    detached = mask_loss(parse_rendered_views(parser, rendering.rgb.detach()), reference.parts)
    assert not detached.requires_grad


def test_parse_rendered_views_runs_bisenet_on_valid_views_only(tiny_scene):
    *_, reference = tiny_scene
    torch.manual_seed(0)
    parser = BiSeNet().eval()
    valid = torch.tensor([[True, False, True]])
    with torch.no_grad():
        logits = parse_rendered_views(parser, reference.rgb, valid)
        direct = parser.parse(reference.rgb[0, 2].permute(2, 0, 1)[None])
    assert logits.shape == (1, V, 19, SIZE, SIZE)
    assert torch.equal(logits[0, 1], torch.zeros(19, SIZE, SIZE))
    torch.testing.assert_close(logits[0, 2], direct[0], rtol=1e-4, atol=1e-4)
    # training mode returns (logits, aux16, aux32): the main head is used
    parser.train()
    with torch.no_grad():
        assert parse_rendered_views(parser, reference.rgb).shape == (1, V, 19, SIZE, SIZE)
    with pytest.raises(ShapeError, match="valid"):
        parse_rendered_views(parser, reference.rgb, torch.zeros(1, V, dtype=torch.bool))
    with pytest.raises(ShapeError, match="parser"):
        parse_rendered_views(nn.Conv2d(3, 19, 3, stride=2), reference.rgb)
