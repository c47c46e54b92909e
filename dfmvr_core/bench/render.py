"""``dfmvr bench render``: forward + backward time per view and peak memory of the renderer.

Scenes (224×224 face crops of the default rig's cameras, see ``_scene``):

* ``ict``: the ICT-FaceKit face (9,409 vertices, 18,460 triangles);
* ``ict_x4``: the same face subdivided once with ``trimesh.remesh.subdivide`` (73,840 triangles) — a
  BFM-sized mesh (BFM front: 70,789 triangles) with a real face's uneven triangle sizes.

Batch 1 = one face seen by the front camera; batch 48 = 16 random faces × 3 views (left, front, right).
Two steps are timed:

* ``rasterizer``: rasterize + interpolate 3 channels (albedo) + backward of the image sum to the vertex
  positions and the albedo — the figure the renderer's speed target is about;
* ``face_renderer``: :class:`~dfmvr_core.render.face_renderer.FaceRenderer` (normals, SH shading, part
  labels, landmarks) + backward of the RGB sum.

Timing: wall clock after one warm-up step, median over the repeats, divided by the batch (ms per view).
Peak memory: each case runs in a fresh child process; the figure is the growth of its maximum resident set
size (``ru_maxrss``) over the steps (CPU), or ``torch.cuda.max_memory_allocated`` (CUDA).
Targets (issue: differentiable renderer): CPU ≤ 15 ms per view fwd+bwd at 70k triangles with 2 threads;
CUDA ≤ 0.5 ms per view; peak < 2 GB for 48 views on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import trimesh

from dfmvr_core.bench.common import emit, machine_info, machine_slug
from dfmvr_core.geometry import MODEL_TO_OPTICAL, CameraRig, RigConfig, crop_transform_from_box, intrinsics_in_crop
from dfmvr_core.morphable import MorphableModel, ambient_sh, load_morphable_model
from dfmvr_core.render import interpolate, rasterize
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer

IMAGE = 224
CROP_SIDE_PX = 220.0  # the face (≈ 154 px wide at 0.7 m, fx 600) fills ≈ 70 % of the crop
DEFAULT_MODEL = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ict_facekit" / "ict_face_full_fp32.npz"
)


def _subdivided(model: MorphableModel, vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Midpoint-subdivide each mesh of ``vertices`` (B, N, 3) once: (B, N', 3) and faces (4F, 3)."""
    faces = model.triangles.numpy()
    out = []
    for v in vertices:
        new_v, new_f = trimesh.remesh.subdivide(v.numpy(), faces)
        out.append(torch.from_numpy(new_v).to(vertices.dtype))
    return torch.stack(out), torch.from_numpy(new_f).long()


def _scene(model: MorphableModel, subdivide: bool, faces_count: int, views: int, seed: int = 0) -> dict[str, Any]:
    """Camera-frame vertices (B·V, N, 3), intrinsics (B·V, 3, 3), faces, albedo for a batch of faces."""
    g = torch.Generator().manual_seed(seed)
    sizes = model.coefficient_sizes
    identity = torch.randn(faces_count, sizes.identity, generator=g) * 0.7
    identity[0] = 0
    vertices = model.decode_shape(identity, torch.zeros(faces_count, sizes.expression))
    albedo = model.decode_albedo(torch.randn(faces_count, sizes.albedo, generator=g) * 0.5)
    faces = model.triangles
    if subdivide:
        vertices, faces = _subdivided(model, vertices)
        albedo, _ = _subdivided(model, albedo)
    rig = CameraRig.from_config(RigConfig())
    names = ["front"] if views == 1 else list(rig.names)
    R_rig_face = torch.tensor(MODEL_TO_OPTICAL, dtype=torch.float64)
    cam_vertices, Ks = [], []
    for b in range(faces_count):
        for name in names:
            T = rig.T_camera_from_rig(name)
            R = T[:3, :3] @ R_rig_face
            t = T[:3, :3] @ rig.subject_center_rig + T[:3, 3]
            cam_vertices.append((vertices[b].double() @ R.T + t).float())
            K = rig.intrinsics[name].matrix(dtype=torch.float64)
            centre = (K @ (t / t[2]))[:2]
            Ks.append(intrinsics_in_crop(K, crop_transform_from_box(centre, CROP_SIDE_PX, out_size=IMAGE)).float())
    views_total = faces_count * len(names)
    return {
        "vertices": torch.stack(cam_vertices),
        "K": torch.stack(Ks),
        "faces": faces,
        "albedo": albedo.repeat_interleave(len(names), dim=0).float(),
        "per_face_views": len(names),
        "batch": views_total,
    }


