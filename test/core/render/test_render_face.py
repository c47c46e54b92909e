"""FaceRenderer on the ICT-FaceKit model in the default three-camera rig."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry import MODEL_TO_OPTICAL, CameraRig, RigConfig, crop_transform_from_box, intrinsics_in_crop
from dfmvr_core.morphable import FacePart, ambient_sh
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer

SIZE = 224


@pytest.fixture(scope="module")
def rig_views(ict_model):
    """The mean ICT face at the rig's subject point, rendered into 224×224 face crops of each camera."""
    rig = CameraRig.from_config(RigConfig())
    R_rig_face = torch.tensor(MODEL_TO_OPTICAL, dtype=torch.float64)
    t_rig_face = rig.subject_center_rig
    rotations, translations, Ks = [], [], []
    for name in rig.names:
        T = rig.T_camera_from_rig(name)
        rotations.append(T[:3, :3] @ R_rig_face)
        translations.append(T[:3, :3] @ t_rig_face + T[:3, 3])
        K = rig.intrinsics[name].matrix(dtype=torch.float64)
        centre = (K @ (translations[-1] / translations[-1][2]))[:2]  # the face centre's pixel
        A = crop_transform_from_box(centre, 280.0, out_size=SIZE)
        Ks.append(intrinsics_in_crop(K, A.to(torch.float64)))
    model = ict_model.to(dtype=torch.float64)
    renderer = FaceRenderer(model, FaceRenderConfig(height=SIZE, width=SIZE))
    sh = ambient_sh(3, intensity=1.0, dtype=torch.float64).view(1, 3, 27)
    rendering = renderer.render_posed(
        model.mean_shape[None], torch.stack(rotations)[None], torch.stack(translations)[None],
        torch.stack(Ks), model.mean_albedo[None], sh,
    )  # fmt: skip
    return rig, rendering, torch.stack(translations)


def test_views_show_a_plausible_face_and_are_saved_as_png(rig_views, tmp_path: Path):
    rig, rendering, _ = rig_views
    rgb = (rendering.rgb[0].clamp(0, 1) * 255).to(torch.uint8).numpy()
    path = tmp_path / "rig_views.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(list(rgb), axis=1), cv2.COLOR_RGB2BGR))
    assert cv2.imread(str(path)).shape == (SIZE, 3 * SIZE, 3)
    for view, name in enumerate(rig.names):
        coverage = rendering.mask[0, view].double().mean().item()
        face = rendering.face_mask[0, view].double().mean().item()
        assert 0.15 < coverage < 0.8, (name, coverage)
        assert 0.1 < face <= coverage, (name, face)
        # Shaded skin, not noise: the rendered face is bright where visible and black elsewhere.
        visible = rendering.rgb[0, view][rendering.mask[0, view]]
        assert visible.mean() > 0.3
        assert torch.all(rendering.rgb[0, view][~rendering.mask[0, view]] == 0)


def _part_centroid(parts: torch.Tensor, part: FacePart) -> np.ndarray:
    rows, cols = np.nonzero(parts.numpy() == int(part))
    assert rows.size > 5, f"{part.name} not visible"
    return np.array([cols.mean(), rows.mean()])


def test_part_labels_are_laid_out_like_a_face(rig_views):
    _, rendering, _ = rig_views
    front = rendering.parts[0, 1]
    eyes = (_part_centroid(front, FacePart.LEFT_EYE) + _part_centroid(front, FacePart.RIGHT_EYE)) / 2
    nose = _part_centroid(front, FacePart.NOSE)
    mouth = (_part_centroid(front, FacePart.UPPER_LIP) + _part_centroid(front, FacePart.LOWER_LIP)) / 2
    assert eyes[1] < nose[1] < mouth[1]  # image rows grow downwards
    # The subject's left eye is on the image's right in the front camera (the face looks at it).
    assert _part_centroid(front, FacePart.LEFT_EYE)[0] > _part_centroid(front, FacePart.RIGHT_EYE)[0]
    assert abs(nose[0] - SIZE / 2) < 15
    # The left camera (rig −x) sees the subject's right side better than the left side.
    left = rendering.parts[0, 0].numpy()
    assert (left == FacePart.RIGHT_EYE).sum() > (left == FacePart.LEFT_EYE).sum()


def test_landmarks_and_depth_agree_with_the_rendering(rig_views, ict_model):
    _, rendering, translations = rig_views
    nose_tip = rendering.landmarks[0, 1, 30].round().long()
    assert rendering.parts[0, 1, nose_tip[1], nose_tip[0]] == FacePart.NOSE
    expected_depth = translations[1, 2] - ict_model.mean_shape[int(ict_model.landmarks68[30]), 2].double()
    assert rendering.depth[0, 1, nose_tip[1], nose_tip[0]].item() == pytest.approx(expected_depth.item(), abs=2e-3)
    assert rendering.landmarks_depth[0, 1, 30].item() == pytest.approx(expected_depth.item(), abs=1e-9)
    assert torch.all(rendering.depth[0][~rendering.mask[0]] == 0)


def test_rgb_is_differentiable_wrt_albedo_and_lighting(ict_model):
    model = ict_model
    renderer = FaceRenderer(model, FaceRenderConfig(height=32, width=32))
    vertices = model.mean_shape[None].clone()
    R = torch.tensor(MODEL_TO_OPTICAL).view(1, 1, 3, 3)
    t = torch.tensor([[[0.0, 0.0, 0.7]]])
    K = torch.tensor([[[60.0, 0.0, 15.5], [0.0, 60.0, 15.5], [0.0, 0.0, 1.0]]])
    albedo = model.mean_albedo[None].clone().requires_grad_(True)
    sh = ambient_sh(1).view(1, 1, 27).clone().requires_grad_(True)
    out = renderer.render_posed(vertices, R, t, K, albedo, sh)
    out.rgb.sum().backward()
    assert albedo.grad.abs().sum() > 0 and sh.grad.abs().sum() > 0


def test_bad_inputs_name_the_argument(ict_model):
    renderer = FaceRenderer(ict_model)
    n = ict_model.num_vertices
    with pytest.raises(ShapeError, match=r"vertices_cam: expected shape \(B, V, 9409, 3\)"):
        renderer.render(
            torch.zeros(1, 3, n - 1, 3), torch.eye(3).expand(3, 3, 3), torch.zeros(1, n, 3), torch.zeros(1, 3, 27)
        )
    with pytest.raises(ShapeError, match=r"sh: expected shape \(1, 3, 27\)"):
        renderer.render(
            torch.zeros(1, 3, n, 3), torch.eye(3).expand(3, 3, 3), torch.zeros(1, n, 3), torch.zeros(1, 3, 9)
        )
    with pytest.raises(ConfigError, match="height"):
        FaceRenderConfig(height=0)
