"""Tests of dfmvr_core.render.interpolation: values, gradients (gradcheck), optimization, labels, bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from render_helpers import grid_mesh

from dfmvr_core.errors import ShapeError
from dfmvr_core.render import (
    fragments_from_triangle_ids,
    interpolate,
    interpolate_one_hot_labels,
    rasterize,
)

K = torch.tensor([[40.0, 0.0, 15.5], [0.0, 40.0, 11.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
H, W = 24, 32


def test_values_fill_and_shapes() -> None:
    verts, faces = grid_mesh(4, 1.0, 3.0, bulge=0.2)
    frags = rasterize(verts[None], K, faces, H, W)
    m = frags.mask[0]
    assert 0 < m.sum() < H * W
    const = interpolate(torch.full((16, 2), 7.0, dtype=torch.float64), frags, faces, fill=-1.0)
    assert const.shape == (1, H, W, 2)
    torch.testing.assert_close(const[0][m], torch.full((int(m.sum()), 2), 7.0, dtype=torch.float64))
    assert (const[0][~m] == -1.0).all()
    per_channel = interpolate(torch.zeros(16, 3, dtype=torch.float64), frags, faces, fill=torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(per_channel[0][~m][0], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    # a linear function of the camera-frame position is reproduced exactly (perspective-correct weights)
    lin = verts @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    got = interpolate(lin, frags, faces)[0, ..., 0]
    pts = interpolate(verts, frags, faces)[0]
    torch.testing.assert_close(got[m], (pts @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))[m])


def test_shared_and_per_item_attributes_agree_and_faces_copy_gives_same_result() -> None:
    verts, faces = grid_mesh(4, 1.0, 3.0, bulge=0.2)
    vb = torch.stack([verts, verts + torch.tensor([0.1, 0.0, 0.2], dtype=torch.float64)])
    frags = rasterize(vb, K, faces, H, W)
    attr = torch.rand(16, 3, dtype=torch.float64)
    shared = interpolate(attr, frags, faces)
    per_item = interpolate(attr.expand(2, 16, 3), frags, faces)
    torch.testing.assert_close(shared, per_item)
    copy = interpolate(attr, frags, faces.clone())  # not the cached object: recomputed from scratch
    torch.testing.assert_close(shared, copy)
    other = torch.stack([attr, 1 - attr])
    out = interpolate(other, frags, faces)
    m = frags.mask
    torch.testing.assert_close(out[1][m[1]], 1 - interpolate(attr, frags, faces)[1][m[1]])


def test_covered_pixel_path_matches_full_image_path_values_and_gradients() -> None:
    # the same faces object takes the covered-pixels-only path, a copy the full-image path: same results,
    # same gradients (to the vertices through bary and depth, to the attributes), per item or shared
    verts, faces = grid_mesh(6, 1.0, 3.0, bulge=0.3)
    vb = torch.stack([verts, verts + torch.tensor([0.1, -0.05, 0.3], dtype=torch.float64)])
    g = torch.Generator().manual_seed(5)
    attr = torch.rand(2, 36, 3, dtype=torch.float64, generator=g)
    weights = torch.randn(2, H, W, 3, dtype=torch.float64, generator=g)
    results = []
    for faces_arg in (faces, faces.clone()):
        for attributes in (attr, attr[0]):
            v = vb.clone().requires_grad_(True)
            a = attributes.clone().requires_grad_(True)
            frags = rasterize(v, K, faces, H, W)
            img = interpolate(a, frags, faces_arg, fill=torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
            ((img * weights).sum() + frags.depth.square().sum()).backward()
            results.append((img.detach(), v.grad, a.grad))
    for cached, full in ((results[0], results[2]), (results[1], results[3])):
        for x, y in zip(cached, full, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    assert (results[0][1] != 0).any() and (results[1][2] != 0).any()


def test_fragments_with_replaced_bary_do_not_use_the_stale_cache() -> None:
    verts, faces = grid_mesh(4, 1.0, 3.0, bulge=0.2)
    frags = rasterize(verts[None], K, faces, H, W)
    halved = dataclasses.replace(frags, bary=frags.bary * 0.5)
    attr = torch.rand(16, 2, dtype=torch.float64)
    torch.testing.assert_close(interpolate(attr, halved, faces), 0.5 * interpolate(attr, frags, faces))


def test_gradcheck_attributes_and_vertices_with_fixed_visibility() -> None:
    verts, faces = grid_mesh(3, 1.0, 3.0, bulge=0.3)
    frags0 = rasterize(verts[None], K, faces, 12, 16)
    tri = frags0.triangle_id
    assert frags0.mask.sum() > 20
    attr = torch.rand(9, 2, dtype=torch.float64, requires_grad=True)
    v = verts[None].clone().requires_grad_(True)
    k = K.clone().requires_grad_(True)

    def image(vv: torch.Tensor, aa: torch.Tensor, kk: torch.Tensor) -> torch.Tensor:
        frags = fragments_from_triangle_ids(vv, kk, faces, tri)
        return torch.cat([interpolate(aa, frags, faces, fill=0.5).reshape(-1), frags.depth.reshape(-1)])

    assert torch.autograd.gradcheck(image, (v, attr, k), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_through_rasterize_on_a_configuration_far_from_edges() -> None:
    # a single triangle: perturbations of 1e-6 cannot move pixel centres across its edges
    verts = torch.tensor([[[-0.61, -0.43, 2.0], [-0.05, 0.55, 2.6], [0.67, -0.31, 2.3]]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    attr = torch.rand(1, 3, 3, dtype=torch.float64, requires_grad=True)
    v = verts.clone().requires_grad_(True)

    def image(vv: torch.Tensor, aa: torch.Tensor) -> torch.Tensor:
        frags = rasterize(vv, K, faces, H, W)
        return interpolate(aa, frags, faces)

    assert rasterize(verts, K, faces, H, W).mask.sum() > 50
    assert torch.autograd.gradcheck(image, (v, attr), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_backward_float32_is_finite_and_only_interior() -> None:
    verts, faces = grid_mesh(5, 1.0, 3.0, bulge=0.2, dtype=torch.float32)
    v = verts[None].clone().requires_grad_(True)
    attr = torch.rand(25, 3, requires_grad=True)
    frags = rasterize(v, K.float(), faces, H, W)
    img = interpolate(attr, frags, faces, fill=0.3)
    img.sum().backward()
    assert v.grad is not None and attr.grad is not None
    assert torch.isfinite(v.grad).all() and torch.isfinite(attr.grad).all()
    # d(sum of image)/d(attr) = total barycentric weight of each vertex over covered pixels
    weight = torch.zeros(25)
    bary = frags.bary.detach()[frags.mask]
    corners = faces[frags.triangle_id[frags.mask]]
    weight.index_add_(0, corners.reshape(-1), bary.reshape(-1))
    torch.testing.assert_close(attr.grad, weight[:, None].expand(25, 3), rtol=1e-4, atol=1e-4)


def test_photometric_optimization_recovers_perturbed_vertices() -> None:
    # the coloured surface fills the whole image: with interior gradients only (no silhouette term),
    # in-plane vertex perturbations are recovered from the photometric error alone
    torch.manual_seed(0)
    n = 7
    verts, faces = grid_mesh(n, 1.0, 3.0, bulge=0.25)
    s = torch.linspace(0, 1, n, dtype=torch.float64)
    gy, gx = torch.meshgrid(s, s, indexing="ij")
    colours = torch.stack([torch.sin(6 * gx) * 0.5 + 0.5, torch.cos(5 * gy) * 0.5 + 0.5, gx * gy], -1).reshape(-1, 3)
    k = torch.tensor([[150.0, 0.0, 23.5], [0.0, 150.0, 23.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    target = interpolate(colours, rasterize(verts[None], k, faces, 48, 48), faces)
    noise = torch.randn(n * n, 2, dtype=torch.float64) * 0.02  # ~1 pixel
    offset = noise.clone().requires_grad_(True)
    opt = torch.optim.Adam([offset], lr=1e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        v = verts + torch.cat([offset, torch.zeros(n * n, 1, dtype=torch.float64)], 1)
        loss = (interpolate(colours, rasterize(v[None], k, faces, 48, 48), faces) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    assert offset.detach().norm() < 0.6 * noise.norm()  # the vertices moved back towards the truth


def test_one_hot_labels_match_explicit_argmax() -> None:
    verts, faces = grid_mesh(5, 1.0, 3.0, bulge=0.2)
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (25,), generator=g)
    frags = rasterize(verts[None], K, faces, H, W)
    got = interpolate_one_hot_labels(labels, 4, frags, faces, background=-1)
    one_hot = torch.nn.functional.one_hot(labels, 4).to(torch.float64)
    expected = interpolate(one_hot, frags, faces).argmax(-1)
    m = frags.mask
    assert torch.equal(got[m], expected[m])
    assert (got[~m] == -1).all()
    assert len(got[m].unique()) > 1
    per_item = interpolate_one_hot_labels(labels[None], 4, frags, faces, background=4)
    assert torch.equal(per_item[m], got[m]) and (per_item[~m] == 4).all()


def test_one_hot_label_ties_go_to_the_smaller_class() -> None:
    # pixel centre (8, 8) is the midpoint of the edge between vertices 0 and 1 of the first triangle
    k = torch.eye(3, dtype=torch.float64)
    verts = torch.tensor([[[6.0, 8.0, 1.0], [10.0, 8.0, 1.0], [8.0, 20.0, 1.0]]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1]])
    frags = rasterize(verts, k, faces, 24, 24)
    assert frags.mask[0, 8, 8]
    for labels, expected in (([2, 1, 0], 1), ([1, 2, 0], 1), ([0, 3, 3], 0)):
        got = interpolate_one_hot_labels(torch.tensor(labels), 4, frags, faces)
        assert int(got[0, 8, 8]) == expected


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda f, fa: interpolate(torch.zeros(2, 16, 3, dtype=torch.float64), f, fa), "attributes"),
        (lambda f, fa: interpolate(torch.zeros(3, dtype=torch.float64), f, fa), "attributes"),
        (lambda f, fa: interpolate(torch.zeros(4, 3, dtype=torch.float64), f, fa), "attributes"),
        (lambda f, fa: interpolate(torch.full((16, 3), float("nan"), dtype=torch.float64), f, fa), "attributes"),
        (lambda f, fa: interpolate(torch.zeros(16, 3, dtype=torch.int64), f, fa), "attributes"),
        (lambda f, fa: interpolate(torch.zeros(16, 3, dtype=torch.float64), f, fa[:2]), "faces"),
        (lambda f, fa: interpolate(torch.zeros(16, 3, dtype=torch.float64), f, fa.float()), "faces"),
        (lambda f, fa: interpolate(torch.zeros(16, 3, dtype=torch.float64), "frags", fa), "fragments"),
        (lambda f, fa: interpolate(torch.zeros(16, 2), f, fa, fill=torch.zeros(3)), "fill"),
        (lambda f, fa: interpolate_one_hot_labels(torch.full((16,), 4), 4, f, fa), "labels"),
        (lambda f, fa: interpolate_one_hot_labels(torch.zeros(16), 4, f, fa), "labels"),
        (lambda f, fa: interpolate_one_hot_labels(torch.zeros(3, dtype=torch.int64), 4, f, fa), "labels"),
        (lambda f, fa: interpolate_one_hot_labels(torch.zeros(16, dtype=torch.int64), 0, f, fa), "num_classes"),
    ],
)
def test_bad_input_raises_shape_error_naming_the_argument(call, name: str) -> None:
    verts, faces = grid_mesh(4, 1.0, 3.0, bulge=0.2)
    frags = rasterize(verts[None], K, faces, H, W)
    with pytest.raises(ShapeError, match=name):
        call(frags, faces)
