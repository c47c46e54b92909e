"""image_codec: every supported encoding (with padded rows and both byte orders), JPEG/PNG CompressedImage,
and the errors for unknown encodings, truncated data and empty images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dfmvr_ros import messages as M
from dfmvr_ros.image_codec import ImageEncodingError, compressed_image_message, image_from_message

TYPES = M.rosbags_types("humble")
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def raw_image(pixels: np.ndarray, encoding: str, *, pad: int = 0, bigendian: bool = False, data: bytes | None = None):
    """A sensor_msgs/Image with ``pad`` garbage bytes at the end of every row."""
    height, width = pixels.shape[:2]
    row = pixels.reshape(height, -1)
    if pixels.dtype.itemsize == 2:
        row = row.astype(">u2" if bigendian else "<u2")
    row_bytes = row.view(np.uint8).reshape(height, -1)
    padded = np.concatenate([row_bytes, np.full((height, pad), 0xEE, np.uint8)], axis=1)
    payload = padded.tobytes() if data is None else data
    return M.build(
        TYPES,
        "sensor_msgs/msg/Image",
        header=M.header(TYPES, 0, "cam"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=padded.shape[1],
        data=np.frombuffer(payload, np.uint8),
    )


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize(
    ("encoding", "pixels"),
    [
        ("rgb8", RGB),
        ("bgr8", RGB[..., ::-1]),
        ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
        ("bgra8", np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])),
    ],
)
def test_colour_encodings(encoding, pixels, pad):
    np.testing.assert_array_equal(image_from_message(raw_image(pixels, encoding, pad=pad)), RGB)


@pytest.mark.parametrize("pad", [0, 3])
def test_mono8(pad):
    grey = RGB[..., 1]
    out = image_from_message(raw_image(grey, "mono8", pad=pad))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    assert out.flags.writeable and out.flags.c_contiguous


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 6])
def test_16_bit_encodings_scale_by_256(bigendian, pad):
    wide = RGB.astype(np.uint16) * 256 + 255  # the low byte must be dropped
    mono = image_from_message(raw_image(wide[..., 0], "mono16", pad=pad, bigendian=bigendian))
    np.testing.assert_array_equal(mono, np.repeat(RGB[..., :1], 3, axis=2))
    colour = image_from_message(raw_image(wide[..., ::-1], "bgr16", pad=pad, bigendian=bigendian))
    np.testing.assert_array_equal(colour, RGB)


def _mosaic(colour: tuple[int, int, int], pattern: str, shape=(8, 10), scale: int = 1) -> np.ndarray:
    """A Bayer mosaic of a uniform colour; ``pattern`` names the 2×2 tile from the top-left pixel."""
    value = dict(zip("rgb", colour, strict=True))
    tile = np.array([[value[pattern[0]], value[pattern[1]]], [value[pattern[2]], value[pattern[3]]]])
    return (np.tile(tile, (shape[0] // 2, shape[1] // 2)) * scale).astype(np.uint8 if scale == 1 else np.uint16)


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_demosaic_recovers_a_uniform_colour(pattern, bits):
    colour = (200, 100, 30)
    mosaic = _mosaic(colour, pattern, scale=1 if bits == 8 else 256)
    out = image_from_message(raw_image(mosaic, f"bayer_{pattern}{bits}", pad=2))
    assert out.shape == (8, 10, 3)
    np.testing.assert_array_equal(out[2:-2, 2:-2], np.broadcast_to(np.array(colour, np.uint8), (4, 6, 3)))


@pytest.mark.parametrize(("encoding", "order"), [("yuv422", "UYVY"), ("yuv422_yuy2", "YUYV")])
def test_yuv422(encoding, order):
    """Packed 4:2:2 video-range BT.601 (what cameras and cv_bridge's YUV2RGB_UYVY/YUY2 use)."""
    colour = np.array((200, 100, 30), np.uint8)
    r, g, b = colour / 255.0
    y = round(16 + 65.481 * r + 128.553 * g + 24.966 * b)
    u = round(128 - 37.797 * r - 74.203 * g + 112.0 * b)
    v = round(128 + 112.0 * r - 93.786 * g - 18.214 * b)
    pair = {"UYVY": (u, y, v, y), "YUYV": (y, u, y, v)}[order]
    packed = np.tile(np.array(pair, np.uint8), (4, 3)).reshape(4, 6, 2)
    out = image_from_message(raw_image(packed, encoding))
    assert np.abs(out.astype(int) - colour.astype(int)).max() <= 2


def _compressed(fmt: str, data: bytes):
    return M.build(
        TYPES,
        "sensor_msgs/msg/CompressedImage",
        header=M.header(TYPES, 0, "cam"),
        format=fmt,
        data=np.frombuffer(data, np.uint8),
    )


def _smooth_image() -> np.ndarray:
    yy, xx = np.mgrid[0:32, 0:48]
    return np.dstack([xx * 5, yy * 7, 255 - xx * 3]).astype(np.uint8)


def test_jpeg_roundtrip_via_compressed_image_message():
    image = _smooth_image()
    msg = compressed_image_message(TYPES, 1, "cam", image, "jpeg", quality=95)
    assert msg.format == "rgb8; jpeg compressed bgr8"
    out = image_from_message(msg)
    assert out.shape == image.shape
    assert np.abs(out.astype(int) - image.astype(int)).mean() < 3.0  # lossy, but the channel order is right


@pytest.mark.parametrize("fmt", ["jpeg", "png", "bgr8; png compressed bgr8"])
def test_plain_format_strings(fmt):
    image = _smooth_image()
    ext = ".jpg" if "jpeg" in fmt else ".png"
    _, buffer = cv2.imencode(ext, image[..., ::-1].copy())
    out = image_from_message(_compressed(fmt, buffer.tobytes()))
    assert np.abs(out.astype(int) - image.astype(int)).mean() < (3.0 if ext == ".jpg" else 1e-9)


def test_grey_16_bit_and_alpha_pngs():
    grey = RGB[..., 0]
    _, buffer = cv2.imencode(".png", grey)
    np.testing.assert_array_equal(
        image_from_message(_compressed("mono8; png compressed mono8", buffer.tobytes())),
        np.repeat(grey[..., None], 3, 2),
    )
    _, buffer = cv2.imencode(".png", grey.astype(np.uint16) * 256)
    np.testing.assert_array_equal(
        image_from_message(_compressed("mono16; png compressed mono16", buffer.tobytes())),
        np.repeat(grey[..., None], 3, 2),
    )
    bgra = np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 128, np.uint8)])
    _, buffer = cv2.imencode(".png", bgra)
    np.testing.assert_array_equal(image_from_message(_compressed("png", buffer.tobytes())), RGB)


