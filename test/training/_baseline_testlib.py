"""Shared helpers of the baseline trainer tests (test_train_baseline_*.py): tiny baseline network configs for the
64-pixel trainer datasets, a small frozen embedder, and the loss of a fixed batch (a deterministic "does the loss
fall" measure, unlike the per-step losses of randomly drawn samples and views)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import default_collate

TINY_DEEP3DFACE = {
    "name": "tiny_deep3dface",
    "kind": "deep3dface",
    "backbone_depth": 18,
    "backbone_width": 0.25,
    "aggregation": "mean",
    "input_size": 64,
}
TINY_DEEP3DFACE_CNET = {**TINY_DEEP3DFACE, "name": "tiny_deep3dface_cnet", "aggregation": "cnet", "cnet_width": 0.25}
TINY_UH_E2FAR = {
    "name": "tiny_uh_e2far",
    "kind": "uh_e2far",
    "backbone_depth": 18,
    "backbone_width": 0.25,
    "input_size": 64,
}


class TinyEmbedder(nn.Module):
    """A stand-in face-recognition network: (N, 3, S, S) → (N, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def export_embedder(path: Path, size: int = 112) -> Path:
    """Save a seeded :class:`TinyEmbedder` as a ``torch.export`` program with a dynamic batch."""
    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(TinyEmbedder().eval(), (torch.rand(2, 3, size, size),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def fixed_batch(trainer, count: int = 8) -> dict[str, torch.Tensor]:
    """The first ``count`` training samples, collated."""
    return default_collate([trainer.train_set[i] for i in range(count)])


def fixed_loss(trainer, batch: dict[str, torch.Tensor]) -> float:
    """The task's total loss on ``batch`` with the network in eval mode, averaged over the three views for
    single-view training (every view of every sample) or on all views at once otherwise."""
    task = trainer.task
    was_training = trainer.net.training
    trainer.net.eval()
    try:
        with torch.no_grad():
            b, v = batch["valid"].shape
            if not task.single_view:
                return float(task.loss_fn(task.train_module, batch, batch["valid"], 0).total)
            total = 0.0
            for view in range(v):
                used = torch.zeros(b, v, dtype=torch.bool)
                used[:, view] = True
                total += float(task.loss_fn(task.train_module, batch, used, 0).total) / v
            return total
    finally:
        trainer.net.train(was_training)


class RestoreThreads:
    """Context manager restoring torch's CPU thread count (the baseline configs set ``num_threads: 1``)."""

    def __enter__(self) -> RestoreThreads:
        self.threads = torch.get_num_threads()
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)
