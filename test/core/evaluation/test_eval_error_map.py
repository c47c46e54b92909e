"""Error-map pictures: size, colours (blue small, red large, grey unknown), colour bar, PNG output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dfmvr_core.errors import ShapeError
from dfmvr_core.evaluation import error_colors, error_map_image, save_png


def _face_like_grid(n: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """A bulged square in the model frame (x right, y up, bulging towards +z), counter-clockwise from +z."""
    s = np.linspace(-0.08, 0.08, n)
    gx, gy = np.meshgrid(s, s, indexing="xy")
    gz = 0.03 * (1 - (gx**2 + gy**2) / 0.0128)
    vertices = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return vertices, np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])


def _render_width(size: int) -> int:
    return size - max(64, round(size * 0.17))


def test_small_errors_are_blue_large_ones_red_unknown_grey():
    vertices, faces = _face_like_grid()
    errors = (vertices[:, 0] + 0.08) / 0.16 * 5.0  # 0 mm at the left edge, 5 mm at the right edge
    size = 256
    image = error_map_image(vertices, faces, errors, max_mm=5.0, size=size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    width = _render_width(size)
    row = size // 2
    left = image[row, int(width * 0.12)].astype(int)
    right = image[row, int(width * 0.88)].astype(int)
    assert left[2] > left[0] + 80  # blue dominates on the left
    assert right[0] > right[2] + 80  # red dominates on the right
    assert np.array_equal(image[2, 2], (255, 255, 255))  # white background
    # unknown errors (NaN) on the right half are drawn grey: R = G = B
    unknown = errors.copy()
    unknown[vertices[:, 0] > 0.0] = np.nan
    grey = error_map_image(vertices, faces, unknown, max_mm=5.0, size=size)[row, int(width * 0.88)].astype(int)
    assert abs(grey[0] - grey[1]) <= 1 and abs(grey[1] - grey[2]) <= 1 and 60 < grey[0] < 200
    # the colour bar: red at the top, blue at the bottom
    bar_x = width + 8 + 4
    top, bottom = image[int(0.13 * size), bar_x].astype(int), image[int(0.87 * size), bar_x].astype(int)
    assert top[0] > top[2] + 80 and bottom[2] > bottom[0] + 80


def test_the_face_is_seen_from_the_front():
    vertices, faces = _face_like_grid()
    errors = np.where(vertices[:, 1] > 0.0, 5.0, 0.0)  # upper half red (model +y is up)
    size = 200
    image = error_map_image(vertices, faces, errors, size=size, shade=False)
    width = _render_width(size)
    upper, lower = image[int(size * 0.3), width // 2].astype(int), image[int(size * 0.7), width // 2].astype(int)
    assert upper[0] > upper[2] and lower[2] > lower[0]
    # back faces are culled: the same mesh turned around (seen from behind) draws nothing
    back = vertices * (-1, 1, -1)  # rotated 180° about y
    assert (error_map_image(back, faces, errors, size=size)[:, :width] == 255).all()


def test_error_colors_use_the_jet_scale():
    colors = error_colors(np.array([0.0, 2.5, 5.0, 50.0, np.nan]), max_mm=5.0)
    assert colors.dtype == np.uint8 and colors.shape == (5, 3)
    assert colors[0, 2] > 100 and colors[0, 0] == 0  # blue
    assert colors[2, 0] > 100 and colors[2, 2] == 0  # red
    assert np.array_equal(colors[2], colors[3])  # saturates above max_mm
    assert colors[4, 0] == colors[4, 1] == colors[4, 2]  # grey


def test_save_png_round_trip(tmp_path):
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[:, :10] = (255, 0, 0)  # red in RGB
    path = save_png(tmp_path / "maps" / "a.png", image)
    read = cv2.imread(str(path))  # BGR
    assert read.shape == (20, 30, 3)
    assert np.array_equal(read[..., ::-1], image)
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.png"]  # no temporary file left
    with pytest.raises(ShapeError, match="uint8"):
        save_png(tmp_path / "b.png", image.astype(np.float32))


def test_bad_inputs_are_refused():
    vertices, faces = _face_like_grid(5)
    ok = np.zeros(len(vertices))
    with pytest.raises(ShapeError, match="per_vertex_error_mm"):
        error_map_image(vertices, faces, ok[:-1])
    with pytest.raises(ShapeError, match="non-negative"):
        error_map_image(vertices, faces, ok - 1.0)
    with pytest.raises(ShapeError, match="max_mm"):
        error_map_image(vertices, faces, ok, max_mm=0.0)
    with pytest.raises(ShapeError, match="size"):
        error_map_image(vertices, faces, ok, size=20)