def test_raw_errors_name_the_encoding_and_sizes():
    with pytest.raises(ImageEncodingError, match="'yuv420' is not supported"):
        image_from_message(raw_image(RGB, "yuv420"))
    truncated = raw_image(RGB, "rgb8", data=RGB.tobytes()[:-1])
    with pytest.raises(ImageEncodingError, match=r"rgb8.*truncated: 104 bytes, expected step × height = 105"):
        image_from_message(truncated)
    too_long = raw_image(RGB, "rgb8", data=RGB.tobytes() + b"\0")
    with pytest.raises(ImageEncodingError, match="too long"):
        image_from_message(too_long)
    short_step = raw_image(RGB, "rgb8")
    short_step.step = 20
    with pytest.raises(ImageEncodingError, match="step 20 < width 7 × 3"):
        image_from_message(short_step)
    empty = raw_image(RGB, "rgb8", data=b"")
    empty.height = 0
    with pytest.raises(ImageEncodingError, match="empty image"):
        image_from_message(empty)
    odd = raw_image(np.zeros((2, 3, 2), np.uint8), "yuv422")
    with pytest.raises(ImageEncodingError, match="even width"):
        image_from_message(odd)
    odd_step = raw_image(np.zeros((2, 3), np.uint16), "mono16", pad=1)
    with pytest.raises(ImageEncodingError, match="multiple of 2"):
        image_from_message(odd_step)


def test_compressed_errors():
    with pytest.raises(ImageEncodingError, match="no data"):
        image_from_message(_compressed("jpeg", b""))
    with pytest.raises(ImageEncodingError, match="could not decode"):
        image_from_message(_compressed("png", b"\x89PNG not really a png"))
    _, buffer = cv2.imencode(".png", RGB)
    with pytest.raises(ImageEncodingError, match="could not decode"):
        image_from_message(_compressed("png", buffer.tobytes()[: buffer.size // 2]))
    with pytest.raises(ImageEncodingError, match="depth stream"):
        image_from_message(_compressed("16UC1; compressedDepth png", buffer.tobytes()))
    with pytest.raises(ImageEncodingError, match="'tiff' is not supported"):
        image_from_message(_compressed("tiff", buffer.tobytes()))
    with pytest.raises(ImageEncodingError, match="expected a sensor_msgs/Image"):
        image_from_message(M.header(TYPES, 0, "cam"))
    with pytest.raises(ImageEncodingError, match="quality"):
        compressed_image_message(TYPES, 0, "cam", RGB, "jpeg", quality=0)
    with pytest.raises(ImageEncodingError, match="fmt"):
        compressed_image_message(TYPES, 0, "cam", RGB, "webp")
    with pytest.raises(ImageEncodingError, match=r"\(H, W, 3\) uint8"):
        compressed_image_message(TYPES, 0, "cam", RGB[..., 0])
