"""Shared plumbing of the benchmarks: machine description, timing statistics and result files."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dfmvr_core.atomic_io import write_json_atomic


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What the figures were measured on: CPU count, torch threads and version, platform, GPU name."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    device = torch.device(device)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def machine_slug(device: torch.device | str = "cpu") -> str:
    """Short file-name tag of the machine: ``cpu<N>`` or the GPU's name (``nvidia-h100-80gb-hbm3``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu{torch.get_num_threads()}"


def time_call(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: torch.device | str = "cpu") -> dict:
    """Wall-clock statistics of ``fn()`` in milliseconds (synchronising CUDA around each call).

    Returns:
        dict with ``p50_ms``, ``p95_ms``, ``mean_ms``, ``min_ms`` and ``repeats``.
    """
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(p95, 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "min_ms": round(samples[0], 3),
        "repeats": repeats,
    }


def emit(result: dict[str, Any], out: str | Path | None) -> None:
    """Print ``result`` as JSON and, when ``out`` is given, write it there atomically.

    ``out`` may be a ``.json`` path or a folder (then ``<folder>/<name>-<machine>.json``).
    """
    print(json.dumps(result, indent=2))
    if out is None:
        return
    out = Path(out)
    if out.suffix != ".json":
        out = out / f"{result['name']}-{result['machine_slug']}.json"
    write_json_atomic(out, result)
    print(f"saved {out}")
