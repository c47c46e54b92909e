"""ROS image messages → numpy RGB, what ``cv_bridge.imgmsg_to_cv2(msg, "rgb8")`` does, without ROS.

:func:`image_from_message` returns an (H, W, 3) uint8 RGB array (a fresh, writable copy) from

* ``sensor_msgs/Image`` with encoding ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` (alpha dropped), ``mono8``
  (grey replicated), their 16-bit variants ``rgb16`` … ``mono16`` (scaled by ``>> 8``; cv_bridge rounds
  instead of truncating, so values may differ by 1), the Bayer mosaics ``bayer_{rggb,bggr,gbrg,grbg}{8,16}``
  (OpenCV's bilinear demosaicing, with cv_bridge's mapping of ROS pattern names to OpenCV codes) and
  ``yuv422`` (UYVY) / ``yuv422_yuy2`` (YUYV). Rows may be padded (``step`` > W × bytes per pixel);
  ``is_bigendian`` is honoured for 16-bit data. ``data`` must hold exactly ``step × height`` bytes.
* ``sensor_msgs/CompressedImage`` whose ``format`` names JPEG or PNG: ``"jpeg"``, ``"png"`` or
  image_transport's ``"rgb8; jpeg compressed bgr8"`` form. The stream is decoded with ``cv2.imdecode``; like
  compressed_image_transport, the decoded pixels are taken as BGR(A) or grey and converted to RGB.
  ``compressedDepth`` streams are refused.

Anything else (unknown encoding, truncated or padded-wrong data, a 0-size image, an undecodable stream)
raises :class:`ImageEncodingError` naming the encoding and the sizes expected.

Why hand-written although cv_bridge exists: cv_bridge is part of ROS (C++ with a Python wrapper) and not
installable from PyPI; the replay and the tests run without ROS. The pixel conversions themselves are OpenCV's.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from dfmvr_ros.image_encodings import ImageEncodingError, PixelLayout, pixel_layout
from dfmvr_ros.message_types import MessageTypes, build
from dfmvr_ros.msg_common import check_frame_id, field_bytes, header

__all__ = ["ImageEncodingError", "compressed_image_message", "image_from_message"]

# cv_bridge's mapping (ROS names the 2×2 tile from the top-left pixel, OpenCV from the second row/column).
_BAYER_TO_RGB = {
    "bayer_rggb": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg": cv2.COLOR_BayerGB2RGB,
}
_YUV_TO_RGB = {"uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuyv": cv2.COLOR_YUV2RGB_YUY2}


def image_from_message(msg: Any) -> np.ndarray:
    """``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` (rclpy or rosbags) → (H, W, 3) uint8 RGB.

    Raises:
        ImageEncodingError: see the module docstring.
    """
    if hasattr(msg, "encoding") and hasattr(msg, "step"):
        return _decode_raw(msg)
    if hasattr(msg, "format") and hasattr(msg, "data"):
        return _decode_compressed(msg)
    raise ImageEncodingError(
        f"expected a sensor_msgs/Image or sensor_msgs/CompressedImage message, got {type(msg).__name__}"
    )


def _decode_raw(msg: Any) -> np.ndarray:
    encoding = str(msg.encoding)
    layout = pixel_layout(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageEncodingError(f"Image ({encoding}): empty image {width}×{height}; expected width, height > 0")
    row_bytes = width * layout.pixel_bytes
    if step < row_bytes:
        raise ImageEncodingError(
            f"Image ({encoding}): step {step} < width {width} × {layout.pixel_bytes} bytes per pixel = {row_bytes}"
        )
    if step % layout.itemsize:
        raise ImageEncodingError(f"Image ({encoding}): step {step} is not a multiple of {layout.itemsize} bytes")
    data = field_bytes(msg.data)
    if data.size != step * height:
        what = "truncated" if data.size < step * height else "too long"
        raise ImageEncodingError(
            f"Image ({encoding}, {width}×{height}, step {step}): data is {what}: {data.size} bytes, "
            f"expected step × height = {step * height}"
        )
    rows = np.ascontiguousarray(data.reshape(height, step)[:, :row_bytes])
    if layout.itemsize == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        pixels = rows.view(dtype).astype(np.uint16).reshape(height, width, layout.channels)
    else:
        pixels = rows.reshape(height, width, layout.channels)
    return _to_rgb8(pixels, layout, encoding)


def _to_rgb8(pixels: np.ndarray, layout: PixelLayout, encoding: str) -> np.ndarray:
    kind = layout.kind
    if kind in _BAYER_TO_RGB:
        out = cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), _BAYER_TO_RGB[kind])
    elif kind in _YUV_TO_RGB:
        if pixels.shape[1] % 2:
            raise ImageEncodingError(f"Image ({encoding}): 4:2:2 YUV needs an even width, got {pixels.shape[1]}")
        out = cv2.cvtColor(pixels, _YUV_TO_RGB[kind])
    elif kind == "mono":
        out = np.repeat(pixels, 3, axis=2)
    elif kind in ("rgb", "rgba"):
        out = pixels[..., :3]
    else:  # bgr, bgra
        out = pixels[..., 2::-1]
    if out.dtype == np.uint16:
        out = out >> 8
    return np.array(out, dtype=np.uint8, order="C", copy=True)


def _decode_compressed(msg: Any) -> np.ndarray:
    fmt = str(msg.format)
    lowered = fmt.lower()
    if "compresseddepth" in lowered:
        raise ImageEncodingError(
            f"CompressedImage: format {fmt!r} is a depth stream; expected a JPEG or PNG colour image"
        )
    if not any(name in lowered for name in ("jpeg", "jpg", "png")):
        raise ImageEncodingError(
            f"CompressedImage: format {fmt!r} is not supported; expected 'jpeg', 'png' or "
            "'<encoding>; jpeg|png compressed <encoding>'"
        )
    data = field_bytes(msg.data)
    if data.size == 0:
        raise ImageEncodingError(f"CompressedImage ({fmt}): no data (0 bytes)")
    decoded = cv2.imdecode(np.ascontiguousarray(data), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.size == 0:
        raise ImageEncodingError(
            f"CompressedImage ({fmt}): cv2.imdecode could not decode {data.size} bytes (corrupt or truncated stream)"
        )
    if decoded.ndim == 2:
        decoded = decoded[..., None]
    channels = decoded.shape[2]
    if channels == 1:
        rgb = np.repeat(decoded, 3, axis=2)
    elif channels in (3, 4):
        rgb = decoded[..., 2::-1]
    else:
        raise ImageEncodingError(f"CompressedImage ({fmt}): decoded {channels} channels; expected 1, 3 or 4")
    if rgb.dtype == np.uint16:
        rgb = rgb >> 8
    elif rgb.dtype != np.uint8:
        raise ImageEncodingError(f"CompressedImage ({fmt}): decoded dtype {rgb.dtype}; expected uint8 or uint16")
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def compressed_image_message(
    types: MessageTypes,
    stamp_ns: int,
    frame_id: str,
    image: np.ndarray,
    fmt: str = "jpeg",
    quality: int = 90,
    *,
    png_level: int = 3,
) -> Any:
    """``sensor_msgs/CompressedImage`` of an (H, W, 3) uint8 RGB image, as compressed_image_transport builds
    it: the pixels are encoded as BGR and ``format`` is ``"rgb8; jpeg compressed bgr8"`` (or ``png``).

    Args:
        fmt: ``"jpeg"`` or ``"png"``.
        quality: JPEG quality 1..100 (ignored for PNG).
        png_level: PNG compression level 0..9 (ignored for JPEG).

    Raises:
        ImageEncodingError: not an (H, W, 3) uint8 non-empty image, an unknown ``fmt``, or a bad quality/level.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageEncodingError(
            f"compressed_image_message: expected a non-empty (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}"
        )
    if fmt == "jpeg":
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ImageEncodingError(
                f"compressed_image_message: JPEG quality must be an int in 1..100, got {quality!r}"
            )
        ext, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif fmt == "png":
        if isinstance(png_level, bool) or not isinstance(png_level, int) or not 0 <= png_level <= 9:
            raise ImageEncodingError(f"compressed_image_message: PNG level must be an int in 0..9, got {png_level!r}")
        ext, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, png_level]
    else:
        raise ImageEncodingError(f"compressed_image_message: fmt must be 'jpeg' or 'png', got {fmt!r}")
    ok, buffer = cv2.imencode(ext, np.ascontiguousarray(img[..., ::-1]), params)
    if not ok:
        raise ImageEncodingError(f"compressed_image_message: cv2.imencode({ext!r}) failed for an image {img.shape}")
    return build(
        types,
        "sensor_msgs/msg/CompressedImage",
        header=header(types, stamp_ns, check_frame_id("frame_id", frame_id)),
        format=f"rgb8; {fmt} compressed bgr8",
        data=types.uint8_array(buffer.reshape(-1)),
    )
