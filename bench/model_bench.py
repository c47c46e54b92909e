"""Network cost and latency benchmark; same as ``dfmvr bench model`` (see dfmvr_core/bench/model.py)."""

import sys

from dfmvr_core.cli.main import main

sys.exit(main(["bench", "model", *sys.argv[1:]]))
