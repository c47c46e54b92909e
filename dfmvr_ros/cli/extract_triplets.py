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

"""``dfmvr extract-triplets``: write the synchronized camera triplets of a rosbag2 as a folder of images.

``dfmvr extract-triplets BAG -o DIR [--config config/dfmvr.yaml] [--every N] [--max N] [--format png|jpg]
[--complete-only] [--no-camera-info] [--quiet]``

The folder (``DIR/<camera>/<stamp_ns>.png``, ``DIR/camera_info/<camera>.yaml``) is what
``dfmvr_training.data.FolderTripletDataset`` reads; see :mod:`dfmvr_ros.extract`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from dfmvr_ros.extract import extract_triplets

    summary = extract_triplets(
        args.bag,
        args.output,
        config=args.config,
        every=args.every,
        max_sets=args.max,
        image_format=args.format,
        complete_only=args.complete_only,
        camera_info=not args.no_camera_info,
        progress=not args.quiet,
    )
    drops = {cam: d.total for cam, d in summary.sync.drops.items() if d.total}
    print(f"bag          {summary.bag} ({summary.messages} messages read)")
    for cam in summary.cameras:
        info = summary.info_topics.get(cam, "-")
        print(f"  {cam:<10} {summary.image_topics[cam]} + {info}: {summary.frames_written[cam]} images written")
    partial = summary.sets_matched - summary.sets_complete
    print(f"sets         {summary.sets_matched} matched ({summary.sets_complete} complete, {partial} partial)")
    print(f"written      {summary.sets_written} sets to {summary.out_dir} in {summary.seconds:.1f} s")
    print(f"dropped      {drops or 'none'} (synchronizer: max skew {summary.sync.max_skew_ns / 1e6:.1f} ms)")
    for note in summary.warnings:
        print(f"warning      {note}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr extract-triplets``."""
    parser = subparsers.add_parser(
        "extract-triplets",
        help="write a bag's synchronized camera triplets as images",
        description="Read the rig's camera topics from a rosbag2 (no ROS needed), synchronize them as dfmvr_node "
        "does and write DIR/<camera>/<stamp_ns>.<png|jpg> per matched set plus DIR/camera_info/<camera>.yaml: a "
        "folder for dfmvr_training.data.FolderTripletDataset.",
    )
    parser.add_argument("bag", type=Path, help="rosbag2 directory (or .db3/.mcap file)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--config", type=Path, default=None, help="node parameter file for topics and sync (default: node defaults)"
    )
    parser.add_argument("--every", type=int, default=1, help="write every N-th matched set (default 1)")
    parser.add_argument("--max", type=int, default=None, help="stop after writing N sets")
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="image format (default png)")
    parser.add_argument("--complete-only", action="store_true", help="skip sets with a camera missing")
    parser.add_argument(
        "--no-camera-info", action="store_true", help="do not require CameraInfo topics (no intrinsics written)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)
