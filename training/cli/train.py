"""``dfmvr train``: train DF-MVR (weakly supervised, paper section IV) or its face parser.

Single process::

    dfmvr train --config config/training/small_synthetic.yaml [--out DIR] [--steps N] [--device cpu|cuda|auto]
    dfmvr train --config ... --resume              # continue from DIR/checkpoints/latest.json
    dfmvr train --config ... --resume STATE.pt     # or from one checkpoint's training_state.pt
    dfmvr train --config ... --mode parser         # the 10-class BiSeNet face parser instead

Distributed data parallel (one process per GPU, or CPU processes with gloo)::

    torchrun --nproc_per_node=2 -m dfmvr_training.cli.train --config cfg.yaml
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dfmvr_core.errors import DfmvrError


def _run(args: argparse.Namespace) -> int:
    from dfmvr_training.distributed import cleanup_distributed, init_distributed
    from dfmvr_training.train_config import load_train_config
    from dfmvr_training.trainer import Trainer

    overrides: dict[str, object] = {}
    if args.out is not None:
        overrides["out_dir"] = args.out
    if args.steps is not None:
        overrides["steps"] = args.steps
        overrides["epochs"] = None
    if args.device is not None:
        overrides["device"] = args.device
    if args.mode is not None:
        overrides["mode"] = args.mode
    if args.no_progress:
        overrides["progress"] = False
    config = load_train_config(args.config, overrides)
    context = init_distributed(config.device)
    try:
        trainer = Trainer(config, resume=args.resume if args.resume is not None else False, dist_context=context)
        summary = trainer.fit()
    finally:
        cleanup_distributed(context)
    if context.is_main:
        print(f"run          {config.out_dir} ({config.mode}, {context.world_size} process(es), {context.device})")
        print(
            f"steps        {summary['steps']} ({summary['steps_this_run']} this run, "
            f"{summary['steps_per_s']:.3f} steps/s)"
        )
        if summary["final_loss"] is not None:
            print(f"final loss   {summary['final_loss']:.5f}")
        for key, value in summary["eval"].items():
            if isinstance(value, float):
                print(f"eval         {key} {value:.4f}")
        print(f"network      {summary['final']}")
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML file with a 'train:' section (config/training/*.yaml)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        help="continue the run in --out from its latest checkpoint, or from the given training_state.pt",
    )
    parser.add_argument("--out", help="run folder (overrides train.out_dir)")
    parser.add_argument("--steps", type=int, help="total optimiser steps of the run (overrides steps/epochs)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (overrides train.device)")
    parser.add_argument("--mode", choices=("reconstruction", "parser"), help="what to train (overrides train.mode)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr train``."""
    parser = subparsers.add_parser(
        "train",
        help="train DF-MVR (weakly supervised, paper section IV) or its face parser",
        description="Train DF-MVR on synthetic multi-view datasets (dfmvr make-dataset) with the paper's losses, "
        "or the 10-class face parser (--mode parser). Runs under torchrun for DDP.",
    )
    _add_arguments(parser)
    parser.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dfmvr_training.cli.train`` (what ``torchrun -m`` starts): the same options as ``dfmvr train``."""
    parser = argparse.ArgumentParser(prog="dfmvr train", description="Train DF-MVR (see dfmvr train --help).")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except DfmvrError as exc:
        print(f"dfmvr train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
