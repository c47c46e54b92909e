# Copyright 2026 dfmvr maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""``dfmvr make-bag``: write a synthetic three-camera rosbag2 of one moving face, with ground truth.

``dfmvr make-bag -o BAG --model MODEL [--frames 30] [--fps 15] [--seed 0] [--jitter-ms 2] [--drop CAMERA:FRAME ...]
[--compressed] [--distro humble|jazzy] [--storage sqlite3|mcap] [--size 640x480] [--config config/dfmvr.yaml]``

Topics and frame ids come from the node's parameters (``--config``, default: the node's defaults), so
``dfmvr replay`` and ``dfmvr_node`` read the bag as it is; see :mod:`dfmvr_ros.make_bag` for what is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from dfmvr_core.geometry.rig import load_rig_config
    from dfmvr_ros.make_bag import MakeBagOptions, make_bag, parse_drop, parse_size
    from dfmvr_ros.replay_config import node_config_from

    config = node_config_from(
        args.config,
        {"reconstructor.morphable_model": args.model, "reconstructor.rig": args.rig},
        parameters=args.param,
    )
    options = MakeBagOptions(
        frames=args.frames,
        fps=args.fps,
        seed=args.seed,
        jitter_ms=args.jitter_ms,
        drops=tuple(parse_drop(d) for d in args.drop),
        compressed=args.compressed,
        jpeg_quality=args.jpeg_quality,
        distro=args.distro,
        storage=args.storage,
        size=parse_size(args.size),
        batch=args.batch,
        ground_truth_landmarks=not args.no_landmarks,
    )
    rig = load_rig_config(args.rig) if args.rig is not None else None
    result = make_bag(
        args.output,
        config.reconstructor.morphable_model,
        config,
        options,
        rig=rig,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        width, height = result.image_size
        cameras = ", ".join(result.cameras)
        print(
            f"wrote {result.path}: {result.frames} instants x {len(result.cameras)} cameras ({cameras}), "
            f"{width}x{height}, {sum(result.topic_counts.values())} messages, {result.bytes / 1e6:.1f} MB"
        )
        dropped = ", ".join(f"{c}:{f}" for c, f in result.dropped) or "none"
        print(f"dropped frames: {dropped}; {options.distro} {options.storage}")
        print(
            f"time {result.wall_s:.1f} s: {result.frames_per_s:.2f} instants/s "
            f"(rendering {result.render_s:.1f} s = {result.frames / max(result.render_s, 1e-9):.2f} instants/s)"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr make-bag``."""
    p = subparsers.add_parser(
        "make-bag",
        help="write a synthetic three-camera rosbag2 (rendered moving face + ground truth)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="bag directory to create")
    p.add_argument(
        "--model", type=Path, help="morphable model (.npz, BFM .mat, ICT folder); or reconstructor.* in --config"
    )
    p.add_argument("--config", type=Path, help="node parameter file (config/dfmvr.yaml); default: the node's defaults")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="node parameter override")
    p.add_argument("--rig", type=Path, help="rig YAML (extrinsics, intrinsics); default: reconstructor.rig or built-in")
    p.add_argument("--frames", type=int, default=30, help="capture instants (default 30)")
    p.add_argument("--fps", type=float, default=15.0, help="instants per second (default 15)")
    p.add_argument("--seed", type=int, default=0, help="subject, motion and jitter seed (default 0)")
    p.add_argument("--jitter-ms", type=float, default=2.0, help="header-stamp jitter, uniform ±ms (default 2)")
    p.add_argument("--drop", action="append", default=[], metavar="CAMERA:FRAME", help="leave out a frame (0-based)")
    p.add_argument("--compressed", action="store_true", help="JPEG CompressedImage on <ns>/image_raw/compressed")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality with --compressed (default 90)")
    p.add_argument("--distro", choices=("humble", "jazzy"), default="humble", help="metadata v5 (humble) or v9")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    p.add_argument("--size", default="640x480", help="image size WIDTHxHEIGHT (rig intrinsics scaled; default 640x480)")
    p.add_argument("--batch", type=int, default=4, help="instants rendered per renderer call (default 4)")
    p.add_argument("--no-landmarks", action="store_true", help="do not write /ground_truth/landmarks/<camera>")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
