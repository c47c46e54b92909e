"""Face crops of rendered rig views: the crop holds the face, its geometry is exact, no-face is a result."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
from prep_helpers import render_rig_faces

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry import (
    CropCamera,
    PinholeIntrinsics,
    apply_affine,
    camera_pose_to_crop,
    crop_pose_to_camera,
    crop_transform_from_box,
    euler_pose_to_camera,
    invert_affine,
    project_points,
    transform_points,
    warp_to_crop,
)
from dfmvr_core.preprocess import REASON_NO_FACE, REASON_NO_SOURCE, FaceLandmarks, ViewCrop, crop_image, crop_view

VIEWS = ("left", "front", "right")


@pytest.fixture(scope="module")
def views(ict_model):
    return render_rig_faces(ict_model)


def _check_geometry(crop: ViewCrop, camera: CropCamera) -> None:
    s = camera.size
    assert crop.image.shape == (s, s, 3) and crop.image.dtype == np.uint8
    assert crop.A.shape == (2, 3) and crop.A.dtype == np.float64
    assert crop.K_crop.shape == (3, 3) and crop.K_crop.dtype == np.float64
    np.testing.assert_allclose(crop.K_crop, np.vstack([crop.A, [0, 0, 1]]) @ crop.K, atol=1e-12)


@pytest.mark.parametrize("name", VIEWS)
def test_landmark_crop_contains_the_face(views, name) -> None:
    view = views[name]
    camera = CropCamera()
    crop = crop_view(view.image, view.intrinsics, camera=camera, landmarks=view.landmarks)
    assert crop.valid and crop.reason is None and crop.source == "landmarks" and crop.confidence is None
    _check_geometry(crop, camera)
    # Every rendered face pixel (skin, brows, ... not ears or neck) from the brows down maps inside the crop with a
    # margin. Above the brows the model's face region runs up to the scalp; the 1.5x landmark box (Deep3DFace's
    # policy) cuts its top: measured 92-94 % of all face pixels inside.
    rows, cols = np.nonzero(view.face_mask)
    uv = apply_affine(torch.from_numpy(np.stack([cols, rows], 1).astype(np.float64)), torch.from_numpy(crop.A)).numpy()
    below_brows = rows >= view.landmarks[17:27, 1].min()
    assert uv[below_brows].min() > 8.0 and uv[below_brows].max() < camera.size - 8.0
    inside = ((uv > -0.5) & (uv < camera.size - 0.5)).all(axis=1)
    assert inside.mean() > 0.9, inside.mean()
    # The landmark box spans 1 / box_scale of the crop, centred.
    lm = crop.landmarks_crop
    assert lm.dtype == np.float32 and crop.landmarks.dtype == np.float32
    extent = (lm.max(0) - lm.min(0)).max()
    assert extent == pytest.approx(camera.size / camera.box_scale, rel=1e-5)
    np.testing.assert_allclose((lm.max(0) + lm.min(0)) / 2, camera.center_px, atol=1e-3)
    side = crop.box[2]
    assert side == pytest.approx(camera.box_scale * float((view.landmarks.max(0) - view.landmarks.min(0)).max()))
    # The crop shows the face: its central region is brighter than the rendered background (0.15 × 255).
    centre = crop.image[80:150, 80:150].astype(float).mean()
    assert centre > 100, centre


def test_crop_round_trips_points_and_samples_the_image(views) -> None:
    view = views["front"]
    crop = crop_view(view.image, view.intrinsics, landmarks=view.landmarks)
    A = torch.from_numpy(crop.A)
    pts = torch.from_numpy(np.random.default_rng(0).uniform([0, 0], [640, 480], (50, 2)))
    back = apply_affine(apply_affine(pts, A), invert_affine(A))
    torch.testing.assert_close(back, pts, atol=1e-9, rtol=0)
    np.testing.assert_allclose(crop.landmarks, view.landmarks, atol=1e-4)
    # crop(p) = image(A⁻¹ p): an independent bilinear sampler (scipy) at every crop pixel.
    inv = invert_affine(A).numpy()
    gv, gu = np.mgrid[0:224, 0:224].astype(np.float64)
    x = inv[0, 0] * gu + inv[0, 1] * gv + inv[0, 2]
    y = inv[1, 0] * gu + inv[1, 1] * gv + inv[1, 2]
    for c in range(3):
        expected = scipy.ndimage.map_coordinates(view.image[..., c].astype(np.float64), [y, x], order=1, cval=0.0)
        diff = np.abs(crop.image[..., c].astype(np.float64) - expected)
        assert diff.max() <= 1.5, diff.max()  # uint8 rounding + OpenCV's 1/32-pixel interpolation grid


@pytest.mark.parametrize("name", VIEWS)
def test_pose_round_trip_through_the_crop_camera(views, name) -> None:
    view = views[name]
    camera = CropCamera()
    crop = crop_view(view.image, view.intrinsics, camera=camera, landmarks=view.landmarks)
    T = torch.from_numpy(view.T_cam_from_model)
    K, A = torch.from_numpy(crop.K), torch.from_numpy(crop.A)
    angles, translation = camera_pose_to_crop(T, K, A, camera)
    _, t_canonical = euler_pose_to_camera(angles, translation, camera.reference_distance)
    assert 0.8 < float(t_canonical[2]) < 1.3  # canonical depth ≈ the reference distance (the box policy's point)
    back = crop_pose_to_camera(angles, translation, K, A, camera)
    assert float((back - T).abs().max()) < 1e-6
    lm3d = torch.from_numpy(view.landmarks_model)
    uv = project_points(transform_points(lm3d, back[:3, :3], back[:3, 3]), torch.from_numpy(crop.K_crop))
    np.testing.assert_allclose(uv.numpy(), crop.landmarks_crop, atol=1e-3)


def test_roi_and_priorities(views) -> None:
    view = views["left"]
    lo, hi = view.landmarks.min(0), view.landmarks.max(0)
    roi = np.array([*lo, *hi])
    by_lm = crop_view(view.image, view.intrinsics, landmarks=view.landmarks)
    by_roi = crop_view(view.image, view.intrinsics, roi=roi)
    assert by_roi.valid and by_roi.source == "roi" and by_roi.landmarks is None and by_roi.landmarks_crop is None
    np.testing.assert_allclose(by_roi.A, by_lm.A, atol=1e-9)
    np.testing.assert_array_equal(by_roi.image, by_lm.image)

    calls = []

    class Recording:
        def detect(self, image):
            calls.append(image.shape)
            return FaceLandmarks.from_points(view.landmarks + 5.0, confidence=0.8)

    shifted_roi = roi + 20.0
    both = crop_view(view.image, view.intrinsics, landmarks=view.landmarks, roi=shifted_roi, detector=Recording())
    assert both.source == "landmarks" and not calls
    np.testing.assert_allclose(both.A, by_lm.A)
    roi_wins = crop_view(view.image, view.intrinsics, roi=shifted_roi, detector=Recording())
    assert roi_wins.source == "roi" and not calls
    detected = crop_view(view.image, view.intrinsics, detector=Recording())
    assert calls == [(480, 640, 3)]
    assert detected.valid and detected.source == "detector" and detected.confidence == pytest.approx(0.8)
    np.testing.assert_allclose(detected.landmarks, view.landmarks + 5.0, atol=1e-4)
    np.testing.assert_allclose(detected.A[:, :2], by_lm.A[:, :2], atol=1e-12)


class _NoFace:
    def detect(self, image):
        return None


def _check_invalid(crop: ViewCrop, image: np.ndarray) -> None:
    assert not crop.valid and crop.landmarks_crop is None
    assert crop.image.shape == (224, 224, 3)
    # Letterbox of the whole image: its centre maps to the crop centre, its width to the crop side.
    h, w = image.shape[:2]
    centre = apply_affine(torch.tensor([[(w - 1) / 2, (h - 1) / 2]], dtype=torch.float64), torch.from_numpy(crop.A))
    np.testing.assert_allclose(centre.numpy(), [[111.5, 111.5]], atol=1e-9)
    assert crop.A[0, 0] == pytest.approx(224 / max(w, h))


def test_no_face_is_a_result_not_an_error(views) -> None:
    view = views["front"]
    blank = np.zeros_like(view.image)
    crop = crop_view(blank, view.intrinsics, detector=_NoFace())
    assert crop.reason == REASON_NO_FACE == "no face detected" and crop.source == "detector" and crop.box is None
    _check_invalid(crop, blank)
    crop = crop_view(view.image, view.intrinsics)
    assert crop.reason == REASON_NO_SOURCE
    _check_invalid(crop, view.image)


def test_small_and_outside_faces_are_invalid(views) -> None:
    view = views["front"]
    centre = view.landmarks.mean(0)
    tiny = centre + (view.landmarks - centre) * 0.1  # ≈ 13 px face
    crop = crop_view(view.image, view.intrinsics, landmarks=tiny)
    assert crop.reason.startswith("face too small: ") and "< min_face_px 24" in crop.reason
    assert crop.landmarks is not None and crop.box is not None
    _check_invalid(crop, view.image)
    assert crop_view(view.image, view.intrinsics, landmarks=tiny, min_face_px=5).valid

    outside = np.array([700.0, 100.0, 800.0, 220.0])
    crop = crop_view(view.image, view.intrinsics, roi=outside)
    assert crop.reason == "face box (700.0, 100.0, 800.0, 220.0) lies entirely outside the 640x480 image"
    _check_invalid(crop, view.image)
    # Partly outside is fine: the crop is zero-padded.
    partly = crop_view(view.image, view.intrinsics, roi=np.array([600.0, 100.0, 700.0, 200.0]))
    assert partly.valid and partly.image[:, -40:].max() == 0


def test_bad_inputs_raise_clear_errors(views) -> None:
    view = views["front"]
    intr = view.intrinsics
    with pytest.raises(ShapeError, match=r"^image: .*got dtype float32"):
        crop_view(view.image.astype(np.float32), intr, landmarks=view.landmarks)
    with pytest.raises(ShapeError, match=r"^image: .*got 4 channels"):
        crop_view(np.zeros((480, 640, 4), np.uint8), intr, landmarks=view.landmarks)
    small = PinholeIntrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)
    with pytest.raises(ShapeError, match=r"^image: 640x480 pixels .* intrinsics are for 320x240"):
        crop_view(view.image, small, landmarks=view.landmarks)
    with pytest.raises(ShapeError, match=r"^roi: 1 non-finite value"):
        crop_view(view.image, intr, roi=np.array([10.0, np.nan, 50.0, 60.0]))
    with pytest.raises(ShapeError, match=r"^roi: expected \(x0, y0, x1, y1\) with x1 > x0 and y1 > y0"):
        crop_view(view.image, intr, roi=np.array([50.0, 10.0, 40.0, 60.0]))
    with pytest.raises(ShapeError, match=r"^roi: expected shape \(4\), got \(2, 2\)"):
        crop_view(view.image, intr, roi=np.zeros((2, 2)))
    with pytest.raises(ShapeError, match=r"^landmarks: expected shape \(68, 2\), got \(5, 2\)"):
        crop_view(view.image, intr, landmarks=view.landmarks[:5])
    with pytest.raises(ShapeError, match=r"^landmarks: expected a \(68, 2\) numeric array"):
        crop_view(view.image, intr, landmarks="0,0")
    with pytest.raises(ShapeError, match=r"^intrinsics: expected PinholeIntrinsics, got ndarray"):
        crop_view(view.image, view.K, landmarks=view.landmarks)
    with pytest.raises(ConfigError, match=r"^min_face_px: expected a non-negative number"):
        crop_view(view.image, intr, landmarks=view.landmarks, min_face_px=-1.0)


def test_antialiasing_of_strong_downscales() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)  # white noise: aliasing shows as variance
    intr = PinholeIntrinsics(1500.0, 1500.0, 799.5, 599.5, 1600, 1200)
    roi = np.array([300.0, 200.0, 1500.0, 1400.0])  # crop side 1800 px → 224: downscale ≈ 8, partly outside
    crop = crop_view(noise, intr, roi=roi).image[30:150, 30:150].astype(float)
    raw = crop_view(noise, intr, roi=roi, antialias=False).image[30:150, 30:150].astype(float)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 10, (crop.mean(), crop.std())  # measured 6
    assert raw.std() > 40  # measured 49


@pytest.mark.parametrize("side", [430.0, 630.0, 1120.0])  # downscale 1.9 (Gaussian only), 2.8 (box 2 + Gaussian), 5
def test_antialiasing_keeps_the_geometry(side) -> None:
    """On a smooth image the filtered crop equals the plain bilinear crop: the reduced-image affine is right."""
    yy, xx = np.mgrid[0:1200, 0:1600]
    smooth = (127 + 60 * np.sin(xx / 90.0) + 60 * np.cos(yy / 70.0)).astype(np.uint8)[..., None].repeat(3, axis=2)
    A = crop_transform_from_box(torch.tensor([830.0, 610.0], dtype=torch.float64), side, 224).numpy()
    filtered = crop_image(smooth, A, 224)
    diff = np.abs(filtered.astype(int) - warp_to_crop(smooth, A, 224).astype(int))
    assert diff.max() <= 2, diff.max()
    # Up-scaling crops are not filtered.
    up = np.array([[2.0, 0.0, -10.0], [0.0, 2.0, -10.0]])
    np.testing.assert_array_equal(crop_image(smooth, up, 64), warp_to_crop(smooth, up, 64))
