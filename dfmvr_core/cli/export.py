"""``dfmvr export``: write the reconstruction network (and optionally the face parser) as ONNX files.

Where the coefficient sizes come from: a network regresses the coefficients of one morphable model, so the export
needs that model's sizes and expression kind. ``--checkpoint`` stores them (and the model's fingerprint); without a
checkpoint ``--model`` is required (no silent BFM or ICT default: a file with the wrong sizes would load and run but
decode garbage). With both, the model must match the checkpoint (sizes, kind and fingerprint are checked).

Without ``--checkpoint`` the file holds **freshly initialised, untrained weights** (to test the export path and the
runtime): a warning is printed and the file's metadata says ``dfmvr.fresh_weights = true``. The same goes for
``--parser-out`` without ``--parser-checkpoint``.

``--trt-engine E`` also builds a TensorRT engine from the written ONNX file (the TensorRT backend's builder:
precision ``--precision``, default fp16; optimization profile batch 1..``--max-batch``, default 4, optimized for 1).
``E`` an existing folder: it is filled as an engine cache (the backend's ``engine_cache_dir``, engine under its key);
otherwise ``E`` is the engine file, with a sidecar ``E.json`` (ONNX hash, TensorRT version, GPU, precision, max
batch). This needs TensorRT and an NVIDIA GPU, on the machine that will run the engine (an engine is specific to the
GPU model and the TensorRT version); without them the ONNX file is still written and the command fails with a
message saying so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dfmvr_core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

FRESH_WARNING = (
    "WARNING: {what}: no {flag} given: exporting FRESHLY INITIALISED (untrained) weights.\n"
    "WARNING: use this file to test the export path and the runtime only; its outputs are meaningless "
    "(metadata dfmvr.fresh_weights=true)."
)


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _check_trt_flags(args: argparse.Namespace) -> None:
    """``--precision``/``--max-batch`` only with ``--trt-engine``; a positive ``--max-batch`` (checked before any
    work is done)."""
    if args.trt_engine is None:
        options = (("--precision", args.precision), ("--max-batch", args.max_batch))
        used = [flag for flag, value in options if value is not None]
        if used:
            raise ConfigError(f"{'/'.join(used)}: only with --trt-engine ENGINE (they configure the TensorRT engine)")
        return
    if args.max_batch is not None and args.max_batch < 1:
        raise ConfigError(f"--max-batch: expected a positive int, got {args.max_batch}")


def _build_trt_engine(onnx_path: Path, args: argparse.Namespace) -> None:
    """Build the TensorRT engine of ``onnx_path`` into ``--trt-engine`` (see the module docstring)."""
    from dfmvr_core.inference import MissingDependencyError
    from dfmvr_core.inference.tensorrt_backend import build_engine_file

    precision, max_batch = args.precision or "fp16", args.max_batch or 4
    try:
        engine, status = build_engine_file(onnx_path, args.trt_engine, precision=precision, max_batch=max_batch)
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"--trt-engine: {exc}. The ONNX file {onnx_path} was written; build the engine on the target machine "
            f"(`dfmvr export ... --trt-engine` there, or `trtexec --onnx={onnx_path.name}`)"
        ) from None
    except ConfigError as exc:
        raise ConfigError(f"--trt-engine: {exc}. The ONNX file {onnx_path} was written") from None
    what = {"hit": "already in the cache", "built": "built", "rebuilt": "rebuilt (the cached one was unusable)"}
    print(f"TensorRT engine {engine} ({_megabytes(engine)}): {what[status]}, {precision}, batch 1..{max_batch}")


def _export(args: argparse.Namespace) -> int:
    _check_trt_flags(args)
    from dfmvr_core.inference._common import require

    require("onnx")  # fail before loading anything when the export extra is missing
    import torch

    from dfmvr_core.inference import export_face_parser_onnx, export_onnx, load_checkpoint
    from dfmvr_core.morphable import load_morphable_model
    from dfmvr_core.networks.face_parser import BiSeNet, load_face_parser
    from dfmvr_core.networks.registry import build_network, load_any_network_config

    config = load_any_network_config(args.config) if args.config is not None else None
    model = load_morphable_model(args.model, bfm_units=args.bfm_units) if args.model is not None else None
    if args.checkpoint is not None:
        checkpoint = load_checkpoint(
            args.checkpoint,
            config=config,
            sizes=model.coefficient_sizes if model is not None else None,
            expression_kind=model.expression_kind if model is not None else None,
            model_fingerprint=model.fingerprint() if model is not None else None,
        )
        net = checkpoint.build_network()
        fingerprint, fresh, source = checkpoint.model_fingerprint, False, str(args.checkpoint)
    else:
        if model is None:
            raise ConfigError(
                "--model: the coefficient sizes are unknown: pass --model MORPHABLE_MODEL (the model the network "
                "regresses: .npz, BFM_model_front.mat or ICT folder) or --checkpoint CHECKPOINT (which stores them)"
            )
        if config is None:
            raise ConfigError(
                "--config: required without --checkpoint (paper, small, deep3dface, deep3dface_cnet, uh_e2far or a "
                "network YAML file)"
            )
        print(FRESH_WARNING.format(what="network", flag="--checkpoint"), file=sys.stderr)
        torch.manual_seed(args.seed)
        net = build_network(config, model.coefficient_sizes, model.expression_kind)
        fingerprint, fresh, source = model.fingerprint(), True, "fresh initialisation"
    path = export_onnx(
        net,
        args.output,
        opset=args.opset,
        batch_dynamic=not args.static_batch,
        model_fingerprint=fingerprint,
        fresh_weights=fresh,
        weights_source=source,
    )
    sizes = net.sizes
    print(
        f"wrote {path} ({_megabytes(path)}): network {net.config.name!r}, coefficients {net.flat_size} "
        f"(identity {sizes.identity}, expression {sizes.expression} {net.expression_kind}, albedo {sizes.albedo}, "
        f"lighting/pose for {net.views} views), opset {args.opset}, "
        f"batch {'1' if args.static_batch else 'dynamic'}, {'FRESH (untrained) weights' if fresh else source}"
    )
    if args.verify:
        _verify(net, path)
    if args.parser_out is not None:
        parser_fresh = args.parser_checkpoint is None
        if parser_fresh:
            print(FRESH_WARNING.format(what="face parser", flag="--parser-checkpoint"), file=sys.stderr)
            parser, parser_source = BiSeNet(), "fresh initialisation"
        else:
            parser, parser_source = load_face_parser(args.parser_checkpoint), str(args.parser_checkpoint)
        parser_path = export_face_parser_onnx(
            parser,
            args.parser_out,
            input_size=args.parser_size,
            opset=args.opset,
            batch_dynamic=not args.static_batch,
            fresh_weights=parser_fresh,
            weights_source=parser_source,
        )
        print(
            f"wrote {parser_path} ({_megabytes(parser_path)}): face parser, input {args.parser_size}x"
            f"{args.parser_size}, {'FRESH (untrained) weights' if parser_fresh else parser_source}"
        )
    if args.trt_engine is not None:  # last: the ONNX files are written even when TensorRT is missing
        _build_trt_engine(path, args)
    return 0


def _verify(net: nn.Module, path: Path) -> None:
    """Run the file with ONNX Runtime and PyTorch on one random triplet; print the largest difference."""
    import torch

    from dfmvr_core.inference import OnnxRuntimeBackend

    v, s = net.views, net.config.input_size
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(1, v, 3, s, s, generator=generator)
    masks = torch.randint(0, 10, (1, v, s, s), generator=generator)
    backend = OnnxRuntimeBackend(path, ["CPUExecutionProvider"], batch_size=1)
    ours = backend.run_flat(images, masks)  # masks ignored by networks with mask_input "none" (the baselines)
    net = net.cpu().eval()
    with torch.no_grad():
        reference = net.forward_flat(images, masks)
    delta = float((ours - reference).abs().max())
    print(f"verify: ONNX Runtime vs PyTorch, max |difference| of the coefficients {delta:.3g}")
    if not delta <= 1e-4:
        raise ConfigError(f"verify: {path}: ONNX Runtime and PyTorch differ by {delta:.3g} (> 1e-4)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr export``."""
    export = subparsers.add_parser(
        "export",
        help="export the network (and the face parser) to ONNX",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--config",
        help="network config: paper, small, deep3dface, deep3dface_cnet, uh_e2far or a YAML file (default: the "
        "checkpoint's)",
    )
    export.add_argument("--checkpoint", type=Path, help="trained weights (dfmvr checkpoint); default: fresh weights")
    export.add_argument(
        "--model",
        type=Path,
        help="morphable model (.npz, BFM .mat, ICT folder) for the coefficient sizes; required without --checkpoint",
    )
    export.add_argument("--bfm-units", default="dm", help="length unit of a BFM .mat (default dm)")
    export.add_argument("-o", "--output", type=Path, required=True, help="output .onnx file")
    export.add_argument("--parser-out", type=Path, help="also export the face parser to this .onnx file")
    export.add_argument("--parser-checkpoint", type=Path, help="face-parsing.PyTorch 79999_iter.pth for --parser-out")
    export.add_argument("--parser-size", type=int, default=224, help="input side of the exported parser (default 224)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17, TensorRT 8.6-10)")
    export.add_argument("--static-batch", action="store_true", help="fix the batch at 1 (default: dynamic batch)")
    export.add_argument("--verify", action="store_true", help="check ONNX Runtime against PyTorch after export")
    export.add_argument("--seed", type=int, default=0, help="seed of the fresh initialisation (no --checkpoint)")
    export.add_argument(
        "--trt-engine",
        type=Path,
        metavar="ENGINE",
        help="also build a TensorRT engine: an engine file, or an existing engine cache folder (needs TensorRT + GPU)",
    )
    export.add_argument(
        "--precision", choices=("fp16", "fp32", "tf32"), help="TensorRT engine precision (default fp16)"
    )
    export.add_argument("--max-batch", type=int, help="largest batch of the TensorRT engine (default 4)")
    export.set_defaults(func=_export)
