"""The ICT mean face rendered into the default rig (imported by the preprocessing tests in this folder).

Rendered once per test session (cached per model object; the ``ict_model`` fixture is session-scoped), 640×480 per
camera, with ``dfmvr_core.preview``'s face (:func:`~dfmvr_core.preview.sample_face`) and lighting (ambient 0.75 +
frontal light).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dfmvr_core.geometry import MODEL_TO_OPTICAL, CameraRig, PinholeIntrinsics, RigConfig, make_transform
from dfmvr_core.morphable import ambient_sh
from dfmvr_core.preview import PreviewOptions, sample_face
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer


@dataclass(frozen=True)
class RenderedView:
    """One camera's rendering of the face: what a real camera would deliver, plus ground truth."""

    name: str
    image: np.ndarray  # (480, 640, 3) uint8 RGB
    intrinsics: PinholeIntrinsics
    K: np.ndarray  # (3, 3) float64
    landmarks: np.ndarray  # (68, 2) float64 pixels, projected model landmarks
    parts: np.ndarray  # (480, 640) int64 FacePart map
    face_mask: np.ndarray  # (480, 640) bool, a face part is visible
    T_cam_from_model: np.ndarray  # (4, 4) float64
    landmarks_model: np.ndarray  # (68, 3) float64 metres, model frame


_CACHE: dict[int, tuple[object, dict[str, RenderedView]]] = {}


def render_rig_faces(model) -> dict[str, RenderedView]:
    """``{camera name: RenderedView}`` for the rig's left / front / right cameras (cached per model object)."""
    cached = _CACHE.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    model64 = model.to(dtype=torch.float64)
    rig = CameraRig.from_config(RigConfig())
    vertices, albedo = sample_face(model64, PreviewOptions())
    T_rig_from_model = make_transform(torch.tensor(MODEL_TO_OPTICAL, dtype=torch.float64), rig.subject_center_rig)
    light = ambient_sh(1, intensity=0.75, dtype=torch.float64).view(1, 1, 3, 9)
    light[..., 2] = -0.35  # as dfmvr_core.preview.render_rig_views: light from the camera
    views = {}
    for name in rig.names:
        intr = rig.intrinsics[name]
        T = rig.T_camera_from_rig(name).double() @ T_rig_from_model
        renderer = FaceRenderer(model64, FaceRenderConfig(height=intr.height, width=intr.width, background=0.15))
        K = intr.matrix(dtype=torch.float64)
        R, t = T[None, None, :3, :3], T[None, None, :3, 3]
        r = renderer.render_posed(vertices, R, t, K[None], albedo, light.view(1, 1, 27))
        views[name] = RenderedView(
            name=name,
            image=np.ascontiguousarray((r.rgb[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()),
            intrinsics=intr,
            K=K.numpy(),
            landmarks=r.landmarks[0, 0].numpy(),
            parts=r.parts[0, 0].numpy(),
            face_mask=r.face_mask[0, 0].numpy(),
            T_cam_from_model=T.numpy(),
            landmarks_model=model64.landmarks(vertices)[0].numpy(),
        )
    _CACHE[id(model)] = (model, views)
    return views
