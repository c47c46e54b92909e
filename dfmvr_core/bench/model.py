"""``dfmvr bench model``: parameters, GFLOPs and latency per triplet of the DF-MVR network configs.

For each named config (``small``, ``paper``): parameters and GFLOPs (2 × MACs) of one triplet at 224×224
(:func:`~dfmvr_core.networks.cost.network_cost`), and eager PyTorch latency of ``forward`` on one triplet
(batch 1, 3 views, random images and masks, ``torch.inference_mode``) on the CPU with ``--threads``
threads; on CUDA (when available) in fp32 and fp16 autocast. Coefficient sizes are BFM's (80/64/80,
the paper's) unless ``--model`` names a morphable model.
Targets (issue: DF-MVR networks): ``small`` ≤ 12 GFLOPs, ≤ 15 M parameters, ≤ 250 ms per triplet on the
2-core CPU; ``paper`` ≈ 150 GFLOPs.
"""

from __future__ import annotations

import argparse

import torch

from dfmvr_core.bench.common import emit, machine_info, machine_slug, time_call
from dfmvr_core.morphable.model import CoefficientSizes
from dfmvr_core.networks.cost import network_cost
from dfmvr_core.networks.dfmvr_net import DFMVRNet
from dfmvr_core.networks.net_config import NAMED_CONFIGS

BFM_SIZES = CoefficientSizes(identity=80, expression=64, albedo=80)


def _latency(net: DFMVRNet, device: torch.device, repeats: int, autocast: bool) -> dict:
    size = net.config.input_size
    images = torch.rand(1, net.views, 3, size, size, device=device)
    masks = torch.randint(0, 10, (1, net.views, size, size), device=device)

    def step() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
            net(images, masks)

    return time_call(step, repeats=repeats, warmup=2, device=device)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    sizes, expression_kind, model_name = BFM_SIZES, "pca", "BFM sizes (80/64/80)"
    if args.model is not None:
        from dfmvr_core.morphable import load_morphable_model

        model = load_morphable_model(args.model)
        sizes, expression_kind, model_name = model.coefficient_sizes, model.expression_kind, str(args.model)
    configs = {}
    for name in args.configs:
        config = NAMED_CONFIGS[name]
        repeats = args.repeats or {"small": 20, "paper": 5}[name]
        cost = network_cost(config, sizes)
        torch.manual_seed(0)
        net = DFMVRNet(config, sizes, expression_kind).eval()
        entry = {
            "parameters": cost.parameters,
            "parameters_M": round(cost.parameters / 1e6, 3),
            "gflops_per_triplet": round(cost.gflops, 3),
            "gflops_breakdown": {
                "fusion": round(2 * cost.fusion_macs / 1e9, 3),
                "regressor": round(2 * cost.regressor_macs / 1e9, 3),
                "heads": round(2 * cost.heads_macs / 1e9, 6),
            },
            "cpu_latency_per_triplet_ms": _latency(net, torch.device("cpu"), repeats, autocast=False),
        }
        if torch.cuda.is_available():
            cuda = torch.device("cuda")
            net_cuda = net.to(cuda)
            entry["cuda_fp32_latency_per_triplet_ms"] = _latency(net_cuda, cuda, 50, autocast=False)
            entry["cuda_fp16_autocast_latency_per_triplet_ms"] = _latency(net_cuda, cuda, 50, autocast=True)
        else:
            entry["cuda"] = "no GPU available on this machine"
        configs[name] = entry
    small = configs.get("small")
    targets = {}
    if small:
        targets = {
            "small_gflops_le_12": small["gflops_per_triplet"] <= 12,
            "small_params_le_15M": small["parameters"] <= 15_000_000,
            "small_cpu_p50_le_250ms": small["cpu_latency_per_triplet_ms"]["p50_ms"] <= 250,
        }
    return {
        "name": "model",
        "config": {
            "coefficients": model_name,
            "input_size": 224,
            "views": 3,
            "batch": 1,
            "threads": args.threads,
            "mode": "eager torch.inference_mode",
        },
        "machine": machine_info(),
        "machine_slug": machine_slug(),
        "figures": configs,
        "targets_met": targets,
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="parameters, GFLOPs and latency per triplet of paper/small")
    parser.add_argument("--configs", nargs="+", default=["small", "paper"], choices=sorted(NAMED_CONFIGS))
    parser.add_argument("--model", default=None, help="morphable model for the coefficient sizes (default: BFM's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed forwards per config (default 20 small, 5 paper)"
    )
    parser.add_argument("--out", default=None, help="JSON file or folder (bench/results) to save the result in")
    parser.set_defaults(func=lambda a: emit(run(a), a.out))
