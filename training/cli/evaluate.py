"""``dfmvr eval``: evaluate reconstructions: RMSE after ICP, error maps."""

from __future__ import annotations

import argparse

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    raise DfmvrError("dfmvr eval is being implemented in this session's work; not available in this build yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr eval``."""
    parser = subparsers.add_parser("eval", help="evaluate reconstructions: RMSE after ICP, error maps")
    parser.set_defaults(func=_run)