def _max_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """One benchmark case in this process (called in a child)."""
    device = torch.device(case["device"])
    torch.set_num_threads(case["threads"])
    model = load_morphable_model(case["model"])
    scene = _scene(model, case["subdivide"], case["faces"], case["views"])
    vertices, K, faces, albedo = (scene[k].to(device) for k in ("vertices", "K", "faces", "albedo"))
    batch = scene["batch"]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    if case["step"] == "rasterizer":

        def step() -> None:
            v = vertices.clone().requires_grad_(True)
            a = albedo.clone().requires_grad_(True)
            fragments = rasterize(v, K, faces, IMAGE, IMAGE, cull_backfaces=True)
            interpolate(a, fragments, faces).sum().backward()

    else:
        render_model = model if not case["subdivide"] else None
        if render_model is None:  # the renderer needs per-vertex labels: build a subdivided model
            return {"skipped": "face_renderer is benchmarked on the ICT topology only"}
        renderer = FaceRenderer(render_model.to(device), FaceRenderConfig(height=IMAGE, width=IMAGE))
        per_face = scene["per_face_views"]
        sh = ambient_sh(batch, device=device).view(batch // per_face, per_face, 27)

        def step() -> None:
            v = vertices.view(batch // per_face, per_face, *vertices.shape[1:]).clone().requires_grad_(True)
            a = albedo[::per_face].clone().requires_grad_(True)
            k = K.view(batch // per_face, per_face, 3, 3)
            renderer.render(v, k, a, sh).rgb.sum().backward()

    rss0 = _max_rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        mem0 = torch.cuda.memory_allocated(device)
    step()
    sync()
    times = []
    for _ in range(case["repeats"]):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        coverage = float(rasterize(vertices, K, faces, IMAGE, IMAGE, cull_backfaces=True).mask.float().mean())
    result = {
        "batch_views": batch,
        "triangles": int(faces.shape[0]),
        "vertices": int(vertices.shape[1]),
        "coverage_fraction": round(coverage, 3),
        "fwd_bwd_ms_per_view": round(1e3 * statistics.median(times) / batch, 3),
        "fwd_bwd_ms_per_view_min": round(1e3 * min(times) / batch, 3),
        "repeats": case["repeats"],
    }
    if device.type == "cuda":
        result["peak_gpu_mem_mib"] = round((torch.cuda.max_memory_allocated(device) - mem0) / 2**20, 1)
    else:
        result["peak_rss_growth_mib"] = round((_max_rss_bytes() - rss0) / 2**20, 1)
    return result


def _run_in_child(case: dict[str, Any]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, "-m", "dfmvr_core.bench.render", "--child", json.dumps(case)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_avg_1min_before"] = round(load, 2)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = str(args.model)
    load_morphable_model(model)  # fail early, with a clear message, before spawning children
    scenes = {"ict_18k": False, "ict_x4_74k": True}
    batches = {"batch1": (1, 1), "batch48": (16, 3)}
    results: dict[str, Any] = {}
    devices = [("cpu", t) for t in args.threads] + ([("cuda", args.threads[0])] if torch.cuda.is_available() else [])
    for device, threads in devices:
        key = f"cpu_{threads}_threads" if device == "cpu" else "cuda"
        results[key] = {}
        for step in args.steps:
            for scene, subdivide in scenes.items():
                if step == "face_renderer" and subdivide:
                    continue
                for batch_name, (faces_count, views) in batches.items():
                    if args.quick and batch_name != "batch1":
                        continue
                    repeats = args.repeats if faces_count == 1 else max(2, args.repeats // 3)
                    case = {
                        "device": device,
                        "threads": threads,
                        "model": model,
                        "subdivide": subdivide,
                        "faces": faces_count,
                        "views": views,
                        "step": step,
                        "repeats": repeats,
                    }
                    label = f"{step}/{scene}/{batch_name}"
                    results[key][label] = _run_in_child(case)
                    print(f"{key} {label}: {results[key][label]}", file=sys.stderr)
    if not torch.cuda.is_available():
        results["cuda"] = "no GPU available on this machine"
    cpu2 = results.get("cpu_2_threads", {})
    targets = {}
    if "rasterizer/ict_x4_74k/batch1" in cpu2:
        targets["cpu_2_threads_70k_le_15ms_per_view"] = (
            cpu2["rasterizer/ict_x4_74k/batch1"]["fwd_bwd_ms_per_view"] <= 15
        )
    if "rasterizer/ict_x4_74k/batch48" in cpu2:
        targets["cpu_peak_48_views_lt_2GB"] = cpu2["rasterizer/ict_x4_74k/batch48"]["peak_rss_growth_mib"] < 2048
    return {
        "name": "render",
        "config": {
            "image": [IMAGE, IMAGE],
            "crop_side_px_in_640x480_camera": CROP_SIDE_PX,
            "rig": "default (0.7 m, ±45°)",
            "model": model,
            "cull_backfaces": True,
            "attribute_channels": 3,
            "batch48": "16 random faces x 3 views",
            "steps": args.steps,
            "timing": "median wall clock over the repeats after 1 warm-up / batch",
            "memory": "fresh child process per case; growth of ru_maxrss over the steps (CPU), "
            "torch.cuda.max_memory_allocated (CUDA)",
        },
        "machine": machine_info(),
        "machine_slug": machine_slug(),
        "results": results,
        "targets_met": targets,
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="renderer forward+backward per view, ICT 18k and 74k triangles")
    add_arguments(parser)
    parser.set_defaults(func=lambda a: emit(run(a), a.out))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="morphable model (default: shared ICT npz)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", nargs="+", default=["rasterizer", "face_renderer"],
                        choices=["rasterizer", "face_renderer"])  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="batch 1 only")
    parser.add_argument("--out", default=None, help="JSON file or folder (bench/results) to save the result in")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(run_case(json.loads(sys.argv[2]))))
