"""Image validation and loading: layouts OpenCV decodes become (H, W, 3) uint8 RGB; bad files name the path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfmvr_core.errors import DfmvrError, ShapeError
from dfmvr_core.preprocess import check_rgb_image, load_image


def _rgb(h: int = 12, w: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_check_rgb_image_accepts_and_returns_contiguous() -> None:
    image = _rgb()
    assert check_rgb_image("img", image) is image
    view = image[:, ::-1]
    out = check_rgb_image("img", view, expected_hw=(12, 16))
    assert out.flags.c_contiguous and np.array_equal(out, view)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((12, 16, 3), np.float32), r"^front: expected an \(H, W, 3\) uint8 RGB image, got dtype float32"),
        (np.zeros((12, 16, 4), np.uint8), r"^front: .*got 4 channels \(12, 16, 4\) \(drop the alpha channel\)"),
        (np.zeros((12, 16), np.uint8), r"^front: expected an \(H, W, 3\) uint8 RGB image, got shape \(12, 16\)"),
        ([[0, 1, 2]], r"^front: expected an \(H, W, 3\) uint8 RGB image \(numpy array\), got list"),
        (np.zeros((0, 16, 3), np.uint8), r"^front: expected a non-empty image"),
    ],
)
def test_check_rgb_image_rejects(value, message) -> None:
    with pytest.raises(ShapeError, match=message):
        check_rgb_image("front", value)


def test_check_rgb_image_size() -> None:
    with pytest.raises(ShapeError, match=r"^img: expected 640x480 pixels \(width x height\), got 16x12"):
        check_rgb_image("img", _rgb(), expected_hw=(480, 640))


def test_load_color_png_is_rgb(tmp_path: Path) -> None:
    image = _rgb()
    path = tmp_path / "c.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    loaded = load_image(path)
    assert loaded.dtype == np.uint8 and loaded.shape == (12, 16, 3)
    np.testing.assert_array_equal(loaded, image)


def test_load_gray_16bit_and_alpha(tmp_path: Path) -> None:
    gray = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    np.testing.assert_array_equal(load_image(tmp_path / "g.png"), np.repeat(gray[..., None], 3, axis=2))

    deep = (gray.astype(np.uint16) * 257)[..., None].repeat(3, axis=2)
    deep[0, 0] = (65535, 0, 257)  # BGR on disk
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    loaded = load_image(tmp_path / "d.png")
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded[1:, :, 0], np.broadcast_to(gray[1:], (11, 16)))
    assert tuple(loaded[0, 0]) == (1, 0, 255)  # RGB

    bgra = np.zeros((12, 16, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 200, 10, 0  # fully transparent: alpha is dropped, not composited
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    loaded = load_image(tmp_path / "a.png")
    assert loaded.shape == (12, 16, 3) and tuple(loaded[5, 5]) == (10, 0, 200)


def test_load_image_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(DfmvrError, match=rf"^{missing}: image file not found"):
        load_image(missing)
    with pytest.raises(DfmvrError, match=r"is a directory"):
        load_image(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(DfmvrError, match=rf"^{text}: not a readable image"):
        load_image(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DfmvrError, match=r"not a readable image"):
        load_image(empty)
    truncated = tmp_path / "cut.png"
    _, buf = cv2.imencode(".png", _rgb(64, 64))
    truncated.write_bytes(buf.tobytes()[:40])
    with pytest.raises(DfmvrError, match=rf"^{truncated}: not a readable image"):
        load_image(truncated)
