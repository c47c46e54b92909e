"""``dfmvr reconstruct``: the offline main job: three images in, mesh + pose + coefficients + overlays out.

``dfmvr reconstruct --left L --front F --right R --model MODEL [--checkpoint C] [--camera-info rig.yaml] -o OUT``
writes, each file atomically (temporary file, then rename):

* ``mesh.ply`` / ``mesh.obj`` — the face in the rig frame (the reference camera's optical frame), metres;
* ``pose.json`` — the fused head pose ``T_rig_from_model`` (4×4, translation, quaternion xyzw) and, per camera, the
  pose in that camera's optical frame and the view's own prediction;
* ``coefficients.json`` — identity / expression / albedo / lighting / pose, with the model's sizes;
* ``overlay_<camera>.png`` (mesh projected on each input) and ``overlays.png`` side by side;
* ``report.json`` — valid views and why not, timings per stage, backend, inputs.

A view may be left out (``--right`` omitted) or have no detectable face: it is reported invalid and the others are
used. Intrinsics and extrinsics come from the rig YAML (``--camera-info``; default: the built-in rig); each image must
have that camera's size. Faces are found by MediaPipe (``--detector mediapipe``, the ``landmarks`` extra) or given
as landmarks/ROIs in a JSON file (``--faces``: ``{"left": {"landmarks": [[u, v] × 68]} | {"roi": [x0, y0, x1, y1]}}``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from dfmvr_core.errors import ConfigError, ShapeError


def _view_inputs(path: Path | None, cameras: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """``--faces`` JSON → per camera (landmarks (68, 2) | None, roi (4,) | None)."""
    landmarks: list[Any] = [None] * len(cameras)
    rois: list[Any] = [None] * len(cameras)
    if path is None:
        return landmarks, rois
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--faces: file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--faces: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) - set(cameras):
        raise ConfigError(f"--faces: expected an object keyed by camera names {list(cameras)}, got {path}")
    for i, name in enumerate(cameras):
        entry = data.get(name)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not ({"landmarks", "roi"} & set(entry)):
            raise ConfigError(
                f"--faces: {name}: expected {{'landmarks': [[u, v] x 68]}} or {{'roi': [x0, y0, x1, y1]}}"
            )
        if "landmarks" in entry:
            lm = np.asarray(entry["landmarks"], dtype=np.float64)
            if lm.shape != (68, 2):
                raise ShapeError(f"--faces: {name}.landmarks: expected 68 [u, v] pairs, got shape {lm.shape}")
            landmarks[i] = lm.astype(np.float32)
        if "roi" in entry:
            roi = np.asarray(entry["roi"], dtype=np.float64)
            if roi.shape != (4,):
                raise ShapeError(f"--faces: {name}.roi: expected [x0, y0, x1, y1], got shape {roi.shape}")
            rois[i] = roi
    return landmarks, rois


def _build_config(args: argparse.Namespace) -> Any:
    """``--config`` YAML (section ``reconstructor``) with the flags given on the command line on top."""
    import yaml

    from dfmvr_core.inference.default_model import DEFAULT_CHECKPOINT
    from dfmvr_core.inference.reconstructor_config import load_reconstructor_config

    overrides = {
        "morphable_model": args.model,
        "network": args.network,
        "checkpoint": args.checkpoint,
        "backend": args.backend,
        "device": args.device,
        "precision": args.precision,
        "onnx_path": args.onnx,
        "detector": args.detector,
        "rig": args.camera_info,
        "mask_source": args.mask_source,
        "num_threads": args.threads,
    }
    data: dict[str, Any] = {}
    if args.config is not None:
        try:
            loaded = yaml.safe_load(Path(args.config).read_text())
        except FileNotFoundError:
            raise ConfigError(f"--config: file not found: {args.config}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config: {args.config} is not valid YAML ({exc})") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("reconstructor"), dict):
            raise ConfigError(f"--config: {args.config}: expected a top-level 'reconstructor' mapping")
        data.update(loaded["reconstructor"])
    data.update({k: str(v) if isinstance(v, Path) else v for k, v in overrides.items() if v is not None})
    data.setdefault("checkpoint", DEFAULT_CHECKPOINT)  # out of the box: the embedded trained model
    if data["checkpoint"] == "":
        data["checkpoint"] = None  # explicitly untrained weights (tests; the reconstructor warns)
    if "morphable_model" not in data:
        raise ConfigError("--model: required (the morphable model the network was trained for), or --config")
    return load_reconstructor_config(data)


def _run(args: argparse.Namespace) -> int:
    from dfmvr_core.atomic_io import write_json_atomic
    from dfmvr_core.inference.reconstructor import FaceReconstructor
    from dfmvr_core.inference.result_files import write_reconstruction
    from dfmvr_core.preprocess import load_image

    config = _build_config(args)
    reconstructor = FaceReconstructor(config)
    paths = {"left": args.left, "front": args.front, "right": args.right}
    unknown = [n for n in reconstructor.camera_names if n not in paths]
    if unknown:
        raise ConfigError(f"--camera-info: this command takes cameras left/front/right, the rig has {unknown}")
    images = [load_image(paths[n]) if paths[n] is not None else None for n in reconstructor.camera_names]
    if all(image is None for image in images):
        raise ConfigError("--left/--front/--right: give at least one image")
    landmarks, rois = _view_inputs(args.faces, reconstructor.camera_names)
    result = reconstructor.reconstruct(images, None, rois, landmarks)
    written = write_reconstruction(
        args.output,
        result,
        images,
        faces=reconstructor.faces,
        extra={
            "inputs": {n: (str(p) if p is not None else None) for n, p in paths.items()},
            "backend": reconstructor.backend_name,
            "network": config.network,
            "checkpoint": str(config.checkpoint) if config.checkpoint else None,
        },
    )
    for line in _summary(result, reconstructor.backend_name):
        print(line)
    write_json_atomic(Path(args.output) / "files.json", {"written": [str(p) for p in written]})
    return 0 if result.ok else 1


def _summary(result: Any, backend: str) -> list[str]:
    views = ", ".join(
        f"{n}: {'ok' if v else 'invalid (' + str(r) + ')'}"
        for n, v, r in zip(result.camera_names, result.valid, result.reasons, strict=True)
    )
    lines = [f"views: {views}", f"backend: {backend}"]
    if result.ok:
        t = result.T_rig_from_model[:3, 3]
        lines.append(f"head position (rig frame): x={t[0]:+.3f} y={t[1]:+.3f} z={t[2]:+.3f} m")
    else:
        lines.append("no face reconstructed: no valid view")
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
    return lines


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr reconstruct``."""
    p = subparsers.add_parser(
        "reconstruct",
        help="reconstruct a face from three views (left, front, right)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--left", type=Path, help="left camera image (PNG/JPEG)")
    p.add_argument("--front", type=Path, help="front camera image")
    p.add_argument("--right", type=Path, help="right camera image")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--model", type=Path, help="morphable model (.npz, BFM .mat, ICT folder)")
    p.add_argument(
        "--checkpoint",
        help="trained weights (.pt); omitted: 'default', the embedded model (or --config's); '' runs untrained weights",
    )
    p.add_argument("--network", help="network config: small | paper | YAML (default small)")
    p.add_argument("--camera-info", type=Path, help="rig YAML with intrinsics and extrinsics (default: built-in rig)")
    p.add_argument("--config", type=Path, help="reconstructor YAML (section 'reconstructor'); flags override it")
    p.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"))
    p.add_argument("--device", help="cpu | cuda | cuda:N")
    p.add_argument("--precision", choices=("fp32", "fp16", "tf32"))
    p.add_argument("--onnx", type=Path, help="exported network (onnxruntime/tensorrt backends)")
    p.add_argument("--detector", choices=("mediapipe", "none"))
    p.add_argument("--mask-source", choices=("landmarks", "parser", "none"))
    p.add_argument("--faces", type=Path, help="JSON with per-camera landmarks or ROIs (skips detection)")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.set_defaults(func=_run)
