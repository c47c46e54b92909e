"""The ``sensor_msgs/Image`` encodings dfmvr reads and writes, and the error for image-message problems.

Names and layouts follow ``sensor_msgs/image_encodings.hpp`` (the strings cv_bridge uses). Shared by
:mod:`dfmvr_ros.messages` (building messages) and :mod:`dfmvr_ros.image_codec` (decoding them).
"""

from __future__ import annotations

import dataclasses

from dfmvr_core.errors import ShapeError

__all__ = ["ENCODINGS", "ImageEncodingError", "PixelLayout", "pixel_layout"]


class ImageEncodingError(ShapeError):
    """An image message has an unknown encoding/format, inconsistent sizes, or no pixels. The message names
    the encoding and the sizes expected."""


@dataclasses.dataclass(frozen=True)
class PixelLayout:
    """Memory layout of one encoding.

    Attributes:
        channels: values per pixel (a Bayer mosaic and YUV 4:2:2 count as 1 and 2 channels of raw samples).
        itemsize: bytes per value (1 or 2).
        kind: ``"rgb"``, ``"bgr"``, ``"rgba"``, ``"bgra"``, ``"mono"``, ``"bayer_rggb"`` (etc.), ``"uyvy"``
            or ``"yuyv"``: how the values become RGB.
    """

    channels: int
    itemsize: int
    kind: str

    @property
    def pixel_bytes(self) -> int:
        """Bytes per pixel."""
        return self.channels * self.itemsize


def _table() -> dict[str, PixelLayout]:
    table = {
        "rgb8": PixelLayout(3, 1, "rgb"),
        "bgr8": PixelLayout(3, 1, "bgr"),
        "rgba8": PixelLayout(4, 1, "rgba"),
        "bgra8": PixelLayout(4, 1, "bgra"),
        "mono8": PixelLayout(1, 1, "mono"),
        "rgb16": PixelLayout(3, 2, "rgb"),
        "bgr16": PixelLayout(3, 2, "bgr"),
        "rgba16": PixelLayout(4, 2, "rgba"),
        "bgra16": PixelLayout(4, 2, "bgra"),
        "mono16": PixelLayout(1, 2, "mono"),
        "yuv422": PixelLayout(2, 1, "uyvy"),  # UYVY byte order (image_encodings::YUV422)
        "yuv422_yuy2": PixelLayout(2, 1, "yuyv"),  # YUYV byte order (image_encodings::YUV422_YUY2)
    }
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        table[f"bayer_{pattern}8"] = PixelLayout(1, 1, f"bayer_{pattern}")
        table[f"bayer_{pattern}16"] = PixelLayout(1, 2, f"bayer_{pattern}")
    return table


ENCODINGS: dict[str, PixelLayout] = _table()
"""Every encoding :func:`dfmvr_ros.image_codec.image_from_message` decodes, by its ROS name."""


def pixel_layout(encoding: str) -> PixelLayout:
    """Layout of ``encoding``.

    Raises:
        ImageEncodingError: unknown encoding (the message lists the supported ones).
    """
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ImageEncodingError(
            f"image encoding {encoding!r} is not supported; expected one of {', '.join(sorted(ENCODINGS))}"
        )
    return layout
