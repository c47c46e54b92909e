"""Time stamps, headers and the small input checks shared by the message constructors.

Stamps are integer nanoseconds since the epoch (the clock the ROS messages carry); ``builtin_interfaces/Time``
holds them as ``sec`` (int32) and ``nanosec`` (uint32, < 1e9).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_finite, check_shape
from dfmvr_ros.message_types import MessageTypes, build

__all__ = [
    "MAX_STAMP_NS",
    "as_float_array",
    "check_frame_id",
    "check_stamp_ns",
    "field_bytes",
    "header",
    "ns_to_duration",
    "ns_to_stamp",
    "stamp_to_ns",
]

NS_PER_S = 1_000_000_000
MAX_STAMP_NS = (2**31 - 1) * NS_PER_S + NS_PER_S - 1
"""Largest stamp ``builtin_interfaces/Time`` can hold (``sec`` is int32): 2038-01-19T03:14:07.999999999Z."""


def check_stamp_ns(stamp_ns: Any, name: str = "stamp_ns") -> int:
    """Validate a stamp in integer nanoseconds (``0 <= stamp_ns <= MAX_STAMP_NS``) and return it as ``int``.

    Raises:
        ShapeError: not an integer (floats lose nanoseconds), negative, or past ``MAX_STAMP_NS``.
    """
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)):
        raise ShapeError(f"{name}: expected integer nanoseconds, got {type(stamp_ns).__name__} {stamp_ns!r}")
    value = int(stamp_ns)
    if value < 0:
        raise ShapeError(f"{name}: expected a non-negative time in nanoseconds, got {value}")
    if value > MAX_STAMP_NS:
        raise ShapeError(f"{name}: {value} ns does not fit builtin_interfaces/Time (int32 seconds); max {MAX_STAMP_NS}")
    return value


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (anything with ``sec`` and ``nanosec``) → integer nanoseconds
    ``sec·1e9 + nanosec``.

    Like ``rclpy.time.Time.from_msg``, a ``nanosec`` of 1e9 or more carries into the seconds instead of being
    refused: real publishers write such stamps (the Humble bag in ``shared/data`` has ``sec=0,
    nanosec=2e9``).

    Raises:
        ShapeError: a negative ``sec`` or ``nanosec``.
    """
    sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    if sec < 0 or nanosec < 0:
        raise ShapeError(f"stamp: expected a non-negative time, got sec={sec}, nanosec={nanosec}")
    return sec * NS_PER_S + nanosec


def ns_to_stamp(types: MessageTypes, ns: int) -> Any:
    """Integer nanoseconds → ``builtin_interfaces/Time``.

    Raises:
        ShapeError: negative, non-integer or too large (see :func:`check_stamp_ns`).
    """
    ns = check_stamp_ns(ns, "ns")
    return build(types, "builtin_interfaces/msg/Time", sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def ns_to_duration(types: MessageTypes, seconds: float, name: str = "duration") -> Any:
    """Seconds (finite, >= 0) → ``builtin_interfaces/Duration`` rounded to the nanosecond."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.integer, np.floating)):
        raise ShapeError(f"{name}: expected seconds as a number, got {type(seconds).__name__}")
    if not (math.isfinite(seconds) and 0 <= seconds < 2**31):
        raise ShapeError(f"{name}: expected finite seconds in [0, 2^31), got {seconds!r}")
    ns = round(float(seconds) * NS_PER_S)
    return build(types, "builtin_interfaces/msg/Duration", sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def check_frame_id(name: str, frame_id: Any, *, allow_empty: bool = False) -> str:
    """A tf2 frame name: a ``str`` without whitespace, non-empty unless ``allow_empty``.

    Raises:
        ShapeError: naming ``name`` and the value.
    """
    if not isinstance(frame_id, str):
        raise ShapeError(f"{name}: expected a frame name (str), got {type(frame_id).__name__}")
    if not frame_id and not allow_empty:
        raise ShapeError(f"{name}: expected a non-empty frame name")
    if any(c.isspace() for c in frame_id):
        raise ShapeError(f"{name}: frame names cannot contain whitespace, got {frame_id!r}")
    return frame_id


def header(types: MessageTypes, stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/Header`` with the stamp ``stamp_ns`` (integer ns) and ``frame_id`` (may be empty)."""
    return build(
        types,
        "std_msgs/msg/Header",
        stamp=ns_to_stamp(types, stamp_ns),
        frame_id=check_frame_id("frame_id", frame_id, allow_empty=True),
    )


def as_float_array(name: str, value: Any, spec: tuple, dtype: type = np.float64) -> np.ndarray:
    """``value`` as a finite numpy array of ``dtype`` and shape ``spec`` (see :func:`check_shape`).

    Raises:
        ShapeError: wrong shape, not numeric, or NaN/inf.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise ShapeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    check_shape(name, arr, spec)
    check_finite(name, arr)
    return np.ascontiguousarray(arr, dtype=dtype)


def field_bytes(data: Any) -> np.ndarray:
    """A ``uint8[]`` field read back from either backend (numpy, ``array.array``, bytes, list) as a uint8
    array (no copy where the value exposes a buffer)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ShapeError(f"uint8[] field: expected dtype uint8, got {data.dtype}")
        return data.reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    if hasattr(data, "typecode"):  # array.array (rclpy)
        if data.typecode != "B":
            raise ShapeError(f"uint8[] field: expected array.array('B'), got typecode {data.typecode!r}")
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)
