"""Pose a morphable model in the camera rig and write what a person wants to look at.

``dfmvr assets preview`` (and ``make demo`` at this stage) uses it: the mean (or a random) face is put
at the rig's subject point facing the reference camera, rendered into every camera with the project's
rasterizer under ambient + frontal SH light, and written as

* ``face_rig.ply`` / ``face_rig.obj`` — the mesh in the rig frame (metres), vertex colours = albedo;
* ``poses.json`` — per camera: ``T_camera_face`` (4×4), translation (m) and quaternion (x, y, z, w);
* ``views.png`` — the rendered views side by side, landmarks drawn, in rig order (left, front, right).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from dfmvr_core.atomic_io import atomic_path, write_json_atomic
from dfmvr_core.geometry.pose import MODEL_TO_OPTICAL, make_transform, transform_points
from dfmvr_core.geometry.rig import CameraRig, RigConfig, load_rig
from dfmvr_core.geometry.rotations import matrix_to_quaternion
from dfmvr_core.mesh_io import write_mesh
from dfmvr_core.morphable import MorphableModel, ambient_sh, load_morphable_model
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer


@dataclass(frozen=True)
class PreviewOptions:
    """Which face to show: the mean face, or a random one drawn with ``seed``."""

    seed: int = 0
    random_face: bool = False
    identity_std: float = 0.8
    max_expression_weight: float = 0.4


def sample_face(model: MorphableModel, options: PreviewOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertices (1, N, 3) metres in the model frame, and albedo (1, N, 3), for the chosen face."""
    coeffs = model.zero_coefficients(1)
    if options.random_face:
        g = torch.Generator().manual_seed(options.seed)
        sizes = model.coefficient_sizes
        dtype = model.dtype
        coeffs["identity"] = torch.randn(1, sizes.identity, generator=g, dtype=dtype) * options.identity_std
        if model.expression_kind == "blendshape":
            coeffs["expression"] = (
                torch.rand(1, sizes.expression, generator=g, dtype=dtype) * options.max_expression_weight
            )
            coeffs["expression"] *= (
                torch.rand(1, sizes.expression, generator=g, dtype=dtype) < 0.15
            )  # a few active shapes
        else:
            coeffs["expression"] = torch.randn(1, sizes.expression, generator=g, dtype=dtype) * 0.5
        coeffs["albedo"] = torch.randn(1, sizes.albedo, generator=g, dtype=dtype) * 0.7
    return model.decode(coeffs["identity"], coeffs["expression"], coeffs["albedo"])


def render_rig_views(
    model: MorphableModel, vertices_rig: torch.Tensor, albedo: torch.Tensor, rig: CameraRig
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Render one face (vertices (N, 3) metres, rig frame; albedo (1, N, 3)) into every rig camera.

    Returns:
        images: per camera (H, W, 3) uint8 RGB; landmarks: per camera (68, 2) float pixels.
    """
    images, landmarks = [], []
    light = ambient_sh(1, intensity=0.75, dtype=albedo.dtype).view(1, 1, 3, 9)
    light[..., 2] = -0.35  # light from the camera: normals facing the camera have z < 0 (optical frame)
    for name in rig.names:
        intr = rig.intrinsics[name]
        renderer = FaceRenderer(model, FaceRenderConfig(height=intr.height, width=intr.width, background=0.15))
        T = rig.T_camera_from_rig(name).to(vertices_rig.dtype)
        rendering = renderer.render_posed(
            vertices_rig[None], T[None, None, :3, :3], T[None, None, :3, 3],
            intr.matrix(dtype=vertices_rig.dtype)[None], albedo, light.view(1, 1, 27),
        )  # fmt: skip
        images.append((rendering.rgb[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
        landmarks.append(rendering.landmarks[0, 0].numpy())
    return images, landmarks


def write_rig_preview(
    model_path: str | Path, rig_path: str | Path | None, output: str | Path, options: PreviewOptions | None = None
) -> list[Path]:
    """Load the model and rig, pose the face frontally at the subject point, write meshes, poses and PNG.

    Returns:
        The written paths.
    """
    options = options or PreviewOptions()
    output = Path(output)
    model = load_morphable_model(model_path).to(dtype=torch.float64)
    rig = load_rig(rig_path) if rig_path is not None else CameraRig.from_config(RigConfig())
    vertices, albedo = sample_face(model, options)
    R = torch.tensor(
        MODEL_TO_OPTICAL, dtype=torch.float64
    )  # frontal: the face looks straight into the reference camera
    t = rig.subject_center_rig
    vertices_rig = transform_points(vertices[0], R, t)

    written = []
    colors = (albedo[0].clamp(0, 1).numpy() * 255).astype(np.uint8)
    triangles = model.triangles.numpy()
    for suffix in (".ply", ".obj"):
        written.append(write_mesh(output / f"face_rig{suffix}", vertices_rig.numpy(), triangles, vertex_colors=colors))

    T_rig_face = make_transform(R, t)
    poses = {
        "frame_convention": "optical (x right, y down, z forward); metres",
        "reference_camera": rig.reference_camera,
        "cameras": {},
    }
    for name in rig.names:
        T = rig.T_camera_from_rig(name) @ T_rig_face
        poses["cameras"][name] = {
            "T_camera_face": np.round(T.numpy(), 9).tolist(),
            "translation_m": np.round(T[:3, 3].numpy(), 9).tolist(),
            "quaternion_xyzw": np.round(matrix_to_quaternion(T[:3, :3]).numpy(), 9).tolist(),
        }
    write_json_atomic(output / "poses.json", poses)
    written.append(output / "poses.json")

    images, landmarks = render_rig_views(model, vertices_rig, albedo, rig)
    panels = []
    for name, image, lms in zip(rig.names, images, landmarks, strict=True):
        panel = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        for u, v in lms:
            cv2.circle(panel, (round(float(u)), round(float(v))), 2, (0, 255, 0), -1, lineType=cv2.LINE_AA)
        cv2.putText(panel, name, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        panels.append(panel)
    height = max(p.shape[0] for p in panels)
    panels = [cv2.copyMakeBorder(p, 0, height - p.shape[0], 0, 4, cv2.BORDER_CONSTANT) for p in panels]
    with atomic_path(output / "views.png") as tmp:
        if not cv2.imwrite(str(tmp), np.concatenate(panels, axis=1)):
            raise OSError(f"could not write {output / 'views.png'}")
    written.append(output / "views.png")
    return written
