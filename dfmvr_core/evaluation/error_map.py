"""Error-map pictures: a face mesh seen from the front, coloured by per-vertex error (paper Fig. 13).

Colours run blue → cyan → green → yellow → red from 0 to ``max_mm`` (OpenCV's ``COLORMAP_JET``, the
paper's "blue, green, yellow, red" order); errors above ``max_mm`` are red, vertices without an error (NaN,
e.g. outside the evaluated region) grey. A colour bar with the scale in millimetres sits on the right.
The mesh is drawn with the project's rasterizer (:func:`dfmvr_core.render.rasterize`, pure torch, CPU)
through a pinhole camera on the model frame's +z axis (model frame: x right, y up, z towards the viewer),
with mild Lambert shading so that the shape stays readable.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ShapeError
from dfmvr_core.evaluation.surface import vertex_normals
from dfmvr_core.geometry.pose import MODEL_TO_OPTICAL
from dfmvr_core.render.interpolation import interpolate
from dfmvr_core.render.rasterizer import rasterize
from dfmvr_core.validation import check_finite, check_shape

__all__ = ["error_colors", "error_map_image", "save_png"]

_BACKGROUND = (255, 255, 255)
_NO_ERROR = np.array((150, 150, 150), dtype=np.float64)  # grey: vertices without an error value
_MIN_SIZE = 96


def _jet_table() -> np.ndarray:
    """``(256, 3)`` uint8 RGB rows of OpenCV's JET colormap (row 0 blue, row 255 red)."""
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0]
    return bgr[:, ::-1].copy()


def _check_errors(per_vertex_error_mm: np.ndarray, n: int | None) -> np.ndarray:
    errors = np.asarray(per_vertex_error_mm, dtype=np.float64)
    check_shape("per_vertex_error_mm", errors, (n,))
    if bool((errors < 0).any()):
        raise ShapeError("per_vertex_error_mm: expected non-negative errors (NaN marks vertices without one)")
    return errors


def _check_max(max_mm: float) -> float:
    if not (isinstance(max_mm, (int, float)) and math.isfinite(max_mm) and max_mm > 0):
        raise ShapeError(f"max_mm: expected a positive number of millimetres, got {max_mm!r}")
    return float(max_mm)


def error_colors(per_vertex_error_mm: np.ndarray, max_mm: float = 5.0) -> np.ndarray:
    """Colour of each error: ``(N,)`` mm → ``(N, 3)`` uint8 RGB (JET from 0 to ``max_mm``; NaN grey).

    Useful as ``vertex_colors`` of :func:`dfmvr_core.mesh_io.write_mesh` for an error-coloured mesh.
    """
    errors = _check_errors(per_vertex_error_mm, None)
    max_mm = _check_max(max_mm)
    valid = ~np.isnan(errors)
    levels = np.round(np.clip(np.where(valid, errors, 0.0) / max_mm, 0.0, 1.0) * 255).astype(np.int64)
    colors = _jet_table()[levels]
    colors[~valid] = _NO_ERROR.astype(np.uint8)
    return colors


