"""``dfmvr bench <name>``: run a benchmark, print its JSON, optionally save it (``--out bench/results``)."""

from __future__ import annotations

import argparse

from dfmvr_core.bench import infer as infer_bench
from dfmvr_core.bench import model as model_bench
from dfmvr_core.bench import render as render_bench


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr bench`` and its benchmarks."""
    bench = subparsers.add_parser("bench", help="benchmarks (JSON to stdout and bench/results/)")
    sub = bench.add_subparsers(dest="bench_command", metavar="<benchmark>", required=True)
    infer_bench.register(sub)
    model_bench.register(sub)
    render_bench.register(sub)
