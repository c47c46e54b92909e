"""SceneConfig validation/YAML and FaceSceneSampler: determinism, seed streams, side yaw, lighting, placement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.morphable import sh_basis
from dfmvr_core.synthesis import FaceSceneSampler, SceneConfig, config_to_dict, load_scene_config, scene_seed


def test_synth_config_yaml_round_trip_and_field_errors(tmp_path):
    path = tmp_path / "scene.yaml"
    path.write_text(
        "scene:\n  side_yaw: random\n  identity_components: 40\n  lighting: {tint: 0.0}\n"
        "  rig: {subject_distance_m: 0.9}\ncrop: {box_scale: 1.6}\n"
    )
    scene, crop = load_scene_config(path)
    assert scene.side_yaw == "random" and scene.identity_components == 40 and scene.lighting.tint == 0.0
    assert scene.rig.subject_distance_m == 0.9 and crop == CropCamera(box_scale=1.6)
    assert from_mapping(SceneConfig, config_to_dict(scene)) == scene  # what the manifest stores reads back

    path.write_text("scene:\n  lighting: {ambient_range: [0.9, 0.2]}\n")
    with pytest.raises(ConfigError, match=r"scene\.lighting\.ambient_range"):
        load_scene_config(path)
    path.write_text("scene:\n  side_yaw: sometimes\n")
    with pytest.raises(ConfigError, match="side_yaw"):
        load_scene_config(path)
    path.write_text("scenery: {}\n")
    with pytest.raises(ConfigError, match="scenery"):
        load_scene_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_scene_config(tmp_path / "missing.yaml")


def test_synth_sampler_is_deterministic_per_seed(ict_model):
    sampler = FaceSceneSampler(ict_model, SceneConfig(side_yaw="random"))
    a, b, c = sampler.sample(11), sampler.sample(11), sampler.sample(12)
    names = ("identity", "expression", "albedo", "T_rig_from_model", "T_camera_from_rig", "lighting", "crop_jitter")
    for name in names:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name
    assert a.image_seed == b.image_seed != c.image_seed


def test_synth_scene_seed_streams_are_disjoint():
    train = {scene_seed(0, i, 0) for i in range(500)}
    bench = {scene_seed(0, i, 1) for i in range(500)}
    assert len(train) == 500 and not train & bench
    assert scene_seed(0, 3, 0) == scene_seed(0, 3, 0) != scene_seed(1, 3, 0)
    with pytest.raises(ConfigError, match="seed"):
        scene_seed(-1, 0)


def test_synth_coefficients_follow_the_policy(ict_model):
    cfg = SceneConfig(identity_components=30, expression_probability=0.2, expression_max_weight=0.5)
    sampler = FaceSceneSampler(ict_model, cfg)
    scenes = [sampler.sample(s) for s in range(40)]
    identity = np.stack([s.identity for s in scenes])
    expression = np.stack([s.expression for s in scenes])
    assert identity.shape == (40, 100) and np.all(identity[:, 30:] == 0) and 0.7 < identity[:, :30].std() < 1.3
    assert expression.min() >= 0 and expression.max() <= 0.5  # blendshape weights stay in [0, max]
    assert 0.1 < (expression > 0).mean() < 0.3  # sparse: ~20 % active
    with pytest.raises(ConfigError, match="identity_components"):
        FaceSceneSampler(ict_model, SceneConfig(identity_components=101))


def _azimuth_deg(T_camera_from_rig: np.ndarray, distance: float) -> float:
    """Angle of the camera around the subject point, from its pose (not from the sampler's bookkeeping)."""
    centre = -T_camera_from_rig[:3, :3].T @ T_camera_from_rig[:3, 3]  # camera position in the rig frame
    offset = centre - np.array((0.0, 0.0, distance))
    return math.degrees(math.atan2(offset[0], -offset[2]))


def test_synth_random_side_yaw_within_table_v_range(ict_model):
    sampler = FaceSceneSampler(ict_model, SceneConfig(side_yaw="random"))
    left, right = [], []
    for seed in range(60):
        scene = sampler.sample(seed)
        assert scene.camera_names == ("left", "front", "right")
        az = [_azimuth_deg(T, 0.7) for T in scene.T_camera_from_rig]
        np.testing.assert_allclose(az, scene.camera_azimuth_deg, atol=1e-9)
        left.append(-az[0])
        right.append(az[2])
        assert abs(az[1]) < 1e-9
    for side in (left, right):
        assert min(side) >= 10.0 and max(side) <= 45.0
        assert max(side) - min(side) > 25.0  # spread over the range, not stuck at one value
    fixed = FaceSceneSampler(ict_model, SceneConfig()).sample(0)
    np.testing.assert_allclose([_azimuth_deg(T, 0.7) for T in fixed.T_camera_from_rig], (-45, 0, 45), atol=1e-9)


def test_synth_head_placement_and_light(ict_model):
    still = {"head_yaw_deg": (0, 0), "head_pitch_deg": (0, 0), "head_roll_deg": (0, 0), "position_jitter_m": 0.0}
    cfg = SceneConfig(**still, distance_range_m=(0.75, 0.75))
    scene = FaceSceneSampler(ict_model, cfg).sample(5)
    T = scene.T_rig_from_model
    centre = ict_model.mean_shape[ict_model.landmarks68].double().mean(0).numpy()
    np.testing.assert_allclose(T[:3, :3] @ centre + T[:3, 3], (0, 0, 0.75), atol=1e-12)
    np.testing.assert_allclose(T[:3, :3], np.diag((1.0, -1.0, -1.0)), atol=1e-12)  # facing the front camera
    # The same light in every view: irradiance of a rig-frame normal agrees across the cameras.
    normal_rig = np.array((0.3, -0.2, -0.93)) / np.linalg.norm((0.3, -0.2, -0.93))
    irradiance = []
    for v in range(3):
        n_cam = torch.tensor(scene.T_camera_from_rig[v, :3, :3] @ normal_rig)
        basis = sh_basis(n_cam[None])[0]
        irradiance.append((torch.tensor(scene.lighting[v], dtype=torch.float64).view(3, 9) @ basis).numpy())
    np.testing.assert_allclose(irradiance[0], irradiance[1], rtol=1e-5)
    np.testing.assert_allclose(irradiance[2], irradiance[1], rtol=1e-5)


def test_synth_pca_expressions_are_normal(bfm_mat):
    from dfmvr_core.morphable import load_morphable_model

    model = load_morphable_model(bfm_mat[0])
    assert model.expression_kind == "pca"
    sampler = FaceSceneSampler(model, SceneConfig(expression_std=0.5))
    expression = np.stack([sampler.sample(s).expression for s in range(30)])
    assert expression.shape == (30, 64) and (expression < 0).mean() > 0.3 and 0.4 < expression.std() < 0.6
