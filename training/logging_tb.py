"""Run logging: ``metrics.jsonl`` (always), TensorBoard scalars and image grids (optional ``train`` extra), and the
input | rendering | error image grid.

``metrics.jsonl`` holds one JSON object per line: ``{"kind": "train", "step": ..., "epoch": ..., "lr": ...,
"loss": ..., "terms": {...}, "raw": {...}, "steps_per_s": ..., "time": unix s}`` every ``log_every`` steps,
``{"kind": "eval", "step": ..., ...}`` after each evaluation and ``{"kind": "info", ...}`` notes. Lines are appended
and flushed one at a time; a resumed run first drops the lines written after the step it resumes from (the file is
rewritten atomically), so the file always describes one consistent run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from dfmvr_core.atomic_io import atomic_path, write_text_atomic
from dfmvr_core.inference import MissingDependencyError

__all__ = ["MetricsLogger", "error_grid", "make_summary_writer"]


def make_summary_writer(log_dir: Path, purge_step: int | None = None) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` (``purge_step`` discards events of a killed run after it).

    Raises:
        MissingDependencyError: TensorBoard (the ``train`` extra) is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise MissingDependencyError(
            f"TensorBoard is not installed ({exc}); it is dfmvr's 'train' extra: "
            "pip install -c constraints.txt -e '.[train]' (or set train.tensorboard: false)"
        ) from None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().item() if value.numel() == 1 else value.detach().cpu().tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class MetricsLogger:
    """Writes ``metrics.jsonl`` and, when enabled, TensorBoard events under ``out_dir/tb``.

    Args:
        out_dir: run folder.
        tensorboard: also write TensorBoard events.
        enabled: False on DDP ranks other than 0 (then nothing is written).
        resume_step: when resuming, the step resumed from: later lines and events are discarded.
    """

    def __init__(self, out_dir: Path, *, tensorboard: bool, enabled: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            self._truncate_after(resume_step)
        if tensorboard:
            self.writer = make_summary_writer(Path(out_dir) / "tb", purge_step=resume_step + 1 if resume_step else None)

    def _truncate_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if not isinstance(record, dict) or int(record.get("step", 0)) <= step:
                kept.append(line)
        write_text_atomic(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        """Append one JSON line (flushed)."""
        if not self.enabled:
            return
        record = {**_plain(record), "time": round(time.time(), 3)}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def scalars(self, step: int, values: dict[str, float], prefix: str) -> None:
        """TensorBoard scalars ``prefix/name`` (nested dicts flattened with ``/``)."""
        if self.writer is None:
            return
        for name, value in values.items():
            if isinstance(value, dict):
                self.scalars(step, value, f"{prefix}/{name}")
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def image(self, step: int, tag: str, image: np.ndarray, png: Path | None = None) -> None:
        """An ``(H, W, 3)`` uint8 RGB image to TensorBoard and, with ``png``, to that file (atomically)."""
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")
        if png is not None:
            with atomic_path(png) as tmp:
                cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def error_grid(inputs: torch.Tensor, rendered: torch.Tensor, mask: torch.Tensor, max_error: float = 0.5) -> np.ndarray:
    """One sample's views as rows of ``input | rendering | error map``.

    Args:
        inputs: (V, H, W, 3) float RGB in [0, 1].
        rendered: (V, H, W, 3) float RGB (clamped to [0, 1] for display).
        mask: (V, H, W) bool, where the rendered face is (the error is shown there only).
        max_error: RGB distance shown at the top of the colour map (jet).

    Returns:
        ``(V·H, 3·W, 3)`` uint8 RGB.
    """
    inputs = inputs.detach().float().cpu().clamp(0, 1)
    rendered = rendered.detach().float().cpu().clamp(0, 1)
    error = torch.linalg.vector_norm(rendered - inputs, dim=-1) * mask.detach().cpu()
    rows = []
    for v in range(inputs.shape[0]):
        level = (error[v] / max_error).clamp(0, 1).mul(255).to(torch.uint8).numpy()
        heat = cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        heat[~mask[v].cpu().numpy()] = 0
        to_u8 = lambda x: (x.numpy() * 255).round().astype(np.uint8)  # noqa: E731
        rows.append(np.concatenate([to_u8(inputs[v]), to_u8(rendered[v]), heat], axis=1))
    return np.concatenate(rows, axis=0)
