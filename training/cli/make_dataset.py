"""``dfmvr make-dataset``: render a synthetic multi-view face dataset (sharded, resumable)."""

from __future__ import annotations

import argparse
import dataclasses

from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.synthesis import SceneConfig, load_scene_config


def _run(args: argparse.Namespace) -> int:
    from dfmvr_training.data.synthetic import make_dataset

    scene, crop = load_scene_config(args.config) if args.config else (SceneConfig(), CropCamera())
    if args.side_yaw is not None:
        scene = dataclasses.replace(scene, side_yaw=args.side_yaw)
    summary = make_dataset(
        args.out,
        args.model,
        count=args.count,
        seed=args.seed,
        split=args.split,
        shard_size=args.shard_size,
        scene_config=scene,
        crop=crop,
        progress=not args.no_progress,
        batch_size=args.batch_size,
        device=args.device,
    )
    rate = summary.samples_per_second
    print(f"dataset      {summary.out_dir} ({summary.split}, {'complete' if summary.complete else 'incomplete'})")
    print(f"samples      {summary.samples_total} total, {summary.samples_written} written this run")
    print(f"shards       {summary.shards_total} total, {summary.shards_written} written this run")
    print(
        f"time         {summary.seconds:.1f} s, {rate:.2f} samples/s"
        if summary.samples_written
        else f"time         {summary.seconds:.1f} s (nothing left to write)"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr make-dataset``."""
    parser = subparsers.add_parser(
        "make-dataset",
        help="render a synthetic multi-view face dataset",
        description="Render random faces of a morphable model into the camera rig's face crops, in shards with a "
        "manifest. Rerunning with the same arguments resumes; other arguments are refused.",
    )
    parser.add_argument("--model", required=True, help="morphable model (.npz, BFM .mat or ICT FaceXModel folder)")
    parser.add_argument("--out", required=True, help="dataset folder (created)")
    parser.add_argument("--count", type=int, required=True, help="number of samples")
    parser.add_argument("--seed", type=int, required=True, help="run seed (>= 0)")
    parser.add_argument(
        "--split",
        choices=("train", "benchmark"),
        default="train",
        help="train or benchmark (disjoint seed streams; default train)",
    )
    parser.add_argument("--shard-size", type=int, default=256, help="samples per shard (default 256)")
    parser.add_argument("--config", help="YAML with a 'scene:' section (SceneConfig) and optional 'crop:' section")
    parser.add_argument(
        "--side-yaw",
        choices=("fixed", "random"),
        help="overrides the config: side cameras at the rig's azimuths (fixed) or random |azimuth| (random)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="scenes per renderer call (default 8)")
    parser.add_argument("--device", default="cpu", help="torch device to render on (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)
