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

"""``dfmvr replay``: replay a rosbag2 through the reconstruction pipeline without ROS.

``dfmvr replay BAG -o OUT [--config config/dfmvr.yaml] [--model M] [--checkpoint C] [--backend B] [--detector D]
[--gt-landmarks] [--max-sets N] [--overlay-every K] [--distro humble|jazzy]``

Writes ``OUT/output_bag/`` (the node's output topics), ``OUT/report.json`` and ``OUT/overlays/*.png``; see
:mod:`dfmvr_ros.replay`. Exit codes: 0 done; 1 the bag is corrupt or truncated (the sets read before are kept) or a
set failed; 2 bad input (missing topic, bad configuration); 130 interrupted (what was processed is kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _summary(report: Any) -> list[str]:
    data = report.data
    sets = data["sets"]
    lines = [
        f"sets: {sets['processed']} processed ({sets['complete']} complete, {sets['partial']} partial), "
        f"{sets['with_face']} with a face, {sets['failed']} failed; landmarks: {data['landmarks']}",
        "valid views: "
        + ", ".join(f"{c} {n}" for c, n in data["valid_views"].items())
        + "; head pose from "
        + (", ".join(f"{src} {n}" for src, n in data.get("pose_source", {}).items()) or "none"),
        f"sync: {data['sync']['dropped_total']} frames dropped, max skew {data['sync']['max_skew_ms']} ms; "
        f"bad frames: {sum(f['bad'] for f in data['frames'].values())}",
    ]
    total = data["latency_ms"].get("set_total", {})
    if total.get("count"):
        lines.append(
            f"per set: p50 {total['p50']:.1f} ms, p95 {total['p95']:.1f} ms; {data['throughput']['sets_per_s']} sets/s "
            f"overall; backend {data['backend']}"
        )
    evaluation = data.get("evaluation")
    if evaluation:
        rmse, pos, rot = evaluation["rmse_mm"], evaluation["position_error_mm"], evaluation["rotation_error_deg"]
        if rmse["count"]:
            line = f"RMSE {rmse['mean']:.3f} ± {rmse['std']:.3f} mm over {rmse['count']} sets"
            mean_face = evaluation.get("mean_face_rmse_mm") or {}
            if mean_face.get("count"):
                line += f" (the mean face scores {mean_face['mean']:.3f} ± {mean_face['std']:.3f} mm)"
            lines.append(line)
        lines.append(f"head pose error: position {pos['mean']:.1f} mm, rotation {rot['mean']:.2f} deg (mean)")
    lines.append(f"wrote {data['output_bag']} and {report.report_path}")
    if data.get("meshes"):
        lines.append(f"meshes: {len(data['meshes'])} PLY files in {Path(report.report_path).parent / 'meshes'}")
    if data.get("overlays"):
        lines.append(f"overlays: {len(data['overlays'])} PNG files in {Path(report.report_path).parent / 'overlays'}")
    for warning in data["warnings"]:
        lines.append(f"warning: {warning}")
    return lines


def _run(args: argparse.Namespace) -> int:
    from dfmvr_core.inference.reconstructor import FaceReconstructor
    from dfmvr_ros.replay import check_bag, replay_bag
    from dfmvr_ros.replay_config import node_config_from
    from dfmvr_ros.replay_ground_truth import GT_LANDMARKS_PREFIX

    detector = args.detector
    if detector is None and args.gt_landmarks:
        detector = "none"  # the landmarks come from the bag: do not load MediaPipe
    overrides = {
        "reconstructor.morphable_model": args.model,
        "reconstructor.checkpoint": args.checkpoint,
        "reconstructor.network": args.network,
        "reconstructor.backend": args.backend,
        "reconstructor.device": args.device,
        "reconstructor.detector": detector,
        "reconstructor.rig": args.rig,
        "reconstructor.cache_dir": args.cache_dir,
        "reconstructor.num_threads": args.threads,
    }
    config = node_config_from(
        args.config, overrides, parameters=args.param, node_name=args.node_name, namespace=args.namespace
    )
    landmark_prefix = GT_LANDMARKS_PREFIX if args.gt_landmarks else None
    check_bag(args.bag, config, landmark_topic_prefix=landmark_prefix, distro=args.distro or "humble")  # fail fast
    reconstructor = FaceReconstructor(config.reconstructor)
    rc = config.reconstructor
    report = replay_bag(
        args.bag,
        args.output,
        config,
        reconstructor,
        distro=args.distro,
        storage=args.storage,
        max_sets=args.max_sets,
        overlay_every=args.overlay_every,
        landmark_topic_prefix=landmark_prefix,
        debug_topics=args.debug_topics,
        evaluate=not args.no_eval,
        evaluate_every=args.eval_every,
        overwrite=args.overwrite,
        progress=not args.quiet,
        info={
            "network": rc.network,
            "checkpoint": str(rc.checkpoint) if rc.checkpoint else None,
            "fresh_weights": rc.checkpoint is None,
            "morphable_model": str(rc.morphable_model),
            "config_file": str(args.config) if args.config else None,
        },
    )
    for line in _summary(report):
        print(line)
    if report.error:
        print(f"dfmvr replay: error: {report.error}; the output so far is kept in {args.output}", file=sys.stderr)
    elif report.sets_failed:
        print(f"dfmvr replay: {report.sets_failed} set(s) failed: {report.data['failures'][0]}", file=sys.stderr)
    return report.exit_code


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr replay``."""
    p = subparsers.add_parser(
        "replay",
        help="replay a rosbag2 through the reconstruction pipeline without ROS",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("bag", type=Path, help="input rosbag2 (directory, .db3 or .mcap)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (output_bag/, report.json)")
    p.add_argument("--config", type=Path, help="node parameter file (config/dfmvr.yaml); default: the node's defaults")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="node parameter override")
    p.add_argument("--node-name", default="dfmvr", help="node name (output topics /<namespace>/<name>/...)")
    p.add_argument("--namespace", default="/", help="node namespace (default /)")
    p.add_argument("--model", type=Path, help="morphable model (reconstructor.morphable_model)")
    p.add_argument(
        "--checkpoint",
        help="trained weights; omitted: the node's default, 'default' (the embedded model); '' runs untrained weights",
    )
    p.add_argument("--network", help="small | paper | network YAML")
    p.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"))
    p.add_argument("--device", help="cpu | cuda | cuda:N")
    p.add_argument("--detector", choices=("mediapipe", "none"))
    p.add_argument("--rig", type=Path, help="rig YAML (reconstructor.rig)")
    p.add_argument("--cache-dir", type=Path, help="ONNX / TensorRT cache (reconstructor.cache_dir)")
    p.add_argument("--threads", type=int, help="CPU threads (reconstructor.num_threads)")
    p.add_argument(
        "--gt-landmarks",
        action="store_true",
        help="take the 2D landmarks from /ground_truth/landmarks/<camera> (evaluates the network alone)",
    )
    p.add_argument("--max-sets", type=int, help="stop after N sets")
    p.add_argument("--overlay-every", type=int, default=10, help="overlay PNG every K sets (0: none; default 10)")
    p.add_argument("--debug-topics", action="store_true", help="also write the marker and overlay topics")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation against /ground_truth/*")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N sets (default 1: all)")
    p.add_argument("--distro", choices=("humble", "jazzy"), help="output bag distro (default: the input's)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), help="output bag storage (default: the input's)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT/output_bag")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
