"""``dfmvr eval``: evaluate reconstructed meshes against ground truth (paper section V-A).

``dfmvr eval --pred DIR --gt DIR -o OUT [--model MODEL | --nose-index N]`` pairs the meshes of both folders by
file stem (``.ply``, ``.obj``, or ``.npz`` with ``vertices``/``faces``), aligns each prediction to its ground
truth (landmarks, then ICP) and measures the point-to-plane RMSE (the paper's metric) and the mean
scan-to-mesh distance on the 95 mm front-face region. It writes ``OUT/summary.json``,
``OUT/samples/<stem>.json`` and ``OUT/error_maps/<stem>.png``, and resumes an interrupted run.
``--baseline mean`` (with ``--model``) evaluates the model's mean face instead of predictions.

``dfmvr eval --benchmark DIR --model MODEL [--checkpoint C] [--views front] -o OUT`` runs a trained network on a
synthetic benchmark split and scores it next to the mean face (``--views front``: the same network given one view,
the single-view baseline).

``dfmvr eval --compare SPEC.yaml [-o OUT] [--samples N]`` scores several checkpoints (DF-MVR, the Deep3DFace and
UH-E2FAR baselines, each with chosen views) and the mean face on the same benchmark samples and writes one table
(``OUT/comparison.md``, ``OUT/comparison.json``, error maps per entry); see ``config/eval/compare_example.yaml``.
Without a YAML: ``dfmvr eval --compare --benchmark DIR --model MODEL -o OUT --entry LABEL=CHECKPOINT[:VIEWS] ...``.
A failing entry is marked failed in the table and the others still run (exit status 1); ``--fail-fast`` stops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dfmvr_core.errors import ConfigError

UNITS = ("m", "dm", "cm", "mm")


def _run_benchmark(args: argparse.Namespace) -> int:
    """``--benchmark``: run a checkpoint on a synthetic benchmark split and score it with the mean face beside it."""
    from dfmvr_training.benchmark_eval import evaluate_checkpoint

    if args.model is None:
        raise ConfigError("--model: required with --benchmark (the morphable model the benchmark was rendered with)")
    summary = evaluate_checkpoint(
        args.checkpoint,
        args.benchmark,
        args.model,
        args.output,
        network=args.network,
        views=args.views,
        count=args.count,
        progress=not args.quiet,
    )
    for name, entry in summary["methods"].items():
        rmse, s2m = entry["rmse_mm"], entry["scan_to_mesh_mm"]
        rig, scaled = entry["rmse_mm_rig_scale"], entry["rmse_mm_with_scale"]
        print(
            f"{name:10s} RMSE {rmse['mean']:.3f} ± {rmse['std']:.3f} mm   rig scale {rig['mean']:.3f} ± "
            f"{rig['std']:.3f} mm   scale aligned {scaled['mean']:.3f} ± {scaled['std']:.3f} mm   scan-to-mesh "
            f"{s2m['mean']:.3f} mm   (n={entry['count']}, views {','.join(summary['views'])})"
        )
    if "error_sources" in summary:
        from dfmvr_training.error_sources import format_error_sources

        print(format_error_sources(summary["error_sources"]))
    print(f"wrote {Path(args.output) / 'summary.json'}")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    """``--compare``: several checkpoints and the mean face on one benchmark, one table."""
    import sys

    from dfmvr_training.compare_eval import run_comparison
    from dfmvr_training.compare_spec import load_compare_spec, parse_entry_arg

    for name, value in (("--checkpoint", args.checkpoint), ("--views", args.views), ("--network", args.network)):
        if value is not None:
            raise ConfigError(f"{name}: not used with --compare; give each checkpoint as an entry (--entry, spec)")
    if args.pred is not None or args.gt is not None or args.baseline is not None:
        raise ConfigError("--compare: runs on a --benchmark split, not on --pred/--gt/--baseline folders")
    overrides: dict = {}
    for key, value in (
        ("benchmark", args.benchmark),
        ("morphable_model", args.model),
        ("out_dir", args.output),
        ("eval_samples", args.count),
        ("device", args.device),
    ):
        if value is not None:
            overrides[key] = str(value) if isinstance(value, Path) else value
    if args.no_mean_face:
        overrides["mean_face"] = False
    if args.fail_fast:
        overrides["fail_fast"] = True
    overrides["entries"] = [parse_entry_arg(text) for text in args.entry or []]
    spec_path = args.compare or None
    if spec_path is None:
        missing = [flag for flag, value in (("--benchmark", args.benchmark), ("--model", args.model)) if value is None]
        missing += ["-o/--out"] if args.output is None else []
        if missing:
            raise ConfigError(f"--compare without a spec file: {', '.join(missing)} required (or give SPEC.yaml)")
    spec = load_compare_spec(spec_path, overrides)
    result = run_comparison(spec, progress=not args.quiet)
    print((spec.out_dir / "comparison.md").read_text(encoding="utf-8"))
    print(f"wrote {spec.out_dir / 'comparison.md'} and {spec.out_dir / 'comparison.json'}")
    if result["failed"]:
        for row in result["entries"]:
            if row["status"] != "ok":
                print(f"dfmvr eval: entry {row['label']!r} failed: {row['error']}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.compare is not None:
        return _run_compare(args)
    if args.entry:
        raise ConfigError("--entry: only with --compare")
    if args.output is None:
        raise ConfigError("-o/--output: required (the output folder)")
    if args.benchmark is not None:
        return _run_benchmark(args)
    if args.gt is None:
        raise ConfigError("--gt: required (a folder of ground-truth meshes), or --benchmark")
    from dfmvr_core.config import load_yaml
    from dfmvr_core.evaluation import EvalConfig
    from dfmvr_training.evaluation import MeshIndices, evaluate_directory, model_indices, summary_table

    if args.pred is None and args.baseline is None:
        raise ConfigError("--pred: required (or --baseline mean with --model)")
    if args.pred is not None and args.baseline is not None:
        raise ConfigError("--pred and --baseline: give one of them")
    if args.baseline is not None and args.model is None:
        raise ConfigError("--baseline mean: needs --model (the morphable model whose mean face is evaluated)")
    if args.model is None and args.nose_index is None:
        raise ConfigError(
            "--model or --nose-index: the nose tip (centre of the 95 mm region) must come from the morphable "
            "model's landmarks (--model) or a vertex index of the ground-truth topology (--nose-index)"
        )

    config = load_yaml(EvalConfig, args.config) if args.config is not None else EvalConfig()
    overrides = {}
    if args.radius_mm is not None:
        overrides["crop_radius_m"] = args.radius_mm / 1000.0
    if args.with_scale:
        overrides["with_scale"] = True
    if args.no_landmarks:
        overrides["use_landmarks"] = False
    if overrides:
        import dataclasses

        config = dataclasses.replace(config, **overrides)

    model = None
    indices = MeshIndices()
    if args.model is not None:
        from dfmvr_core.morphable import load_morphable_model

        model = load_morphable_model(args.model)
        indices = model_indices(model)
    if args.nose_index is not None:
        if args.nose_index < 0:
            raise ConfigError(f"--nose-index: expected a vertex index >= 0, got {args.nose_index}")
        # the explicit index belongs to the ground truth's topology; model landmarks stay for same-topology meshes
        indices = MeshIndices(
            landmarks=indices.landmarks, nose=args.nose_index, num_vertices=indices.num_vertices, nose_num_vertices=None
        )
    summary = evaluate_directory(
        args.pred,
        args.gt,
        args.output,
        indices=indices,
        config=config,
        pred_units=args.pred_units,
        gt_units=args.gt_units,
        baseline_model=model if args.baseline is not None else None,
        error_maps=not args.no_error_maps,
        max_mm=args.max_mm,
        map_size=args.map_size,
        progress=not args.quiet,
    )
    print(summary_table(summary))
    print(f"wrote {Path(args.output) / 'summary.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dfmvr eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate reconstructions: point-to-plane RMSE after ICP, scan-to-mesh distance, error maps",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pred", type=Path, help="folder of predicted meshes (.ply, .obj, .npz)")
    parser.add_argument("--gt", type=Path, help="folder of ground-truth meshes, same file stems")
    parser.add_argument(
        "--benchmark", type=Path, help="a synthetic benchmark split (dfmvr make-dataset --split benchmark) to run on"
    )
    parser.add_argument("--checkpoint", type=Path, help="with --benchmark: the trained network (omit: mean face only)")
    parser.add_argument(
        "--network", help="with --benchmark: expected network config name (default: whatever the checkpoint holds)"
    )
    parser.add_argument(
        "--views", nargs="+", choices=("left", "front", "right"), help="with --benchmark: cameras given to the network"
    )
    parser.add_argument(
        "--count", "--samples", type=int, help="with --benchmark or --compare: evaluate the first N samples"
    )
    parser.add_argument("-o", "--output", "--out", type=Path, help="output folder (--compare: overrides the spec's)")
    parser.add_argument(
        "--compare",
        nargs="?",
        const="",
        metavar="SPEC.yaml",
        help="compare checkpoints and the mean face on one benchmark (a YAML spec, or --entry/--benchmark/--model)",
    )
    parser.add_argument(
        "--entry",
        action="append",
        metavar="LABEL=CHECKPOINT[:VIEWS]",
        help="with --compare: one more row (VIEWS: comma-separated cameras, default left,front,right); repeatable",
    )
    parser.add_argument("--no-mean-face", action="store_true", help="with --compare: no mean-face row")
    parser.add_argument(
        "--fail-fast", action="store_true", help="with --compare: stop at the first failing entry (default: go on)"
    )
    parser.add_argument("--device", help="with --compare: cpu, cuda, cuda:N or auto (default: the spec's, cpu)")
    parser.add_argument(
        "--model",
        type=Path,
        help="morphable model (.npz, BFM .mat, ICT folder): its 68 landmarks align same-topology meshes and its "
        "landmark 30 is the nose tip",
    )
    parser.add_argument("--nose-index", type=int, help="nose-tip vertex index of the ground-truth topology")
    parser.add_argument("--baseline", choices=("mean",), help="evaluate the model's mean face instead of --pred")
    parser.add_argument("--config", type=Path, help="YAML file with EvalConfig fields (metric settings)")
    parser.add_argument("--radius-mm", type=float, help="front-face crop radius in mm (default 95)")
    parser.add_argument("--with-scale", action="store_true", help="also fit an isotropic scale (default rigid)")
    parser.add_argument("--no-landmarks", action="store_true", help="no landmark alignment: ICP only")
    parser.add_argument("--pred-units", choices=UNITS, default="m", help="units of the predicted files (default m)")
    parser.add_argument("--gt-units", choices=UNITS, default="m", help="units of the ground-truth files (default m)")
    parser.add_argument("--max-mm", type=float, default=5.0, help="error shown red in the error maps (default 5)")
    parser.add_argument("--map-size", type=int, default=512, help="error-map size in pixels (default 512)")
    parser.add_argument("--no-error-maps", action="store_true", help="skip the PNG error maps")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)
