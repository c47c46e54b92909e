"""render_scene / SceneRenderer: crops vs full renders, crop content, landmark visibility, holes, backgrounds."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_core.geometry.crop import apply_affine, warp_to_crop
from dfmvr_core.geometry.rig import CameraPlacement, RigConfig
from dfmvr_core.morphable import FacePart
from dfmvr_core.synthesis import (
    DegradationConfig,
    FaceSceneSampler,
    SceneConfig,
    SceneRenderer,
    degrade_image,
    make_background,
    render_scene,
)
from dfmvr_core.synthesis.config import BackgroundConfig

# Half-size cameras (320×240, fx 300: the default rig's field of view) keep the full renders cheap.
HALF = PinholeIntrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=320, height=240)
HALF_RIG = RigConfig(
    cameras=tuple(CameraPlacement(n, a, intrinsics=HALF) for n, a in (("left", -45), ("front", 0), ("right", 45)))
)
FRONTAL = SceneConfig(
    head_yaw_deg=(0, 0),
    head_pitch_deg=(0, 0),
    head_roll_deg=(0, 0),
    position_jitter_m=0.0,
    distance_range_m=(0.7, 0.7),
    crop_center_jitter=0.0,
    crop_scale_jitter=0.0,
    rig=HALF_RIG,
)


@pytest.fixture(scope="module")
def renders(ict_model):
    """One renderer call for three scenes (random side yaw; frontal head; face pushed off the image edge)."""
    config = SceneConfig(side_yaw="random", rig=HALF_RIG)
    renderer = SceneRenderer(ict_model, config)
    random_scene = FaceSceneSampler(ict_model, config).sample(3)
    frontal = FaceSceneSampler(ict_model, FRONTAL).sample(4)
    T = frontal.T_rig_from_model.copy()
    T[0, 3] += 0.36  # the face centre near the front image's right border (u ≈ 159.5 + 300·0.36/0.7 ≈ 314)
    edge = dataclasses.replace(frontal, T_rig_from_model=T)
    crops = renderer.render([random_scene, frontal, edge], "crop")
    full = renderer.render([random_scene], "full")[0]
    return {"scene": random_scene, "crop": crops[0], "frontal": crops[1], "edge": crops[2], "full": full}


def test_synth_rendering_layout(renders, ict_model):
    crop, full = renders["crop"], renders["full"]
    assert crop.images.shape == (3, 224, 224, 3) and crop.images.dtype == np.uint8
    assert full.images.shape == (3, 240, 320, 3) and full.A is None and crop.A.shape == (3, 2, 3)
    assert crop.parts.dtype == np.uint8 and crop.parts.max() < len(FacePart)
    assert crop.landmarks_2d.shape == (3, 68, 2) and crop.landmark_visibility.dtype == bool
    assert crop.T_camera_from_model.dtype == np.float64
    np.testing.assert_allclose(crop.T_camera_from_model, renders["scene"].T_camera_from_model)
    A3 = np.concatenate((crop.A, np.tile([[[0.0, 0.0, 1.0]]], (3, 1, 1))), axis=1)
    np.testing.assert_allclose(crop.K, A3 @ full.K)  # K_crop = [A; 0 0 1]·K
    np.testing.assert_array_equal(crop.K_camera, full.K)
    coefficients = (torch.from_numpy(getattr(renders["scene"], k))[None] for k in ("identity", "expression", "albedo"))
    vertices = ict_model.decode(*coefficients)[0][0]
    np.testing.assert_allclose(crop.vertices, vertices.numpy(), atol=1e-6)
    np.testing.assert_allclose(crop.landmarks_3d, crop.vertices[ict_model.landmarks68.numpy()])


def test_synth_crops_contain_the_face(renders):
    for r in (renders["crop"], renders["frontal"]):
        for v in range(3):
            face = r.face_mask[v]
            assert face.sum() > 0.25 * face.size  # the face fills the crop (box = 1.5 × landmark box)
            lm = r.landmarks_2d[v]
            assert lm.min() > 0 and lm.max() < 223  # all 68 landmarks inside the crop
            side = (lm.max(0) - lm.min(0)).max()
            assert 224 / 1.5 * np.exp(-0.09) < side < 224 / 1.5 * np.exp(0.09)


def test_synth_crop_render_matches_cropped_full_render(renders):
    crop, full = renders["crop"], renders["full"]
    for v in range(3):
        warped = warp_to_crop(full.images[v], crop.A[v]).astype(np.float64)
        warped_mask = warp_to_crop(full.mask[v].astype(np.uint8) * 255, crop.A[v]) > 127
        iou = (warped_mask & crop.mask[v]).sum() / (warped_mask | crop.mask[v]).sum()
        assert iou > 0.98
        interior = cv2.erode((warped_mask & crop.mask[v]).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        diff = np.abs(warped - crop.images[v])[interior]
        assert diff.mean() < 2.0, diff.mean()  # uint8 levels (bilinear resampling of the smaller full render)
        landmarks = apply_affine(torch.from_numpy(full.landmarks_2d[v]).double(), torch.from_numpy(crop.A[v]))
        np.testing.assert_allclose(landmarks.numpy(), crop.landmarks_2d[v], atol=1e-3)
        # The depth test looks one pixel around each landmark: coarser pixels (the half-size full render) see a
        # little more surface, so a few boundary landmarks may flip.
        assert (full.landmark_visibility[v] == crop.landmark_visibility[v]).mean() > 0.9


def test_synth_landmark_visibility_depth_test(renders):
    vis = renders["frontal"].landmark_visibility
    assert vis[1].all()  # frontal face, front camera: nothing hidden
    jaw = np.arange(17)
    for side, hidden_half in ((0, jaw[jaw > 8]), (2, jaw[jaw < 8])):
        hidden = np.flatnonzero(~vis[side])
        assert 1 <= hidden.size <= 20
        # The far jaw line hides behind the cheek; the near one stays visible.
        assert set(hidden) & set(hidden_half) and not set(hidden) & set(jaw[jaw < 8] if side == 0 else jaw[jaw > 8])


def test_synth_eye_and_mouth_holes_are_filled_and_labelled(renders):
    r = renders["frontal"]
    filled = (r.parts[1] > 0) & ~r.mask[1]
    labels = set(np.unique(r.parts[1][filled]).tolist())
    assert filled.sum() > 20
    assert labels <= {int(FacePart.LEFT_EYE), int(FacePart.RIGHT_EYE), int(FacePart.MOUTH)}
    assert {int(FacePart.LEFT_EYE), int(FacePart.RIGHT_EYE)} <= labels


def test_synth_crop_outside_the_image_is_black_and_unlabelled(renders):
    r = renders["edge"]
    front_A = r.A[1]
    u_right_edge = front_A[0, 0] * 319.5 + front_A[0, 2]  # the image's right border in crop pixels
    assert 20 < u_right_edge < 200  # the crop runs past the image border
    outside = np.arange(224) > u_right_edge + 1
    assert np.all(r.images[1][:, outside] == 0) and np.all(r.parts[1][:, outside] == 0)
    assert not r.mask[1][:, outside].any()
    lm_out = r.landmarks_2d[1][:, 0] > u_right_edge + 1
    assert lm_out.any() and not r.landmark_visibility[1][lm_out].any()


def test_synth_backgrounds_and_degradation_are_deterministic():
    cfg = BackgroundConfig()
    a = make_background(60, 80, cfg, np.random.default_rng(1))
    b = make_background(60, 80, cfg, np.random.default_rng(1))
    c = make_background(60, 80, cfg, np.random.default_rng(2))
    assert a.shape == (60, 80, 3) and a.dtype == np.uint8 and a.std() > 5
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not make_background(8, 8, BackgroundConfig(kind="black"), np.random.default_rng(0)).any()
    off = degrade_image(a, DegradationConfig(), np.random.default_rng(0))
    assert off is a  # disabled by default
    on = DegradationConfig(enabled=True, probability=1.0)
    d1, d2 = (degrade_image(a, on, np.random.default_rng(5)) for _ in range(2))
    np.testing.assert_array_equal(d1, d2)
    assert np.abs(d1.astype(int) - a).mean() > 1


def test_synth_render_scene_errors(ict_model, renders):
    with pytest.raises(ConfigError, match="target"):
        render_scene(ict_model, renders["scene"], target="panorama")
    with pytest.raises(ConfigError, match="image size"):
        cams = SceneConfig().rig.cameras
        small = dataclasses.replace(cams[0], intrinsics=dataclasses.replace(cams[0].intrinsics, width=320))
        SceneConfig(rig=dataclasses.replace(SceneConfig().rig, cameras=(small, *cams[1:])))
