"""The training-state file (``training_state.pt``): everything ``--resume`` needs to continue a run exactly.

One ``torch.save`` dict, loadable with ``torch.load(weights_only=True)`` (only tensors, numbers, strings, None,
lists, tuples and dicts; numpy arrays are stored as tensors), so a resume never runs code from the file::

    format            "dfmvr-training-state"
    format_version    1
    dfmvr_version     the dfmvr that wrote it
    mode              "reconstruction" | "parser"
    step              optimiser steps done
    world_size        processes of the run (the data order depends on it)
    config            the TrainConfig as a plain dict (train_config_to_dict)
    network           what the weights are: the NetworkConfig dict (reconstruction) or {"num_classes": C} (parser)
    model_fingerprint MorphableModel.fingerprint() of the run's model
    model             the network's state_dict (CPU tensors; no DDP "module." prefix)
    optimizer         Adam state_dict
    scheduler         LR scheduler state_dict
    scaler            GradScaler state_dict ({} when not used)
    rng               one entry per rank: {"python": random.getstate(), "numpy": {...}, "torch": ByteTensor,
                      "cuda": [ByteTensor, ...], "view_dropout": ByteTensor}
    extra             trainer bookkeeping (e.g. the mean-face baseline of the benchmark)

Written atomically (:func:`dfmvr_core.atomic_io.atomic_path`). Read by :func:`read_training_state`, which raises
:class:`~dfmvr_core.errors.ModelFileError` naming the file for anything missing, truncated, corrupt or of another
format; the trainer then checks that the state fits the run.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfmvr_core import __version__
from dfmvr_core.atomic_io import atomic_path
from dfmvr_core.errors import ModelFileError
from dfmvr_core.validation import load_weights_only

__all__ = [
    "TRAINING_STATE_FORMAT",
    "TRAINING_STATE_VERSION",
    "capture_rng",
    "read_training_state",
    "restore_rng",
    "write_training_state",
]

TRAINING_STATE_FORMAT = "dfmvr-training-state"
TRAINING_STATE_VERSION = 1
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "mode": str,
    "step": int,
    "world_size": int,
    "config": Mapping,
    "network": Mapping,
    "model": Mapping,
    "optimizer": Mapping,
    "scheduler": Mapping,
    "scaler": Mapping,
    "rng": list,
    "extra": Mapping,
}


def capture_rng(view_dropout: torch.Generator | None = None) -> dict[str, Any]:
    """This process's random states (python, numpy, torch CPU, every CUDA device, the view-dropout generator)."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 (the global state is what we save)
    numpy_state = {
        "bit_generator": str(np_state["bit_generator"]),
        "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
        "pos": int(np_state["state"]["pos"]),
        "has_gauss": int(np_state["has_gauss"]),
        "gauss": float(np_state["gauss"]),
    }
    return {
        "python": random.getstate(),
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "view_dropout": view_dropout.get_state() if view_dropout is not None else None,
    }


def restore_rng(state: Mapping[str, Any], view_dropout: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng` (CUDA states only where devices exist)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": int(n["pos"])},
            "has_gauss": int(n["has_gauss"]),
            "gauss": float(n["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    if view_dropout is not None and state.get("view_dropout") is not None:
        view_dropout.set_state(state["view_dropout"])


def write_training_state(path: str | Path, **fields: Any) -> Path:
    """Write a training-state file atomically (fields as in the module docstring, format keys added here)."""
    payload = {"format": TRAINING_STATE_FORMAT, "format_version": TRAINING_STATE_VERSION, "dfmvr_version": __version__}
    payload.update(fields)
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise ValueError(f"write_training_state: missing fields {missing}")
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check the layout of a training-state file (weights-only load).

    Raises:
        ModelFileError: missing, truncated or corrupt file, another format or version, a missing or mistyped entry.
    """
    path = Path(path)
    payload = load_weights_only(path, "training-state file", map_location)
    if not isinstance(payload, Mapping) or payload.get("format") != TRAINING_STATE_FORMAT:
        what = f"format {payload.get('format')!r}" if isinstance(payload, Mapping) else type(payload).__name__
        raise ModelFileError(f"{path}: not a dfmvr training-state file ({what}; expected {TRAINING_STATE_FORMAT!r})")
    for key, kind in _REQUIRED.items():
        if key not in payload:
            raise ModelFileError(f"{path}: training state lacks {key!r}")
        if not isinstance(payload[key], kind) or (kind is int and isinstance(payload[key], bool)):
            raise ModelFileError(f"{path}: training state entry {key!r} is a {type(payload[key]).__name__}")
    if payload["format_version"] != TRAINING_STATE_VERSION:
        raise ModelFileError(
            f"{path}: training-state format version {payload['format_version']}, this dfmvr reads "
            f"{TRAINING_STATE_VERSION}"
        )
    if payload["step"] < 0 or payload["world_size"] < 1:
        raise ModelFileError(f"{path}: invalid step {payload['step']} or world_size {payload['world_size']}")
    bad = [k for k, v in payload["model"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelFileError(f"{path}: model state entries that are not tensors: {bad[:5]}")
    return dict(payload)
