"""3DMM coefficients as ``std_msgs/Float32MultiArray``, with one labelled dimension per coefficient block.

Layout (a dfmvr convention, not a tensor layout):

* ``data`` is the blocks' float32 values concatenated in ``layout.dim`` order (each block flattened in C order);
  ``layout.data_offset`` is 0.
* ``layout.dim[i]`` describes block i: ``label`` = block name, ``size`` = its number of values, ``stride`` =
  its row length: ``size`` for a 1-D block, the number of columns C for a 2-D block (R, C) (so ``size / stride``
  is its row count). Block i starts at ``sum(dim[j].size for j < i)``.
* dfmvr publishes the blocks in :data:`COEFFICIENT_BLOCKS` order, with sizes from the loaded morphable model:
  ``identity`` (I,), ``expression`` (E,), ``albedo`` (T,), ``lighting`` (V, 27) (SH, 3 bands × RGB, per view)
  and ``pose`` (V, 6) (Euler angles in radians then translation in metres, per view), V = 3 views ordered
  (left, front, right).

:func:`coefficients_from_array` is the inverse; a 2-D block with a single row comes back 1-D.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dfmvr_core.errors import ShapeError
from dfmvr_core.validation import check_finite
from dfmvr_ros.message_types import MessageTypes, build

__all__ = ["COEFFICIENT_BLOCKS", "coefficients_array", "coefficients_from_array"]

COEFFICIENT_BLOCKS = ("identity", "expression", "albedo", "lighting", "pose")
"""Block names and order of the coefficients dfmvr publishes (the ONNX ``coefficients`` output's order)."""


def coefficients_array(types: MessageTypes, blocks: Mapping[str, np.ndarray]) -> Any:
    """``std_msgs/Float32MultiArray`` of named coefficient blocks (1-D or 2-D, finite), in ``blocks``' order.

    Raises:
        ShapeError: an empty or duplicate name, a block that is not 1-D/2-D, or NaN/inf values.
    """
    if not blocks:
        raise ShapeError("coefficients: expected at least one block, got none")
    dims, values = [], []
    for name, block in blocks.items():
        if not isinstance(name, str) or not name:
            raise ShapeError(f"coefficients: block names must be non-empty strings, got {name!r}")
        arr = np.asarray(block)
        if arr.dtype.kind not in "biuf" or arr.ndim not in (1, 2):
            raise ShapeError(
                f"coefficients[{name!r}]: expected a 1-D (K,) or 2-D (R, C) real array, got {arr.shape} {arr.dtype}"
            )
        check_finite(f"coefficients[{name!r}]", arr)
        size = int(arr.size)
        stride = int(arr.shape[1]) if arr.ndim == 2 else size
        dims.append(build(types, "std_msgs/msg/MultiArrayDimension", label=name, size=size, stride=stride))
        values.append(arr.astype(np.float32).reshape(-1))
    layout = build(types, "std_msgs/msg/MultiArrayLayout", dim=dims, data_offset=0)
    return build(
        types, "std_msgs/msg/Float32MultiArray", layout=layout, data=types.float32_array(np.concatenate(values))
    )


def coefficients_from_array(msg: Any) -> dict[str, np.ndarray]:
    """Inverse of :func:`coefficients_array`: ``{label: float32 array}`` in ``layout.dim`` order.

    Raises:
        ShapeError: duplicate/empty labels, a stride that does not divide its size, or sizes that do not add
            up to ``len(data) - data_offset``.
    """
    data = np.asarray(msg.data, dtype=np.float32).reshape(-1)
    offset = int(msg.layout.data_offset)
    sizes = [int(d.size) for d in msg.layout.dim]
    if offset < 0 or offset + sum(sizes) != data.size:
        raise ShapeError(
            f"Float32MultiArray: data_offset {offset} + block sizes {sizes} (sum {sum(sizes)}) != {data.size} values"
        )
    blocks: dict[str, np.ndarray] = {}
    start = offset
    for dim, size in zip(msg.layout.dim, sizes, strict=True):
        label, stride = str(dim.label), int(dim.stride)
        if not label or label in blocks:
            raise ShapeError(
                f"Float32MultiArray: block labels must be unique and non-empty, got {label!r} twice or empty"
            )
        block = data[start : start + size].copy()
        start += size
        if stride == size or size == 0:
            blocks[label] = block
        elif stride > 0 and size % stride == 0:
            blocks[label] = block.reshape(size // stride, stride)
        else:
            raise ShapeError(
                f"Float32MultiArray: block {label!r} has size {size} and stride {stride}; expected stride "
                "= size (1-D) or a divisor of size (row length of a 2-D block)"
            )
    return blocks
