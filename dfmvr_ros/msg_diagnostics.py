"""``diagnostic_msgs/DiagnosticArray`` from plain ``(name, level, message, values)`` tuples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dfmvr_core.errors import ConfigError
from dfmvr_ros.message_types import MessageTypes, build
from dfmvr_ros.msg_common import header

__all__ = ["DIAGNOSTIC_LEVELS", "diagnostic_array"]

DIAGNOSTIC_LEVELS = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}
"""``diagnostic_msgs/DiagnosticStatus`` levels."""


def diagnostic_array(types: MessageTypes, stamp_ns: int, statuses: Sequence[Sequence[Any]]) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` (header frame empty, as diagnostic aggregators expect).

    Each status is ``(name, level, message, values)`` or ``(name, level, message, values, hardware_id)``:
    ``level`` an int in :data:`DIAGNOSTIC_LEVELS` (0 OK, 1 WARN, 2 ERROR, 3 STALE), ``values`` a mapping
    whose keys and values become ``KeyValue`` strings (``str()`` of each).

    Raises:
        ConfigError: a status of the wrong arity, a level outside 0..3, or an empty name (field named).
    """
    built = []
    for i, status in enumerate(statuses):
        if not isinstance(status, Sequence) or isinstance(status, str) or len(status) not in (4, 5):
            raise ConfigError(f"statuses[{i}]: expected (name, level, message, values[, hardware_id]), got {status!r}")
        name, level, message, values = status[:4]
        hardware_id = status[4] if len(status) == 5 else ""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"statuses[{i}].name: expected a non-empty string, got {name!r}")
        if isinstance(level, bool) or not isinstance(level, int) or level not in DIAGNOSTIC_LEVELS.values():
            raise ConfigError(f"statuses[{i}].level: expected 0 (OK), 1 (WARN), 2 (ERROR) or 3 (STALE), got {level!r}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"statuses[{i}].values: expected a mapping of key → value, got {type(values).__name__}")
        key_values = [build(types, "diagnostic_msgs/msg/KeyValue", key=str(k), value=str(v)) for k, v in values.items()]
        built.append(
            build(
                types,
                "diagnostic_msgs/msg/DiagnosticStatus",
                level=types.byte(level),
                name=name,
                message=str(message),
                hardware_id=str(hardware_id),
                values=key_values,
            )
        )
    return build(types, "diagnostic_msgs/msg/DiagnosticArray", header=header(types, stamp_ns, ""), status=built)
