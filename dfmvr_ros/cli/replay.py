"""``dfmvr replay``: replay a rosbag2 through the reconstruction pipeline without ROS."""

from __future__ import annotations

import argparse

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    raise DfmvrError("dfmvr replay is being implemented in this session's work; not available in this build yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr replay``."""
    parser = subparsers.add_parser("replay", help="replay a rosbag2 through the reconstruction pipeline without ROS")
    parser.set_defaults(func=_run)
