"""``dfmvr`` — one command line for the whole product.

Subcommands are discovered from the ``dfmvr.commands`` entry-point group: each installed package
registers its own (``name = module:register`` where ``register(subparsers)`` adds a parser whose
``func(args) -> int`` runs it), so this module never imports the packages above it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from dfmvr_core import __version__
from dfmvr_core.errors import DfmvrError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dfmvr", description="DF-MVR multi-view 3D face reconstruction.")
    parser.add_argument("--version", action="version", version=f"dfmvr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<subcommand>")
    for entry in sorted(entry_points(group="dfmvr.commands"), key=lambda e: e.name):
        entry.load()(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dfmvr``; returns the exit code (0 ok, 2 bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DfmvrError as exc:
        print(f"dfmvr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
