"""``dfmvr extract-triplets``: write the synchronized camera triplets of a rosbag2 as a folder of images."""

from __future__ import annotations

import argparse

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    raise DfmvrError("dfmvr extract-triplets is being implemented in this session's work; not available yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr extract-triplets``."""
    parser = subparsers.add_parser("extract-triplets", help="write a bag's synchronized camera triplets as images")
    parser.set_defaults(func=_run)
