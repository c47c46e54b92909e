"""``dfmvr make-bag``: write a synthetic three-camera rosbag2."""

from __future__ import annotations

import argparse

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    raise DfmvrError("dfmvr make-bag is being implemented in this session's work; not available in this build yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr make-bag``."""
    parser = subparsers.add_parser("make-bag", help="write a synthetic three-camera rosbag2")
    parser.set_defaults(func=_run)
