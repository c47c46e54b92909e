"""``dfmvr train``: train DF-MVR (weakly supervised, paper section IV)."""

from __future__ import annotations

import argparse

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    raise DfmvrError("dfmvr train is being implemented in this session's work; not available in this build yet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr train``."""
    parser = subparsers.add_parser("train", help="train DF-MVR (weakly supervised, paper section IV)")
    parser.set_defaults(func=_run)
