"""``dfmvr bench infer``: per-stage and end-to-end latency per triplet of :class:`FaceReconstructor`.

Input: the model's mean face rendered into the three rig cameras (640×480) with the project's renderer; the 68
landmarks are given (their ground-truth projections), so the figures measure preprocessing (crop), masks (landmark
polygons), the network (per backend) and decoding (3DMM + poses + fused mesh), not a face detector (MediaPipe's
cost is reported separately when it is installed). For each network config (``small``, ``paper``) and backend:
p50/p95 per stage over ``--repeats`` reconstructions after a warm-up.

Backends: ``torch`` and ``onnxruntime`` on the CPU (``--threads``); with CUDA, also torch fp32 / fp16 and
onnxruntime's CUDA provider and TensorRT fp16 where they import. Weights are freshly initialised: latency does not
depend on their values. Targets (issue: inference engine): ``small`` ≤ 150 ms per triplet with onnxruntime on 2 CPU
cores; ``paper`` ≤ 5 ms per triplet on an H100.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfmvr_core.bench.common import emit, machine_info, machine_slug


def _percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3)}


def _scene(model_path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The mean face rendered into the default rig: images (RGB uint8) and ground-truth landmarks (68, 2) px."""
    from dfmvr_core.geometry.pose import MODEL_TO_OPTICAL, transform_points
    from dfmvr_core.geometry.rig import CameraRig, RigConfig
    from dfmvr_core.morphable import load_morphable_model
    from dfmvr_core.preview import PreviewOptions, render_rig_views, sample_face

    model = load_morphable_model(model_path).to(dtype=torch.float64)
    rig = CameraRig.from_config(RigConfig())
    vertices, albedo = sample_face(model, PreviewOptions())
    vertices_rig = transform_points(
        vertices[0], torch.tensor(MODEL_TO_OPTICAL, dtype=torch.float64), rig.subject_center_rig
    )
    images, landmarks = render_rig_views(model, vertices_rig, albedo, rig)
    return images, [np.asarray(lm, dtype=np.float32) for lm in landmarks]


def _measure(config: Any, images: list, landmarks: list, repeats: int) -> dict[str, Any]:
    from dfmvr_core.inference.reconstructor import FaceReconstructor

    reconstructor = FaceReconstructor(config)
    reconstructor.warmup()
    for _ in range(2):
        reconstructor.reconstruct(images, landmarks=landmarks)
    stages: dict[str, list[float]] = {}
    for _ in range(repeats):
        result = reconstructor.reconstruct(images, landmarks=landmarks)
        for key, value in result.timings_ms.items():
            stages.setdefault(key, []).append(value)
    return {"backend": reconstructor.backend_name, "stages": {k: _percentiles(v) for k, v in stages.items()}}


def _variants(device_cuda: bool) -> list[tuple[str, dict[str, Any]]]:
    variants = [("cpu_torch_fp32", {"backend": "torch"}), ("cpu_onnxruntime_fp32", {"backend": "onnxruntime"})]
    if device_cuda:
        variants += [
            ("cuda_torch_fp32", {"backend": "torch", "device": "cuda"}),
            ("cuda_torch_fp16", {"backend": "torch", "device": "cuda", "precision": "fp16"}),
            ("cuda_onnxruntime_fp32", {"backend": "onnxruntime", "device": "cuda"}),
            ("cuda_tensorrt_fp16", {"backend": "tensorrt", "device": "cuda", "precision": "fp16"}),
        ]
    return variants


def run(args: argparse.Namespace) -> dict[str, Any]:
    from dfmvr_core.errors import DfmvrError
    from dfmvr_core.inference.reconstructor_config import ReconstructorConfig

    logging.getLogger("dfmvr_core.inference.reconstructor").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    images, landmarks = _scene(Path(args.model))
    cuda = torch.cuda.is_available()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as cache:
        for name in args.configs:
            entry: dict[str, Any] = {}
            for label, overrides in _variants(cuda):
                if args.backends and overrides["backend"] not in args.backends:
                    continue
                on_cpu = overrides.get("device", "cpu") == "cpu"
                repeats = args.repeats or ({"small": 20, "paper": 5}[name] if on_cpu else 100)
                config = ReconstructorConfig(
                    morphable_model=Path(args.model),
                    network=name,
                    detector="none",
                    cache_dir=Path(cache),
                    num_threads=args.threads,
                    **overrides,
                )
                try:
                    entry[label] = _measure(config, images, landmarks, repeats)
                except (DfmvrError, ImportError, RuntimeError) as exc:
                    entry[label] = {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            if not cuda:
                entry["cuda"] = "no GPU available on this machine"
            figures[name] = entry
    targets = {}
    small_ort = figures.get("small", {}).get("cpu_onnxruntime_fp32", {})
    if "stages" in small_ort and args.threads == 2:
        targets["small_onnxruntime_2cpu_total_p50_le_150ms"] = small_ort["stages"]["total"]["p50_ms"] <= 150
    paper_trt = figures.get("paper", {}).get("cuda_tensorrt_fp16", {})
    if "stages" in paper_trt:
        targets["paper_tensorrt_network_p50_le_5ms"] = paper_trt["stages"]["network"]["p50_ms"] <= 5
    return {
        "name": "infer",
        "config": {
            "input": "ICT mean face rendered in the default rig, 3 × 640×480, ground-truth landmarks given",
            "mask_source": "landmarks",
            "weights": "freshly initialised (latency only)",
            "threads": args.threads,
        },
        "machine": machine_info("cuda" if cuda else "cpu"),
        "machine_slug": machine_slug("cuda" if cuda else "cpu"),
        "figures": figures,
        "targets_met": targets,
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("infer", help="per-stage latency of FaceReconstructor per backend and config")
    parser.add_argument("--model", required=True, help="morphable model (e.g. the ICT npz)")
    parser.add_argument("--configs", nargs="+", default=["small", "paper"], choices=("small", "paper"))
    parser.add_argument("--backends", nargs="+", default=None, choices=("torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 20 small / 5 paper on CPU)")
    parser.add_argument("--out", default=None, help="JSON file or folder (bench/results) to save the result in")
    parser.set_defaults(func=lambda a: emit(run(a), a.out))
