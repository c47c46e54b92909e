"""Tests of dfmvr_core.render.rasterizer: brute-force agreement, analytic cases, conventions, bad input."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from render_helpers import grid_mesh

from dfmvr_core.errors import ShapeError
from dfmvr_core.render import Fragments, fragments_from_triangle_ids, interpolate, rasterize

H, W = 24, 32
K_SMALL = torch.tensor([[30.0, 0.0, 15.5], [0.0, 28.0, 11.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------------------
# brute-force reference: loops over pixels × triangles with explicit edge functions, float64
# ----------------------------------------------------------------------------------------------------------


def reference_rasterize(verts, K, faces, height, width, near=1e-3, cull=False):
    """Returns triangle ids, barycentrics, depth and an 'ambiguous' mask (near-edge or near-tie pixels)."""
    v = np.asarray(verts, dtype=np.float64)
    k = np.asarray(K, dtype=np.float64)
    z = v[:, 2]
    zs = np.where(z >= near, z, 1.0)
    u = k[0, 0] * v[:, 0] / zs + k[0, 1] * v[:, 1] / zs + k[0, 2]
    vv = k[1, 1] * v[:, 1] / zs + k[1, 2]
    tri = -np.ones((height, width), dtype=np.int64)
    bary = np.zeros((height, width, 3))
    depth = np.zeros((height, width))
    ambiguous = np.zeros((height, width), dtype=bool)
    faces = np.asarray(faces)
    for y in range(height):
        for x in range(width):
            cands = []
            for f, (a, b, c) in enumerate(faces):
                if min(z[a], z[b], z[c]) < near:
                    continue
                area = (u[b] - u[a]) * (vv[c] - vv[a]) - (vv[b] - vv[a]) * (u[c] - u[a])
                if area == 0 or (cull and area > 0):
                    continue
                w0 = (u[b] - x) * (vv[c] - y) - (vv[b] - y) * (u[c] - x)
                w1 = (u[c] - x) * (vv[a] - y) - (vv[c] - y) * (u[a] - x)
                w2 = (u[a] - x) * (vv[b] - y) - (vv[a] - y) * (u[b] - x)
                lam = (w0 / area, w1 / area, w2 / area)
                margin = min(lam)
                if abs(margin) < 1e-7:
                    ambiguous[y, x] = True
                if margin < 0:
                    continue
                q = np.array([lam[0] / z[a], lam[1] / z[b], lam[2] / z[c]])
                cands.append((1.0 / q.sum(), f, q / q.sum()))
            if not cands:
                continue
            cands.sort(key=lambda t: (t[0], t[1]))
            if len(cands) > 1 and abs(cands[1][0] - cands[0][0]) < 1e-6 * cands[0][0]:
                ambiguous[y, x] = True
            depth[y, x], tri[y, x], bary[y, x] = cands[0]
    return tri, bary, depth, ambiguous


def random_scene(seed: int, n_tris: int = 10):
    """Random overlapping triangles (some partly outside the image, one behind the near plane) plus one
    large triangle covering most of the image, in a camera frame in front of K_SMALL."""
    g = np.random.default_rng(seed)
    verts = []
    for _ in range(n_tris):
        centre = np.array([g.uniform(-0.7, 0.7), g.uniform(-0.5, 0.5), g.uniform(1.5, 3.0)])
        pts = centre + g.normal(scale=0.35, size=(3, 3)) * np.array([1.0, 1.0, 0.3])
        verts.extend(pts)
    verts.extend([[-3.0, -2.5, 3.5], [0.0, 3.0, 3.4], [3.0, -2.0, 3.2]])  # large front face behind the others
    verts.extend([[0.1, 0.1, 2.0], [0.5, 0.1, 2.0], [0.2, 0.4, 1e-4]])  # one vertex before ``near``
    verts = np.asarray(verts)
    faces = np.arange(len(verts)).reshape(-1, 3)
    return verts, faces


def to_torch(verts, faces, dtype=torch.float64):
    return torch.as_tensor(verts, dtype=dtype)[None], torch.as_tensor(faces, dtype=torch.int64)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("cull", [False, True])
def test_matches_brute_force_reference_float64(seed: int, cull: bool) -> None:
    verts, faces = random_scene(seed)
    ref_tri, ref_bary, ref_depth, amb = reference_rasterize(verts, K_SMALL, faces, H, W, cull=cull)
    v, f = to_torch(verts, faces)
    frags = rasterize(v, K_SMALL, f, H, W, cull_backfaces=cull)
    tri = frags.triangle_id[0].numpy()
    ok = ~amb
    assert (ref_tri >= 0).sum() > 0.3 * H * W  # the scene really covers the image
    assert (ref_tri[ok] == tri[ok]).all(), np.argwhere((ref_tri != tri) & ok)[:5]
    assert amb.mean() < 0.05
    same = (ref_tri == tri) & (tri >= 0)
    np.testing.assert_allclose(frags.bary[0].detach().numpy()[same], ref_bary[same], atol=1e-5)
    np.testing.assert_allclose(frags.depth[0].detach().numpy()[same], ref_depth[same], rtol=1e-9)
    assert (frags.mask[0].numpy() == (tri >= 0)).all()
    assert (frags.depth[0][~frags.mask[0]] == 0).all() and (frags.bary[0][~frags.mask[0]] == 0).all()


def test_matches_brute_force_reference_float32() -> None:
    verts, faces = random_scene(7, n_tris=12)
    ref_tri, ref_bary, _, amb = reference_rasterize(verts, K_SMALL, faces, H, W)
    v, f = to_torch(verts, faces, torch.float32)
    frags = rasterize(v, K_SMALL.float(), f, H, W)
    tri = frags.triangle_id[0].numpy()
    mismatch = (ref_tri != tri) & ~amb
    assert mismatch.sum() <= 2  # float32 rounding may flip a pixel centre within ~1e-5 px of an edge
    same = (ref_tri == tri) & (tri >= 0)
    np.testing.assert_allclose(frags.bary[0].detach().numpy()[same], ref_bary[same], atol=1e-4)
    assert frags.bary.dtype == torch.float32 and frags.depth.dtype == torch.float32


def test_closed_grid_matches_reference_and_has_no_holes() -> None:
    verts, faces = grid_mesh(5, 1.2, 2.5, bulge=0.3)
    ref_tri, ref_bary, _, amb = reference_rasterize(verts.numpy(), K_SMALL, faces.numpy(), H, W)
    frags = rasterize(verts[None], K_SMALL, faces, H, W)
    tri = frags.triangle_id[0].numpy()
    assert (ref_tri[~amb] == tri[~amb]).all()
    assert ((ref_tri >= 0) == (tri >= 0)).all()  # shared edges: no holes, no extra pixels
    same = ref_tri == tri
    np.testing.assert_allclose(frags.bary[0].detach().numpy()[same], ref_bary[same], atol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# analytic cases
# ----------------------------------------------------------------------------------------------------------


def square(z: float = 2.0, dtype=torch.float64):
    verts = torch.tensor([[-0.5, -0.5, z], [0.5, -0.5, z], [0.5, 0.5, z], [-0.5, 0.5, z]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])  # front-facing (counter-clockwise in the image)
    return verts, faces


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unit_square_covers_exact_pixel_centres_at_known_depth(dtype: torch.dtype) -> None:
    K = torch.tensor([[20.0, 0.0, 10.3], [0.0, 20.0, 7.6], [0.0, 0.0, 1.0]], dtype=dtype)
    verts, faces = square(2.0, dtype)
    frags = rasterize(verts[None], K, faces, 20, 24, cull_backfaces=True)
    # the square projects to u in [5.3, 15.3], v in [2.6, 12.6]
    expected = torch.zeros(20, 24, dtype=torch.bool)
    expected[3:13, 6:16] = True
    assert torch.equal(frags.mask[0], expected)
    assert torch.equal(frags.triangle_id[0] >= 0, expected)
    torch.testing.assert_close(frags.depth[0][expected], torch.full((100,), 2.0, dtype=dtype))
    torch.testing.assert_close(frags.bary[0].sum(-1)[expected], torch.ones(100, dtype=dtype))


def test_single_triangle_covers_expected_half_plane_pixels() -> None:
    # image-plane corners (2.5, 2.5), (12.7, 2.5), (2.5, 12.7) at depth 1 with f = 1, c = 0
    K = torch.eye(3, dtype=torch.float64)
    verts = torch.tensor([[[2.5, 2.5, 1.0], [2.5, 12.7, 1.0], [12.7, 2.5, 1.0]]], dtype=torch.float64)
    frags = rasterize(verts, K, torch.tensor([[0, 1, 2]]), 16, 16)
    ys, xs = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    expected = (xs >= 3) & (ys >= 3) & (xs + ys <= 15)
    assert torch.equal(frags.mask[0], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("order", [[0, 1, 2], [0, 2, 1]])
def test_pixel_centres_exactly_on_edges_are_covered(dtype: torch.dtype, order: list[int]) -> None:
    verts = torch.tensor([[[2.0, 2.0, 1.0], [2.0, 10.0, 1.0], [10.0, 2.0, 1.0]]], dtype=dtype)
    frags = rasterize(verts, torch.eye(3, dtype=dtype), torch.tensor([order]), 14, 14)
    ys, xs = torch.meshgrid(torch.arange(14), torch.arange(14), indexing="ij")
    assert torch.equal(frags.mask[0], (xs >= 2) & (ys >= 2) & (xs + ys <= 12))


def test_perspective_correct_depth_and_interpolation_on_a_tilted_plane() -> None:
    # plane through three points, strongly tilted in depth
    p = torch.tensor([[-1.0, -0.8, 2.0], [1.2, -0.6, 5.0], [-0.2, 1.0, 3.0]], dtype=torch.float64)
    frags = rasterize(p[None], K_SMALL, torch.tensor([[0, 1, 2]]), H, W)
    m = frags.mask[0]
    assert m.sum() > 50
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    rays = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ torch.linalg.inv(K_SMALL).T  # z = 1 rays
    n = torch.linalg.cross(p[1] - p[0], p[2] - p[0])
    t = (n @ p[0]) / (rays @ n)  # ray-plane intersection: depth, since the rays have z = 1
    torch.testing.assert_close(frags.depth[0][m], t[m], rtol=1e-10, atol=0)
    # interpolating camera-frame positions gives the 3D point on each pixel's ray
    pts = interpolate(p, frags, torch.tensor([[0, 1, 2]]))[0]
    torch.testing.assert_close(pts[m], rays[m] * t[m, None], rtol=1e-10, atol=1e-12)


def test_pre_projected_vertices_match_intrinsics_path() -> None:
    verts, faces = random_scene(3)
    v, f = to_torch(verts, faces)
    a = rasterize(v, K_SMALL, f, H, W)
    z = v[..., 2:]
    uv = (v / z) @ K_SMALL.T
    b = rasterize(torch.cat([uv[..., :2], z], -1), None, f, H, W)
    assert torch.equal(a.triangle_id, b.triangle_id)
    torch.testing.assert_close(a.bary, b.bary)
    torch.testing.assert_close(a.depth, b.depth)


# ----------------------------------------------------------------------------------------------------------
# conventions, edge cases
# ----------------------------------------------------------------------------------------------------------


def test_backface_convention_and_culling() -> None:
    verts, faces = square(2.0)
    # normal (v1 - v0) x (v2 - v0) of the front faces points to the camera (-z)
    for a, b, c in faces.tolist():
        n = torch.linalg.cross(verts[b] - verts[a], verts[c] - verts[a])
        assert float(n @ verts[a]) < 0
    back = faces[:, [0, 2, 1]]
    K = torch.tensor([[20.0, 0.0, 10.3], [0.0, 20.0, 7.6], [0.0, 0.0, 1.0]], dtype=torch.float64)
    front_culled = rasterize(verts[None], K, faces, 20, 24, cull_backfaces=True)
    back_culled = rasterize(verts[None], K, back, 20, 24, cull_backfaces=True)
    back_kept = rasterize(verts[None], K, back, 20, 24, cull_backfaces=False)
    assert front_culled.mask.sum() == 100
    assert back_culled.mask.sum() == 0
    assert torch.equal(back_kept.mask, front_culled.mask)
    # barycentrics refer to each face's own corner order
    torch.testing.assert_close(back_kept.bary[..., [0, 2, 1]], front_culled.bary)


def test_empty_inputs_give_background_without_error() -> None:
    verts, faces = square(2.0)
    K = K_SMALL
    none = rasterize(verts[None], K, torch.zeros(0, 3, dtype=torch.int64), H, W)
    assert not none.mask.any() and (none.triangle_id == -1).all()
    far_left = verts + torch.tensor([-50.0, 0.0, 0.0], dtype=torch.float64)
    outside = rasterize(far_left[None], K, faces, H, W)
    assert not outside.mask.any()
    assert outside.bary.shape == (1, H, W, 3) and outside.depth.shape == (1, H, W)
    assert (outside.depth == 0).all() and (outside.bary == 0).all()


def test_triangles_behind_camera_or_crossing_near_are_dropped_and_grads_stay_finite() -> None:
    verts, faces = square(2.0)
    behind = (verts * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)).requires_grad_(True)
    frags = rasterize(behind[None], K_SMALL, faces, H, W)
    assert not frags.mask.any()
    interpolate(behind, frags, faces).sum().backward()
    assert behind.grad is not None and torch.isfinite(behind.grad).all() and (behind.grad == 0).all()
    # one corner just before the near plane: only the triangle using it is dropped
    crossing = verts.clone()
    crossing[3, 2] = 0.5e-3
    frags = rasterize(crossing[None], K_SMALL, faces, H, W, near=1e-3)
    assert set(frags.triangle_id.unique().tolist()) == {-1, 0}
    frags = rasterize(crossing[None], K_SMALL, faces, H, W, near=1e-4)
    assert set(frags.triangle_id.unique().tolist()) == {-1, 0, 1}


def test_equal_depth_ties_go_to_smaller_triangle_id() -> None:
    verts, faces = square(2.0)
    dup = torch.cat([faces, faces[:, [1, 2, 0]], faces])  # the same two triangles three times
    frags = rasterize(verts[None], K_SMALL, dup, H, W)
    assert set(frags.triangle_id.unique().tolist()) == {-1, 0, 1}
    # coplanar overlap with different geometry: the plane is the same, so ties break by id everywhere
    both = torch.cat([verts, verts * torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)])
    faces2 = torch.cat([faces + 4, faces])  # ids 0, 1: the big square; ids 2, 3: the small one, same plane
    frags2 = rasterize(both[None], K_SMALL, faces2, H, W)
    assert set(frags2.triangle_id.unique().tolist()) == {-1, 0, 1}
    frags3 = rasterize(both[None], K_SMALL, torch.cat([faces, faces + 4]), H, W)
    assert set(frags3.triangle_id.unique().tolist()) == {-1, 0, 1, 2, 3}  # now the small square wins


def test_batch_items_are_independent() -> None:
    v0, f = to_torch(*random_scene(4))
    v1, _ = to_torch(*random_scene(5))
    v1 = v1[:, : v0.shape[1]]
    batch = torch.cat([v0, v1, v0 * torch.tensor([1.0, 1.0, 1.3], dtype=torch.float64)])
    K = torch.stack([K_SMALL, K_SMALL, K_SMALL * torch.tensor([[1.2], [1.2], [1.0]], dtype=torch.float64)])
    frags = rasterize(batch, K, f, H, W)
    for i in range(3):
        single = rasterize(batch[i : i + 1], K[i], f, H, W)
        assert torch.equal(frags.triangle_id[i], single.triangle_id[0])
        torch.testing.assert_close(frags.bary[i], single.bary[0])
        torch.testing.assert_close(frags.depth[i], single.depth[0])
    assert not torch.equal(frags.triangle_id[0], frags.triangle_id[1])


@pytest.mark.parametrize("max_pixels", [1, 5, 64, 1000])
def test_chunk_size_does_not_change_the_result(max_pixels: int) -> None:
    v0, f = to_torch(*random_scene(6))
    v = torch.cat([v0, v0 * torch.tensor([1.0, 1.0, 1.5], dtype=torch.float64)])
    ref = rasterize(v, K_SMALL, f, H, W)
    small = rasterize(v, K_SMALL, f, H, W, max_pixels_per_chunk=max_pixels)
    assert torch.equal(ref.triangle_id, small.triangle_id)
    torch.testing.assert_close(ref.bary, small.bary, rtol=0, atol=0)
    torch.testing.assert_close(ref.depth, small.depth, rtol=0, atol=0)


@pytest.mark.parametrize("max_pixels", [16, 100, 5000])
def test_chunk_size_bounds_the_cells_evaluated_at_once(max_pixels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    raster_module = importlib.import_module("dfmvr_core.render.rasterizer")
    sizes: list[tuple[int, int]] = []
    original = raster_module._ZBuffer.splat

    def recording_splat(self, coef, low, pix_base, w, h):
        sizes.append((w * h * coef.shape[2], w))
        return original(self, coef, low, pix_base, w, h)

    monkeypatch.setattr(raster_module._ZBuffer, "splat", recording_splat)
    K = torch.tensor([[50.0, 0.0, 47.5], [0.0, 50.0, 31.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    big = torch.tensor([[-20.0, -20.0, 4.0], [20.0, -20.0, 4.0], [0.0, 30.0, 4.0]], dtype=torch.float64)
    verts, faces = random_scene(8)
    scene = torch.cat([torch.as_tensor(verts, dtype=torch.float64), big])
    faces = torch.cat([torch.as_tensor(faces), torch.tensor([[len(verts), len(verts) + 1, len(verts) + 2]])])
    frags = rasterize(scene[None].expand(3, -1, -1), K, faces, 64, 96, max_pixels_per_chunk=max_pixels)
    assert frags.mask.all() and len(sizes) > 3
    # documented bound: max(max_pixels_per_chunk, 2 × image width) cells per group
    assert max(cells for cells, _ in sizes) <= max(max_pixels, 2 * 96)
    assert any(w > 2 for _, w in sizes)  # the large triangle went through the bucketed pass


def test_large_triangle_split_into_bands_matches_unchunked() -> None:
    # one triangle covering the whole 64 × 96 image and a small one in front
    K = torch.tensor([[50.0, 0.0, 47.5], [0.0, 50.0, 31.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    verts = torch.tensor(
        [[-20.0, -20.0, 4.0], [20.0, -20.0, 4.0], [0.0, 30.0, 4.0], [0.0, 0.0, 2.0], [0.3, 0.0, 2.0], [0.0, 0.3, 2.0]],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    a = rasterize(verts[None], K, faces, 64, 96)
    b = rasterize(verts[None], K, faces, 64, 96, max_pixels_per_chunk=100)
    assert a.mask.all()
    assert torch.equal(a.triangle_id, b.triangle_id)
    assert (a.triangle_id == 1).sum() > 10
    torch.testing.assert_close(a.depth[a.triangle_id == 0], torch.full_like(a.depth[a.triangle_id == 0], 4.0))


def test_gradients_flow_to_vertices_and_intrinsics() -> None:
    verts, faces = grid_mesh(4, 1.0, 2.0, bulge=0.2)
    v = verts[None].clone().requires_grad_(True)
    K = K_SMALL.clone().requires_grad_(True)
    frags = rasterize(v, K, faces, H, W)
    (frags.depth.sum() + frags.bary[..., 0].sum()).backward()
    assert v.grad is not None and K.grad is not None
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0
    assert K.grad[0, 0].abs() > 0 and K.grad[2].abs().sum() == 0  # the last row of K is not used


# ----------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"vertices_cam": torch.zeros(4, 3)}, "vertices_cam"),
        ({"vertices_cam": torch.zeros(1, 4, 2)}, "vertices_cam"),
        ({"vertices_cam": torch.zeros(1, 4, 3, dtype=torch.int64)}, "vertices_cam"),
        ({"K": torch.eye(3)[None].expand(2, 3, 3)}, "K"),
        ({"K": torch.zeros(1, 3, 4)}, "K"),
        ({"K": torch.full((3, 3), float("nan"))}, "K"),
        ({"faces": torch.tensor([[0, 1, 2, 3]])}, "faces"),
        ({"faces": torch.tensor([[0.0, 1.0, 2.0]])}, "faces"),
        ({"faces": torch.tensor([[0, 1, 4]])}, "faces"),
        ({"faces": torch.tensor([[0, -1, 2]])}, "faces"),
        ({"height": 0}, "height"),
        ({"width": 2.5}, "width"),
        ({"near": 0.0}, "near"),
        ({"max_pixels_per_chunk": 0}, "max_pixels_per_chunk"),
    ],
)
def test_bad_input_raises_shape_error_naming_the_argument(kwargs: dict, name: str) -> None:
    verts, faces = square(2.0, torch.float32)
    args = {"vertices_cam": verts[None], "K": K_SMALL.float(), "faces": faces, "height": 8, "width": 8}
    args.update(kwargs)
    positional = [args.pop(key) for key in ("vertices_cam", "K", "faces", "height", "width")]
    with pytest.raises(ShapeError, match=name):
        rasterize(*positional, **args)


def test_nan_vertices_raise_shape_error() -> None:
    verts, faces = square(2.0)
    verts[1, 0] = math.nan
    with pytest.raises(ShapeError, match="vertices_cam"):
        rasterize(verts[None], K_SMALL, faces, 8, 8)
    with pytest.raises(ShapeError, match="vertices_cam"):
        fragments_from_triangle_ids(verts[None], K_SMALL, faces, torch.zeros(1, 8, 8, dtype=torch.int64))


def test_fragments_from_triangle_ids_checks_ids_and_matches_rasterize() -> None:
    verts, faces = grid_mesh(4, 1.0, 2.0, bulge=0.2)
    frags = rasterize(verts[None], K_SMALL, faces, H, W)
    again = fragments_from_triangle_ids(verts[None], K_SMALL, faces, frags.triangle_id)
    assert isinstance(again, Fragments)
    torch.testing.assert_close(again.bary, frags.bary, rtol=0, atol=0)
    with pytest.raises(ShapeError, match="triangle_id"):
        fragments_from_triangle_ids(verts[None], K_SMALL, faces, torch.full((1, H, W), len(faces)))
    with pytest.raises(ShapeError, match="triangle_id"):
        fragments_from_triangle_ids(verts[None], K_SMALL, faces, torch.zeros(2, H, W, dtype=torch.int64))