def _frontal_camera(vertices: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Optical-frame vertices and intrinsics of a camera on the model's +z axis framing the mesh."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centre, extent = (lo + hi) / 2, np.maximum(hi - lo, 1e-9)
    distance = 5.0 * float(extent.max())  # mild perspective
    flip = np.asarray(MODEL_TO_OPTICAL, dtype=np.float64)
    cam = (vertices - centre) @ flip.T + np.array((0.0, 0.0, distance))
    nearest = distance - extent[2] / 2  # the nearest part of the face appears largest
    focal = 0.9 * min(width, height) * nearest / float(max(extent[0], extent[1]))
    K = np.array(((focal, 0.0, (width - 1) / 2), (0.0, focal, (height - 1) / 2), (0.0, 0.0, 1.0)))
    return cam, K


def _draw_colour_bar(image: np.ndarray, x0: int, max_mm: float) -> None:
    """Vertical JET bar at column ``x0`` (0 mm at the bottom, ``max_mm`` at the top) with labels, in place."""
    height = image.shape[0]
    scale = max(0.35, height / 1100)
    thickness = 1 if height < 700 else 2
    top, bottom = int(0.12 * height), int(0.88 * height)
    bar_w = max(10, height // 28)
    table = _jet_table()
    rows = np.arange(top, bottom + 1)
    levels = np.round((bottom - rows) / (bottom - top) * 255).astype(np.int64)
    image[top : bottom + 1, x0 : x0 + bar_w] = table[levels][:, None, :]
    cv2.rectangle(image, (x0, top), (x0 + bar_w, bottom), (0, 0, 0), 1)
    for fraction in (0.0, 0.5, 1.0):
        y = round(bottom - fraction * (bottom - top))
        cv2.line(image, (x0 + bar_w, y), (x0 + bar_w + 4, y), (0, 0, 0), 1)
        label = f"{fraction * max_mm:.1f}" + ("+" if fraction == 1.0 else "")
        (_, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.putText(
            image, label, (x0 + bar_w + 7, y + text_h // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
            cv2.LINE_AA,
        )  # fmt: skip
    cv2.putText(
        image, "mm", (x0, top - int(14 * scale / 0.45)), cv2.FONT_HERSHEY_SIMPLEX, scale * 1.1, (0, 0, 0), thickness,
        cv2.LINE_AA,
    )  # fmt: skip


def error_map_image(
    vertices: np.ndarray,
    faces: np.ndarray,
    per_vertex_error_mm: np.ndarray,
    max_mm: float = 5.0,
    size: int = 512,
    *,
    shade: bool = True,
) -> np.ndarray:
    """Render a frontal error map of a mesh with a colour bar.

    Args:
        vertices: ``(N, 3)`` float, metres, model frame (x right, y up, z towards the viewer): the map looks
            along −z, so a face in the model frame is seen from the front.
        faces: ``(F, 3)`` int, counter-clockwise seen from outside (back faces are culled).
        per_vertex_error_mm: ``(N,)`` float errors in mm, ``>= 0``; NaN for vertices without one (grey).
        max_mm: the error shown red (top of the colour bar); larger errors are red too.
        size: output height and width in pixels (the mesh uses the left part, the colour bar the right).
        shade: darken surfaces turned away from the viewer (Lambert, factor 0.6-1.0).

    Returns:
        ``(size, size, 3)`` uint8 RGB image; white background.

    Raises:
        ShapeError: bad shapes, non-finite vertices, negative errors, a bad ``max_mm`` or ``size``.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    check_shape("vertices", vertices, ("N", 3))
    check_finite("vertices", vertices)
    faces_np = np.asarray(faces)
    check_shape("faces", faces_np, (None, 3))
    if faces_np.dtype.kind not in "iu":
        raise ShapeError(f"faces: expected integer vertex indices, got dtype {faces_np.dtype}")
    errors = _check_errors(per_vertex_error_mm, len(vertices))
    max_mm = _check_max(max_mm)
    if isinstance(size, bool) or not isinstance(size, int) or not _MIN_SIZE <= size <= 8192:
        raise ShapeError(f"size: expected an integer number of pixels in [{_MIN_SIZE}, 8192], got {size!r}")

    bar_width = max(64, round(size * 0.17))
    width = size - bar_width
    cam, K = _frontal_camera(vertices, width, size)
    faces_t = torch.from_numpy(faces_np.astype(np.int64))
    fragments = rasterize(torch.from_numpy(cam)[None], torch.from_numpy(K), faces_t, size, width, cull_backfaces=True)
    valid = ~np.isnan(errors)
    level = np.clip(np.where(valid, errors, 0.0) / max_mm, 0.0, 1.0)
    lit = np.ones(len(vertices))
    if shade and len(faces_np):
        lit = 0.6 + 0.4 * np.clip(vertex_normals(vertices, faces_np)[:, 2], 0.0, 1.0)
    attributes = torch.from_numpy(np.stack((level, valid.astype(np.float64), lit), axis=1))
    pixels = interpolate(attributes, fragments, faces_t)[0].numpy()  # (H, W, 3)
    mask = fragments.mask[0].numpy()

    table = _jet_table().astype(np.float64)
    colour = table[np.round(pixels[..., 0] * 255).astype(np.int64).clip(0, 255)]
    colour = np.where((pixels[..., 1] >= 0.5)[..., None], colour, _NO_ERROR)
    colour *= pixels[..., 2:3]
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    render = image[:, :width]
    render[mask] = np.clip(np.round(colour[mask]), 0, 255).astype(np.uint8)
    _draw_colour_bar(image, width + 8, max_mm)
    return image


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` grey) image as PNG, atomically.

    Raises:
        ShapeError: wrong shape or dtype.
        OSError: the encoder failed.
    """
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ShapeError(f"image: expected (H, W, 3) or (H, W) uint8, got {image.shape} {image.dtype}")
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path
