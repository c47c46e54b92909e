"""Helpers shared by the dfmvr_ros message tests: CDR round trips through rosbags' typestores."""

from __future__ import annotations

from typing import Any

from dfmvr_ros.messages import RosbagsTypes

DISTROS = ("humble", "jazzy")


def cdr_roundtrip(types: RosbagsTypes, msg: Any) -> tuple[bytes, Any]:
    """Serialize ``msg`` with ``types``' typestore and deserialize it again; return ``(cdr bytes, message)``."""
    msgtype = types.msgtype(msg)
    data = bytes(types.typestore.serialize_cdr(msg, msgtype))
    return data, types.typestore.deserialize_cdr(data, msgtype)
