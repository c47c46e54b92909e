"""Renderer benchmark; same as ``dfmvr bench render`` (see dfmvr_core/bench/render.py for the method)."""

import sys

from dfmvr_core.cli.main import main

sys.exit(main(["bench", "render", *sys.argv[1:]]))
