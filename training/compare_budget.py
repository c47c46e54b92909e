"""Training budgets read from checkpoints, for the comparison table (the issue: "training budgets are equal and
stated").

A checkpoint's ``extra`` dict (written by the trainer, :meth:`dfmvr_training.trainer.Trainer._export_extra`) is read
as follows; anything absent or of the wrong type is "n/a":

* ``extra["budget"]`` (a mapping, optional): the explicit form, its keys override everything below:
  ``steps``, ``batch_size`` (per process), ``world_size``, ``seconds`` (wall time), ``device``, ``data`` (list of
  dataset folders). A staged run (e.g. Deep3DFace's R-Net then C-Net) can state its whole cost here.
* ``extra["step"]``: optimiser steps;
* ``extra["train_config"]["batch_size"]``, ``["device"]`` (the configured one, e.g. ``auto``), ``["data"]``;
* ``extra["world_size"]`` (processes, default 1), ``extra["device"]`` (the device actually used; preferred over the
  configured one), ``extra["train_seconds"]`` (wall time of the training, seconds).

Budgets are compared by the number of training samples seen: ``steps × batch_size × world_size``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TrainingBudget", "budget_from_extra", "budgets_statement", "format_seconds"]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class TrainingBudget:
    """What a checkpoint's training cost (None: not recorded).

    Attributes:
        steps: optimiser steps.
        batch_size: samples per step and process.
        world_size: processes (DDP ranks).
        seconds: training wall time, s.
        device: e.g. ``cpu``, ``cuda:0``.
        data: the training dataset folders.
    """

    steps: int | None = None
    batch_size: int | None = None
    world_size: int = 1
    seconds: float | None = None
    device: str | None = None
    data: tuple[str, ...] | None = None

    @property
    def samples_seen(self) -> int | None:
        """``steps × batch_size × world_size``, or None when either is unknown."""
        if self.steps is None or self.batch_size is None:
            return None
        return self.steps * self.batch_size * self.world_size

    def steps_text(self) -> str:
        """``"2000 × 4"`` (``"2000 × 4 × 2 proc."`` under DDP), or ``"n/a"``."""
        if self.steps is None or self.batch_size is None:
            return "n/a"
        procs = f" × {self.world_size} proc." if self.world_size != 1 else ""
        return f"{self.steps} × {self.batch_size}{procs}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrainingBudget:
        """Inverse of :meth:`to_dict` (None or ``{}``: nothing recorded)."""
        fields = {k: v for k, v in dict(data or {}).items() if k != "samples_seen"}
        if fields.get("data") is not None:
            fields["data"] = tuple(fields["data"])
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with ``samples_seen``)."""
        return {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "samples_seen": self.samples_seen,
            "seconds": self.seconds,
            "device": self.device,
            "data": None if self.data is None else list(self.data),
        }


def budget_from_extra(extra: Mapping[str, Any] | None) -> TrainingBudget:
    """Read a :class:`TrainingBudget` from a checkpoint's ``extra`` (see the module docstring for the keys)."""
    extra = extra if isinstance(extra, Mapping) else {}
    config = extra.get("train_config")
    config = config if isinstance(config, Mapping) else {}
    explicit = extra.get("budget")
    explicit = explicit if isinstance(explicit, Mapping) else {}

    def pick(key: str, *fallbacks: Any) -> Any:
        if key in explicit:
            return explicit[key]
        return next((value for value in fallbacks if value is not None), None)

    data = pick("data", config.get("data"))
    if isinstance(data, str):
        data = [data]
    data_tuple = tuple(str(d) for d in data) if isinstance(data, (list, tuple)) else None
    world_size = _int(pick("world_size", extra.get("world_size")))
    return TrainingBudget(
        steps=_int(pick("steps", extra.get("step"))),
        batch_size=_int(pick("batch_size", config.get("batch_size"))),
        world_size=world_size if world_size else 1,
        seconds=_float(pick("seconds", extra.get("train_seconds"))),
        device=_str(pick("device", extra.get("device"), config.get("device"))),
        data=data_tuple,
    )


def format_seconds(seconds: float | None) -> str:
    """``"45 s"``, ``"18 min"``, ``"1 h 02 min"``; ``"n/a"`` for None."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def budgets_statement(budgets: Sequence[tuple[str, TrainingBudget]]) -> tuple[bool | None, str]:
    """Whether the trained networks had equal budgets (samples seen), and a sentence saying so.

    Args:
        budgets: ``(label, budget)`` of each trained network (one per distinct checkpoint).

    Returns:
        ``(True, ...)`` equal, ``(False, ...)`` not equal, ``(None, ...)`` unknown (a budget is n/a, or no network).
    """
    if not budgets:
        return None, "Training budgets: no trained network in the comparison."
    unknown = [label for label, budget in budgets if budget.samples_seen is None]
    if unknown:
        return None, f"Training budgets: cannot be compared, not recorded (n/a) for {', '.join(unknown)}."
    seen = {budget.samples_seen for _, budget in budgets}
    if len(seen) == 1:
        steps = {budget.steps_text() for _, budget in budgets}
        how = next(iter(steps)) if len(steps) == 1 else "different steps × batch"
        text = f"Training budgets: equal, {next(iter(seen))} training samples seen by each network ({how})."
        datasets = {budget.data for _, budget in budgets}
        if len(datasets) > 1:
            text += " The training data differ: " + "; ".join(
                f"{label}: {', '.join(budget.data) if budget.data else 'n/a'}" for label, budget in budgets
            )
            text += "."
        return True, text
    listing = ", ".join(f"{label}: {budget.samples_seen}" for label, budget in budgets)
    return False, f"Training budgets: NOT equal (training samples seen: {listing})."
