"""Write a :class:`~dfmvr_core.inference.reconstructor.Reconstruction` to files a person (or a script) can use.

Every file is written atomically (temporary file, then rename), so an interrupted run never leaves half a file:
``mesh.ply``/``mesh.obj`` (rig frame, metres), ``pose.json``, ``coefficients.json``, ``overlay_<camera>.png``,
``overlays.png`` and ``report.json``. Used by ``dfmvr reconstruct`` and by the rosbag replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dfmvr_core.atomic_io import atomic_path, write_json_atomic
from dfmvr_core.inference.overlay import draw_overlay, side_by_side

__all__ = ["pose_dict", "reconstruction_report", "write_png", "write_reconstruction"]


def write_png(path: str | Path, image_rgb: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB image as PNG, atomically."""
    path = Path(path)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data.tobytes())
    return path


def pose_dict(T: np.ndarray) -> dict[str, Any]:
    """``(4, 4)`` rigid transform → JSON-ready matrix, translation (m) and quaternion (x, y, z, w)."""
    from scipy.spatial.transform import Rotation

    T = np.asarray(T, dtype=np.float64)
    return {
        "matrix": np.round(T, 9).tolist(),
        "translation_m": np.round(T[:3, 3], 9).tolist(),
        "quaternion_xyzw": np.round(Rotation.from_matrix(T[:3, :3]).as_quat(), 9).tolist(),
    }


def reconstruction_report(result: Any) -> dict[str, Any]:
    """Views, validity, reasons and timings of a reconstruction (JSON-ready)."""
    return {
        "ok": bool(result.ok),
        "views": {
            name: {"valid": bool(valid), "reason": reason}
            for name, valid, reason in zip(result.camera_names, result.valid, result.reasons, strict=True)
        },
        "timings_ms": {k: round(float(v), 3) for k, v in result.timings_ms.items()},
    }


def overlay_images(result: Any, images: Sequence[np.ndarray | None], faces: np.ndarray) -> list[np.ndarray | None]:
    """Per camera the mesh drawn over its input (the input alone for an invalid view; None for a missing image)."""
    out: list[np.ndarray | None] = []
    for i, (name, image) in enumerate(zip(result.camera_names, images, strict=True)):
        if image is None:
            out.append(None)
            continue
        if not result.ok:
            out.append(
                draw_overlay(image, np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.eye(3), label=f"{name}: no face")
            )
            continue
        K = result.intrinsics[i].matrix().numpy()
        label = name if result.valid[i] else f"{name} (not used: {result.reasons[i]})"
        out.append(
            draw_overlay(image, result.vertices_camera[i], faces, K, landmarks_2d=result.landmarks_2d[i], label=label)
        )
    return out


def write_reconstruction(
    output: str | Path,
    result: Any,
    images: Sequence[np.ndarray | None],
    *,
    faces: np.ndarray,
    extra: Mapping[str, Any] | None = None,
    overlays: bool = True,
) -> list[Path]:
    """Write the result files into ``output`` (created); returns the written paths."""
    from dfmvr_core.mesh_io import write_mesh

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    report = reconstruction_report(result)
    report.update(dict(extra or {}))
    if result.ok:
        for suffix in (".ply", ".obj"):
            written.append(write_mesh(output / f"mesh{suffix}", result.vertices_rig, faces))
        poses = {
            "frame_convention": "optical (x right, y down, z forward); metres; T maps model-frame points to the frame",
            "T_rig_from_model": pose_dict(result.T_rig_from_model),
            "cameras": {},
        }
        for i, name in enumerate(result.camera_names):
            poses["cameras"][name] = {
                "T_camera_from_model": pose_dict(result.T_camera_from_model_fused[i]),
                "view_prediction": pose_dict(result.T_camera_from_model[i]) if result.valid[i] else None,
            }
        write_json_atomic(output / "pose.json", poses)
        written.append(output / "pose.json")
        coefficients = {k: np.asarray(v).tolist() for k, v in result.coefficients.items()}
        write_json_atomic(
            output / "coefficients.json",
            {"sizes": {k: list(np.asarray(v).shape) for k, v in result.coefficients.items()}, **coefficients},
        )
        written.append(output / "coefficients.json")
    if overlays:
        pictures = overlay_images(result, images, faces)
        for name, picture in zip(result.camera_names, pictures, strict=True):
            if picture is not None:
                written.append(write_png(output / f"overlay_{name}.png", picture))
        present = [p for p in pictures if p is not None]
        if present:
            written.append(write_png(output / "overlays.png", side_by_side(present)))
    write_json_atomic(output / "report.json", report)
    written.append(output / "report.json")
    return written
