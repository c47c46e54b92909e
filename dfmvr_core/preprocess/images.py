"""Camera images as the pipeline takes them: ``(H, W, 3)`` uint8 RGB numpy arrays.

:func:`check_rgb_image` validates an image handed to the API; :func:`load_image` reads a file with OpenCV
(``cv2.imdecode``) and converts it to that layout (BGR → RGB, grayscale replicated, alpha dropped, 16 bit → 8 bit).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dfmvr_core.errors import DfmvrError, ShapeError

__all__ = ["check_rgb_image", "load_image"]


def check_rgb_image(name: str, image: object, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Check that ``image`` is an ``(H, W, 3)`` uint8 RGB array (of size ``expected_hw`` when given).

    Args:
        name: what the image is, for the message (e.g. ``"front image"``).
        image: the value to check.
        expected_hw: ``(height, width)`` pixels the image must have (e.g. from the camera intrinsics), or None.

    Returns:
        ``image`` itself (C-contiguous: a non-contiguous view is copied).

    Raises:
        ShapeError: not a numpy array, wrong dtype, wrong number of channels or size; the message names the
            expected layout.
    """
    expected = "an (H, W, 3) uint8 RGB image"
    if not isinstance(image, np.ndarray):
        raise ShapeError(f"{name}: expected {expected} (numpy array), got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 4:
        raise ShapeError(f"{name}: expected {expected}, got 4 channels {image.shape} (drop the alpha channel)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(f"{name}: expected {expected}, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ShapeError(f"{name}: expected {expected}, got dtype {image.dtype} (convert to uint8 0..255)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ShapeError(f"{name}: expected a non-empty image, got shape {image.shape}")
    if expected_hw is not None:
        h, w = int(expected_hw[0]), int(expected_hw[1])
        if image.shape[:2] != (h, w):
            raise ShapeError(f"{name}: expected {w}x{h} pixels (width x height), got {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file into ``(H, W, 3)`` uint8 RGB.

    Any format OpenCV decodes (PNG, JPEG, TIFF, BMP, ...). Grayscale is replicated to three channels, an alpha
    channel is dropped (not composited), 16-bit images are scaled to 8 bit (``round(v / 257)``: 65535 → 255).
    EXIF orientation is not applied (the pixels are returned as stored, as a camera driver delivers them).
    The bytes are read by Python and decoded with ``cv2.imdecode`` so that missing files and non-ASCII paths give
    clear errors (``cv2.imread`` just returns None).

    Raises:
        DfmvrError: the file is missing, unreadable, not an image, or has an unsupported pixel type; the message
            names the path.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not an image file" if path.is_dir() else "not found"
        raise DfmvrError(f"{path}: image file {what}")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DfmvrError(f"{path}: cannot read the image file ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DfmvrError(f"{path}: not a readable image (OpenCV could not decode {data.size} bytes)")
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DfmvrError(f"{path}: unsupported pixel type {image.dtype}; expected 8- or 16-bit integer images")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise DfmvrError(f"{path}: unsupported image layout {image.shape}; expected gray, BGR or BGRA")
