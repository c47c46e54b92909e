"""Image → face-crop affines, the crop's virtual camera and cv2 warping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dfmvr_core.errors import ShapeError
from dfmvr_core.geometry import (
    PinholeIntrinsics,
    affine_to_3x3,
    apply_affine,
    crop_transform_from_box,
    intrinsics_in_crop,
    invert_affine,
    project_points,
    warp_to_crop,
)

FAST = settings(max_examples=50, deadline=None)
boxes = st.tuples(
    st.floats(-100.0, 800.0), st.floats(-100.0, 600.0), st.floats(8.0, 900.0), st.sampled_from([64, 224, 256])
)
K = PinholeIntrinsics(fx=600.0, fy=600.0, cx=319.5, cy=239.5, width=640, height=480).matrix(torch.float64)


def _box(cx: float, cy: float, side: float, out: int) -> torch.Tensor:
    return crop_transform_from_box(torch.tensor([cx, cy], dtype=torch.float64), side, out)


@FAST
@given(boxes)
def test_box_edges_map_to_crop_edges(box: tuple[float, float, float, int]) -> None:
    cx, cy, side, out = box
    A = _box(cx, cy, side, out)
    h = side / 2
    corners = torch.tensor(
        [[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h], [cx, cy]],
        dtype=torch.float64,
    )
    lo, hi, mid = -0.5, out - 0.5, (out - 1) / 2
    expected = torch.tensor([[lo, lo], [hi, lo], [hi, hi], [lo, hi], [mid, mid]], dtype=torch.float64)
    assert torch.allclose(apply_affine(corners, A), expected, atol=1e-9)


def test_identity_box_is_the_identity_transform() -> None:
    # A 224-pixel box centred on a 224×224 image's centre (111.5, 111.5) must be the identity.
    A = crop_transform_from_box(torch.tensor([111.5, 111.5]), 224.0, 224)
    assert torch.equal(A, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))


@FAST
@given(boxes, st.floats(-0.5, 0.5), st.floats(-0.5, 0.5))
def test_affine_inverse_round_trip_and_opencv(box: tuple[float, float, float, int], b: float, c: float) -> None:
    A = _box(*box)
    A = A.clone()
    A[0, 1], A[1, 0] = b * A[0, 0], c * A[1, 1]  # also exercise a general (sheared) affine
    A_inv = invert_affine(A)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(affine_to_3x3(A) @ affine_to_3x3(A_inv), eye, atol=1e-9)
    assert torch.allclose(affine_to_3x3(A_inv) @ affine_to_3x3(A), eye, atol=1e-9)
    np.testing.assert_allclose(A_inv.numpy(), cv2.invertAffineTransform(A.numpy()), rtol=1e-9, atol=1e-9)
    pts = torch.tensor([[10.0, 20.0], [300.5, -4.0]], dtype=torch.float64)
    assert torch.allclose(apply_affine(apply_affine(pts, A), A_inv), pts, atol=1e-8)
    np.testing.assert_allclose(
        apply_affine(pts, A).numpy(), cv2.transform(pts.numpy()[:, None], A.numpy())[:, 0], atol=1e-9
    )


@FAST
@given(
    boxes,
    st.lists(st.tuples(st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.floats(0.2, 3.0)), min_size=1, max_size=6),
)
def test_crop_camera_equals_projection_then_affine(box: tuple[float, float, float, int], pts: list) -> None:
    A = _box(*box)
    points = torch.tensor(pts, dtype=torch.float64)
    via_affine = apply_affine(project_points(points, K), A)
    via_crop_camera = project_points(points, intrinsics_in_crop(K, A))
    assert torch.allclose(via_crop_camera, via_affine, atol=1e-8)


def test_batched_boxes() -> None:
    centres = torch.tensor([[100.0, 120.0], [300.0, 200.0], [50.0, 60.0]])
    sides = torch.tensor([200.0, 112.0, 448.0])
    A = crop_transform_from_box(centres, sides)
    assert A.shape == (3, 2, 3) and A.dtype == torch.float32
    assert torch.allclose(A[:, 0, 0], 224.0 / sides)
    for i in range(3):
        assert torch.allclose(A[i], crop_transform_from_box(centres[i], float(sides[i])))
    K_crop = intrinsics_in_crop(K.float(), A)
    assert K_crop.shape == (3, 3, 3)
    assert torch.allclose(invert_affine(A)[1], invert_affine(A[1]))


def _centroid(img: np.ndarray) -> np.ndarray:
    w = img.astype(np.float64)
    ys, xs = np.mgrid[: w.shape[0], : w.shape[1]]
    return np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()


@pytest.mark.parametrize(("pixel", "side"), [((300, 200), 112.0), ((313, 207), 224.0), ((250, 180), 150.0)])
def test_warp_puts_a_bright_pixel_where_the_affine_maps_it(pixel: tuple[int, int], side: float) -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[pixel[1], pixel[0]] = 255
    A = crop_transform_from_box(torch.tensor([290.3, 210.7], dtype=torch.float64), side)
    crop = warp_to_crop(image, A)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    expected = apply_affine(torch.tensor([pixel], dtype=torch.float64), A)[0].numpy()
    peak = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])[::-1]
    assert np.abs(np.asarray(peak) - expected).max() <= 0.5 + 1e-6
    # the bilinear 'tent' around the pixel is centred on the mapped point (cv2's 1/32-px fixed point aside)
    assert np.abs(_centroid(crop[..., 0]) - expected).max() <= 0.1


def test_warp_single_channel_float_and_zero_border() -> None:
    image = np.ones((100, 80, 1), np.float32)
    A = crop_transform_from_box(torch.tensor([0.0, 0.0]), 100.0, 64)  # box half outside the image
    crop = warp_to_crop(image, A, out_size=64)
    assert crop.shape == (64, 64, 1) and crop.dtype == np.float32
    assert crop[0, 0, 0] == 0.0 and crop[-1, -1, 0] == 1.0
    gray = warp_to_crop(np.ones((100, 80), np.uint8), A.numpy(), out_size=64)
    assert gray.shape == (64, 64)


def test_bad_inputs_name_the_argument() -> None:
    centre = torch.tensor([10.0, 10.0])
    with pytest.raises(ShapeError, match=r"^side_px: expected positive box sides"):
        crop_transform_from_box(centre, 0.0)
    with pytest.raises(ShapeError, match=r"^side_px: 1 non-finite"):
        crop_transform_from_box(centre, float("nan"))
    with pytest.raises(ShapeError, match=r"^center_xy: expected shape \(\.\.\., 2\), got \(3,\)"):
        crop_transform_from_box(torch.zeros(3), 10.0)
    with pytest.raises(ShapeError, match=r"^side_px: expected shape broadcastable"):
        crop_transform_from_box(torch.zeros(4, 2), torch.ones(3))
    with pytest.raises(ShapeError, match=r"^out_size: expected a positive integer"):
        crop_transform_from_box(centre, 10.0, out_size=0)
    with pytest.raises(ShapeError, match=r"^A: expected invertible affines"):
        invert_affine(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match=r"^A: expected shape \(\.\.\., 2, 3\)"):
        affine_to_3x3(torch.zeros(3, 3))
    with pytest.raises(ShapeError, match=r"^image: expected shape \(H, W\) or \(H, W, C\)"):
        warp_to_crop(np.zeros((4, 4, 5), np.uint8), np.eye(2, 3))
    with pytest.raises(ShapeError, match=r"^image: expected dtype"):
        warp_to_crop(np.zeros((4, 4), np.int64), np.eye(2, 3))
    with pytest.raises(ShapeError, match=r"^A: expected shape \(2, 3\)"):
        warp_to_crop(np.zeros((4, 4), np.uint8), np.zeros((3, 2, 3)))
