"""``dfmvr reconstruct``: reconstruct a face from three views (left, front, right)."""

from __future__ import annotations

import argparse

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    raise DfmvrError("dfmvr reconstruct is being implemented in this session's work; not available in this build yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr reconstruct``."""
    parser = subparsers.add_parser("reconstruct", help="reconstruct a face from three views (left, front, right)")
    parser.set_defaults(func=_run)
