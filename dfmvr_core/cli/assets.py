"""``dfmvr assets``: inspect, convert and preview morphable-model assets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dfmvr_core.morphable import FacePart, load_morphable_model
from dfmvr_core.morphable.ict import convert_ict_release
from dfmvr_core.morphable.npz_format import model_from_arrays, model_to_arrays, save_npz


def model_summary(path: str | Path, bfm_units: str = "dm") -> dict:
    """Facts about a morphable model file, as printed by ``dfmvr assets info`` (lengths in metres)."""
    model = load_morphable_model(path, bfm_units=bfm_units)
    lo, hi = model.bounding_box()
    lm = model.landmarks(model.mean_shape[None])[0].numpy()
    labels = model.part_labels.numpy()
    sizes = model.coefficient_sizes
    return {
        "file": str(path),
        "name": model.name,
        "vertices": model.num_vertices,
        "triangles": model.num_triangles,
        "connected_components": model.connected_components(),
        "components": {
            "identity": sizes.identity,
            "expression": sizes.expression,
            "albedo": sizes.albedo,
            "lighting": sizes.lighting,
            "pose_per_view": sizes.pose_per_view,
        },
        "expression_kind": model.expression_kind,
        "bounding_box_m": {
            "min": np.round(lo, 5).tolist(),
            "max": np.round(hi, 5).tolist(),
            "size": np.round(hi - lo, 5).tolist(),
        },
        "face_width_m": round(float(hi[0] - lo[0]), 4),
        "jaw_width_m": round(float(np.linalg.norm(lm[16] - lm[0])), 4),
        "part_vertices": {part.name.lower(): int((labels == part).sum()) for part in FacePart},
        "fingerprint": model.fingerprint(),
    }


def _info(args: argparse.Namespace) -> int:
    summary = model_summary(args.model, args.bfm_units)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    size = summary["bounding_box_m"]["size"]
    comps = summary["components"]
    print(f"model        {summary['name']}  ({summary['file']})")
    print(f"vertices     {summary['vertices']}")
    print(f"triangles    {summary['triangles']}  ({summary['connected_components']} connected component(s))")
    print(
        f"components   identity {comps['identity']}, expression {comps['expression']} ({summary['expression_kind']}), "
        f"albedo {comps['albedo']}, lighting {comps['lighting']}, pose/view {comps['pose_per_view']}"
    )
    print(f"bounding box {size[0]:.3f} x {size[1]:.3f} x {size[2]:.3f} m (width x height x depth)")
    print(
        f"face width   {summary['face_width_m']:.3f} m overall, "
        f"{summary['jaw_width_m']:.3f} m between jaw landmarks 0 and 16"
    )
    print("parts        " + ", ".join(f"{k} {v}" for k, v in summary["part_vertices"].items()))
    print(f"fingerprint  {summary['fingerprint']}")
    return 0


def _convert_ict(args: argparse.Namespace) -> int:
    arrays = convert_ict_release(args.folder, allow_partial=args.allow_partial, progress=not args.quiet)
    model = model_from_arrays(arrays, str(args.folder), name="ict-facekit")  # validates, builds parts/albedo
    out = model_to_arrays(model)
    out["narrow_face_vertex_count"] = arrays["narrow_face_vertex_count"]
    save_npz(args.output, out)
    sizes = model.coefficient_sizes
    print(
        f"wrote {args.output}: {model.num_vertices} vertices, {model.num_triangles} triangles, "
        f"{sizes.identity} identity, {sizes.expression} expression components (metres)"
    )
    return 0


def _preview(args: argparse.Namespace) -> int:
    from dfmvr_core.preview import PreviewOptions, write_rig_preview

    options = PreviewOptions(seed=args.seed, random_face=args.random)
    written = write_rig_preview(args.model, args.rig, args.output, options)
    for path in written:
        print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr assets`` and its subcommands."""
    assets = subparsers.add_parser("assets", help="inspect, convert and preview morphable models")
    sub = assets.add_subparsers(dest="assets_command", metavar="<assets-command>", required=True)

    info = sub.add_parser("info", help="vertex/triangle counts, components, bounding box in metres")
    info.add_argument("model", type=Path, help=".npz, BFM_model_front.mat or ICT FaceXModel folder")
    info.add_argument("--bfm-units", default="dm", help="length unit of a BFM .mat (default dm, Deep3DFaceRecon's)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=_info)

    convert = sub.add_parser("convert-ict", help="convert ICT-FaceKit's FaceXModel release folder to a model .npz")
    convert.add_argument("folder", type=Path, help="ICT-FaceKit FaceXModel folder (OBJs + vertex_indices.json)")
    convert.add_argument("-o", "--output", type=Path, required=True, help="output .npz (metres, with albedo and parts)")
    convert.add_argument("--allow-partial", action="store_true", help="convert a subset of the release's OBJs")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    convert.set_defaults(func=_convert_ict)

    preview = sub.add_parser("preview", help="pose the model in the camera rig; write meshes, poses and a PNG")
    preview.add_argument("model", type=Path)
    preview.add_argument("--rig", type=Path, default=None, help="rig YAML (default: built-in left/front/right rig)")
    preview.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    preview.add_argument("--random", action="store_true", help="a random identity/expression instead of the mean face")
    preview.add_argument("--seed", type=int, default=0)
    preview.set_defaults(func=_preview)
