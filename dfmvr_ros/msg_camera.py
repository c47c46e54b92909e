"""Camera messages: ``sensor_msgs/Image`` and ``sensor_msgs/CameraInfo`` to and from dfmvr's types.

Images are numpy arrays in the message's own channel order (cv_bridge's convention: ``image_message(img,
"bgr8")`` expects BGR data, it converts nothing). Intrinsics are :class:`PinholeIntrinsics` (undistorted
pinhole, OpenCV pixel convention). dfmvr assumes rectified images: a ``CameraInfo`` with non-zero distortion
is accepted with a warning (or refused, see :func:`intrinsics_from_camera_info`), and the distortion is
ignored.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from dfmvr_core.errors import ConfigError, ShapeError
from dfmvr_core.geometry.camera import PinholeIntrinsics
from dfmvr_ros.image_encodings import ENCODINGS, ImageEncodingError
from dfmvr_ros.message_types import MessageTypes, build
from dfmvr_ros.msg_common import as_float_array, check_frame_id, header

__all__ = [
    "DistortionIgnoredWarning",
    "camera_info_message",
    "has_distortion",
    "image_message",
    "intrinsics_from_camera_info",
]

_WRITABLE_DTYPES = {1: np.uint8, 2: np.uint16}


class DistortionIgnoredWarning(UserWarning):
    """A ``CameraInfo`` has non-zero distortion coefficients; dfmvr uses its ``K`` as an undistorted pinhole."""


def image_message(types: MessageTypes, stamp_ns: int, frame_id: str, image: np.ndarray, encoding: str = "rgb8") -> Any:
    """``sensor_msgs/Image`` holding ``image``, as ``cv_bridge.cv2_to_imgmsg(image, encoding)`` builds it.

    ``image``: (H, W, C) or (H, W) array whose channel count and dtype match ``encoding`` (``rgb8``/``bgr8``:
    (H, W, 3) uint8; ``rgba8``/``bgra8``: (H, W, 4) uint8; ``mono8``/``bayer_*8``: (H, W) uint8;
    ``mono16``: (H, W) uint16; ...), already in that encoding's channel order. ``step`` is W·C·itemsize,
    ``data`` is ``image.tobytes()`` and ``is_bigendian`` is set from the array's byte order (as cv_bridge).

    Raises:
        ImageEncodingError: unknown encoding, channel count or dtype not matching it, or an empty image.
    """
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ImageEncodingError(
            f"image_message: encoding {encoding!r} is not supported; expected one of {', '.join(sorted(ENCODINGS))}"
        )
    img = np.asarray(image)
    channels = 1 if img.ndim == 2 else (img.shape[2] if img.ndim == 3 else -1)
    expected_dtype = np.dtype(_WRITABLE_DTYPES[layout.itemsize])
    if channels != layout.channels or img.dtype.kind != "u" or img.dtype.itemsize != layout.itemsize:
        shape = "(H, W)" if layout.channels == 1 else f"(H, W, {layout.channels})"
        raise ImageEncodingError(
            f"image_message: encoding {encoding!r} expects a {shape} {expected_dtype} array, "
            f"got shape {img.shape} {img.dtype}"
        )
    height, width = img.shape[:2]
    if height == 0 or width == 0:
        raise ImageEncodingError(f"image_message: empty image of shape {img.shape} ({encoding})")
    big = img.dtype.byteorder == ">" or (img.dtype.byteorder == "=" and sys.byteorder == "big")
    return build(
        types,
        "sensor_msgs/msg/Image",
        header=header(types, stamp_ns, check_frame_id("frame_id", frame_id)),
        height=int(height),
        width=int(width),
        encoding=encoding,
        is_bigendian=int(big),
        step=int(width * layout.pixel_bytes),
        data=types.uint8_array(img),
    )


_DEFAULT_MODELS = {5: "plumb_bob", 8: "rational_polynomial", 12: "rational_polynomial", 14: "rational_polynomial"}


def camera_info_message(
    types: MessageTypes,
    stamp_ns: int,
    frame_id: str,
    intrinsics: PinholeIntrinsics,
    distortion: Sequence[float] | None = None,
    *,
    distortion_model: str | None = None,
) -> Any:
    """``sensor_msgs/CameraInfo`` of a pinhole camera.

    ``k`` is ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``, ``r`` the identity, ``p`` ``[K | 0]`` (a monocular,
    rectified camera), no binning and a full-frame ROI. ``distortion=None`` writes ``plumb_bob`` with five
    zeros (what rectified streams carry); otherwise the coefficients go to ``d`` with ``distortion_model``
    (default by count: 5 → ``plumb_bob``, 8/12/14 → ``rational_polynomial``).

    Raises:
        ShapeError: non-finite coefficients; ConfigError: a count with no default model.
    """
    if not isinstance(intrinsics, PinholeIntrinsics):
        raise ShapeError(f"intrinsics: expected PinholeIntrinsics, got {type(intrinsics).__name__}")
    d = np.zeros(5) if distortion is None else as_float_array("distortion", distortion, (None,))
    model = distortion_model if distortion_model is not None else _DEFAULT_MODELS.get(d.size)
    if model is None:
        raise ConfigError(
            f"distortion_model: no default for {d.size} coefficients (5 → plumb_bob, 8/12/14 → rational_polynomial);"
            " pass distortion_model"
        )
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    k = np.array((fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0))
    p = np.array((fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0))
    roi = build(types, "sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return build(
        types,
        "sensor_msgs/msg/CameraInfo",
        header=header(types, stamp_ns, check_frame_id("frame_id", frame_id)),
        height=intrinsics.height,
        width=intrinsics.width,
        distortion_model=str(model),
        d=types.float64_array(d),
        k=k,
        r=np.eye(3).reshape(-1),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def has_distortion(msg: Any) -> bool:
    """Whether a ``CameraInfo`` has any non-zero distortion coefficient."""
    return bool(np.any(np.asarray(msg.d, dtype=np.float64) != 0.0))


def intrinsics_from_camera_info(msg: Any, *, on_distortion: str = "warn") -> PinholeIntrinsics:
    """``sensor_msgs/CameraInfo`` → :class:`PinholeIntrinsics` (via ``PinholeIntrinsics.from_ros_camera_info``).

    dfmvr projects with an undistorted pinhole, so images must be rectified (``image_rect``) or nearly
    distortion-free. Non-zero ``d`` is handled by ``on_distortion``: ``"warn"`` (default: a
    :class:`DistortionIgnoredWarning`, the distortion is ignored), ``"ignore"`` or ``"error"``. Binning and
    a region of interest would change the pixel grid ``k`` refers to; they are refused.

    Raises:
        ConfigError: an uncalibrated camera (``k`` all zeros), bad focal lengths or sizes, or an unknown
            ``on_distortion``.
        ShapeError: skewed ``k``, binning > 1, a partial ROI, or distortion with ``on_distortion="error"``.
    """
    if on_distortion not in ("warn", "ignore", "error"):
        raise ConfigError(f"on_distortion: expected 'warn', 'ignore' or 'error', got {on_distortion!r}")
    width, height = int(msg.width), int(msg.height)
    k = np.asarray(msg.k, dtype=np.float64)
    if k.size == 9 and not np.any(k):
        raise ConfigError(
            f"CameraInfo (frame {msg.header.frame_id!r}): K is all zeros, the camera is uncalibrated; "
            "calibrate it (camera_calibration) or give the rig's intrinsics"
        )
    intrinsics = PinholeIntrinsics.from_ros_camera_info(k, width, height)
    if int(msg.binning_x) > 1 or int(msg.binning_y) > 1:
        raise ShapeError(
            f"CameraInfo: binning {msg.binning_x}×{msg.binning_y} is not supported; expected 0 or 1 (full resolution)"
        )
    roi = msg.roi
    roi_box = (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
    if roi_box not in ((0, 0, 0, 0), (0, 0, width, height)):
        raise ShapeError(
            f"CameraInfo: ROI (x, y, w, h) = {roi_box} is not supported; expected the full {width}×{height}"
        )
    if has_distortion(msg) and on_distortion != "ignore":
        text = (
            f"CameraInfo ({msg.distortion_model}) has non-zero distortion {list(np.round(np.asarray(msg.d), 6))}; "
            "dfmvr assumes rectified images and ignores it"
        )
        if on_distortion == "error":
            raise ShapeError(text)
        warnings.warn(text, DistortionIgnoredWarning, stacklevel=2)
    return intrinsics
