"""``dfmvr make-dataset``: render a synthetic multi-view face dataset."""

from __future__ import annotations

import argparse

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    raise DfmvrError("dfmvr make-dataset is being implemented in this session's work; not available in this build yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr make-dataset``."""
    parser = subparsers.add_parser("make-dataset", help="render a synthetic multi-view face dataset")
    parser.set_defaults(func=_run)
