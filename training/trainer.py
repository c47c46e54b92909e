"""The DF-MVR trainer (``dfmvr train``): weakly supervised training as paper sections IV and V-A.

:class:`Trainer` builds everything from a :class:`~dfmvr_training.train_config.TrainConfig` and runs the loop:

* data: the synthetic datasets (:mod:`dfmvr_training.data`), the network's mask input added per sample
  (:class:`~dfmvr_training.train_data.MaskedViews`), this rank's share in a seeded, resumable order
  (:class:`~dfmvr_training.train_data.ResumableSampler`);
* task: ``reconstruction`` (:class:`ReconstructionTask`: the network of ``network`` built through
  :func:`~dfmvr_core.networks.registry.build_network` + MorphableModel + FaceRenderer, the losses of its kind: DF-MVR's
  (:mod:`dfmvr_training.step`, optional frozen parser) or a baseline's (:mod:`dfmvr_training.baseline_step`:
  Deep3DFace's hybrid loss with a skin model and an optional frozen embedder; UH-E2FAR's 3D-supervised shape loss)) or
  ``parser`` (:class:`~dfmvr_training.parser_training.ParserTask`);
* baselines: single-image methods (Deep3DFace's R-Net, UH-E2FAR) train on one random view per sample; Deep3DFace's
  C-Net stage starts from a trained R-Net (``init_checkpoint``), keeps it frozen and trains the C-Net on all views;
* optimisation: Adam (lr 1e-4), cosine annealing to 0 at the last step (paper V-A), gradient-norm clipping, optional
  CUDA autocast (bf16/fp16, with a gradient scaler for fp16), DDP under ``torchrun``;
* outputs under ``out_dir`` (rank 0 only)::

      config.yaml                         the resolved config
      metrics.jsonl                       one JSON per log step / evaluation (always)
      tb/                                 TensorBoard events (tensorboard: true)
      preview.png                         the latest input | rendering | error grid
      checkpoints/step_00001000/training_state.pt   full state for --resume (see train_state.py)
      checkpoints/step_00001000/model.pt            inference checkpoint (save_checkpoint) / parser.pth
      checkpoints/latest.json             pointer to the newest complete checkpoint
      model.pt (or parser.pth)            the final network, what ``dfmvr reconstruct`` / the node loads
      skin_model.npz                      Deep3DFace only: the skin-colour classifier fitted at the start

Resuming (``resume=True``: the ``latest.json`` checkpoint; or a path) restores the weights, Adam, the scheduler, the
gradient scaler, every random state and the position in the data order, so the next step's loss equals the one of an
uninterrupted run (tested).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from dfmvr_core.atomic_io import write_json_atomic, write_text_atomic
from dfmvr_core.errors import ConfigError, DfmvrError, ModelFileError
from dfmvr_core.evaluation import summarize
from dfmvr_core.geometry.camera import project_points
from dfmvr_core.geometry.face_crop import CropCamera
from dfmvr_core.inference import load_checkpoint, save_checkpoint
from dfmvr_core.inference._common import config_to_dict
from dfmvr_core.morphable import FacePart, MorphableModel, load_morphable_model
from dfmvr_core.networks.dfmvr_net import DFMVRNet, view_dropout
from dfmvr_core.networks.registry import DFMVR_KIND, build_network
from dfmvr_core.render.face_renderer import FaceRenderConfig, FaceRenderer
from dfmvr_training.baseline_step import (
    Deep3DFaceLoss,
    SingleImageForward,
    UHE2FARLoss,
    choose_single_views,
)
from dfmvr_training.compare_budget import TrainingBudget, budget_from_extra
from dfmvr_training.data import gt_vertices
from dfmvr_training.distributed import DistContext, all_gather_objects, resolve_device
from dfmvr_training.evaluation import evaluate_meshes, mean_face_baseline, model_indices, scale_aligned_rmse
from dfmvr_training.logging_tb import MetricsLogger
from dfmvr_training.losses import SkinColorModel, load_embedder
from dfmvr_training.parser_training import ParserTask, load_parser_checkpoint
from dfmvr_training.step import ReconstructionLoss, decode_prediction, to_device
from dfmvr_training.train_config import INPUT_VIEW_NAMES, TrainConfig, train_config_to_dict
from dfmvr_training.train_data import MaskedViews, ResumableSampler, open_datasets
from dfmvr_training.train_state import capture_rng, read_training_state, restore_rng, write_training_state

__all__ = ["MeshEvaluator", "ReconstructionTask", "Trainer", "fit_skin_model", "load_init_checkpoint"]

_STEP_DIR = re.compile(r"^step_(\d{8})$")


class MeshEvaluator:
    """RMSE (mm, point-to-plane after ICP, paper V-A) of the network's meshes on the first samples of the benchmark,
    its scale-aligned companion (``rmse_mm_with_scale``, see ``SCALED_RMSE_DEFINITION``), the mean-face baseline of
    both (computed once) and the 2D landmark error of the predicted poses.

    Args:
        dataset: benchmark samples with ``input_parts`` (:class:`MaskedViews`).
        model: the morphable model (on the training device).
        crop: the canonical crop camera.
        count: samples to evaluate (the first ones).
        batch_size: network batch size.
        views: ``(V,)`` bool: the cameras the network is given (and-ed with each sample's ``valid``); None = all.
    """

    def __init__(
        self,
        dataset: Dataset,
        model: MorphableModel,
        crop: CropCamera,
        count: int,
        batch_size: int,
        views: Tensor | None = None,
    ):
        self.model = model
        self.views = views
        self.crop = crop
        self.batch_size = batch_size
        count = min(count, len(dataset))  # type: ignore[arg-type]
        self.samples = [dataset[i] for i in range(count)]
        batch = default_collate(self.samples)
        self.gt = gt_vertices(model, {k: v.to(model.device) for k, v in batch.items()}).detach().cpu().double()
        self.indices = model_indices(model)
        self.faces = model.triangles.detach().cpu().numpy()
        self.baseline: dict[str, Any] | None = None
        self.baseline_scaled = math.nan

    @torch.no_grad()
    def __call__(self, net: DFMVRNet) -> dict[str, Any]:
        was_training = net.training
        net.eval()
        device = self.model.device
        predictions, lm_errors, kept = [], [], []
        for start in range(0, len(self.samples), self.batch_size):
            batch = to_device(default_collate(self.samples[start : start + self.batch_size]), device)
            valid = batch["valid"] if self.views is None else batch["valid"] & self.views.to(device)
            out = {k: v.float() for k, v in net(batch["images"], batch["input_parts"], valid).items()}
            # A diverged network (e.g. exploding BatchNorm statistics) gives NaN/inf: those samples are counted as
            # non-finite instead of stopping the run in the pose conversion.
            finite = torch.stack([torch.isfinite(v.flatten(1)).all(1) for v in out.values()]).all(0)
            kept += (torch.nonzero(finite).flatten() + start).tolist()
            if not bool(finite.any()):
                continue
            out = {k: v[finite] for k, v in out.items()}
            batch = {k: v[finite] for k, v in batch.items() if isinstance(v, torch.Tensor) and len(v) == len(finite)}
            vertices, _, vertices_cam = decode_prediction(self.model, out, batch["K_crop"], self.crop)
            predictions.append(vertices.cpu().double())
            lm = project_points(self.model.landmarks(vertices_cam.flatten(0, 1)), batch["K_crop"].flatten(0, 1))
            distance = torch.linalg.vector_norm(lm - batch["landmarks"].flatten(0, 1), dim=-1)
            visible = (batch["visibility"] & valid[finite, :, None]).flatten(0, 1)
            lm_errors.append(distance[visible].cpu())
        net.train(was_training)
        if self.baseline is None:
            self.baseline = summarize(mean_face_baseline(self.model, self.gt))
            mean = self.model.mean_shape.detach().cpu().double().expand_as(self.gt)
            self.baseline_scaled = float(np.mean(scale_aligned_rmse(mean, self.gt, self.faces, indices=self.indices)))
        nonfinite = len(self.samples) - len(kept)
        if not kept:
            nan = float("nan")
            return {
                "count": 0,
                "nonfinite": nonfinite,
                "rmse_mm_mean": nan,
                "rmse_mm_std": nan,
                "scan_to_mesh_mm_mean": nan,
                "rmse_mm_with_scale_mean": nan,
                "baseline_rmse_mm_mean": self.baseline["rmse_mm"]["mean"],
                "baseline_rmse_mm_std": self.baseline["rmse_mm"]["std"],
                "baseline_rmse_mm_with_scale_mean": self.baseline_scaled,
                "landmark_2d_px": nan,
            }
        predicted = torch.cat(predictions)
        metrics = summarize(evaluate_meshes(predicted, self.gt[kept], self.faces, indices=self.indices))
        scaled = scale_aligned_rmse(predicted, self.gt[kept], self.faces, indices=self.indices)
        return {
            "count": metrics["count"],
            "nonfinite": nonfinite,
            "rmse_mm_mean": metrics["rmse_mm"]["mean"],
            "rmse_mm_std": metrics["rmse_mm"]["std"],
            "scan_to_mesh_mm_mean": metrics["scan_to_mesh_mm"]["mean"],
            "rmse_mm_with_scale_mean": float(np.mean(scaled)),
            "baseline_rmse_mm_mean": self.baseline["rmse_mm"]["mean"],
            "baseline_rmse_mm_std": self.baseline["rmse_mm"]["std"],
            "baseline_rmse_mm_with_scale_mean": self.baseline_scaled,
            "landmark_2d_px": float(torch.cat(lm_errors).mean()),
        }


class ReconstructionTask:
    """``mode: reconstruction``: the configured network (DF-MVR or a baseline, :func:`build_network`) trained with the
    losses of its kind (DF-MVR: :mod:`dfmvr_training.step`; baselines: :mod:`dfmvr_training.baseline_step`).

    Args:
        config: the run's config.
        model: morphable model (float32, on ``device``).
        crop: the datasets' crop camera (its size must be the network's input size).
        device: training device.
        benchmark: benchmark samples (with ``input_parts``) or None.
        train_set: the training samples (Deep3DFace without ``skin_model``: the skin classifier is fitted on them).
        out_dir: where a fitted skin model is saved (None: not saved).

    Attributes:
        net: the network (what is optimised and saved); ``train_module``: what the step calls and DDP wraps (the
            network, or its :class:`SingleImageForward` for single-view training).
        notes: set-up messages for the run's log (initialisation, frozen parts, the skin model).
    """

    kind = "reconstruction"
    export_name = "model.pt"

    def __init__(
        self,
        config: TrainConfig,
        model: MorphableModel,
        crop: CropCamera,
        device: torch.device,
        benchmark: Dataset | None = None,
        train_set: Dataset | None = None,
        out_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.crop = crop
        self.device = device
        self.net_config = config.network_definition()
        self.network_kind = config.network_kind
        self.notes: list[str] = []
        if self.net_config.input_size != crop.size:
            raise ConfigError(
                f"network.input_size: {self.net_config.input_size}, but the datasets' crops are {crop.size} px; "
                "train a network whose input_size equals the crop size"
            )
        self.net = build_network(self.net_config, model.coefficient_sizes, model.expression_kind).to(device)
        self.fingerprint: str | None = model.fingerprint()
        self.prior_budget: TrainingBudget | None = None  # what the init_checkpoint's training cost
        if config.init_checkpoint is not None:
            note, self.prior_budget = load_init_checkpoint(self.net, config.init_checkpoint, model)
            self.notes.append(note)
        if self.network_kind == "deep3dface" and getattr(self.net, "cnet", None) is not None and config.freeze_rnet:
            self.net.freeze_rnet(True)
            self.notes.append("C-Net stage: the R-Net is frozen (no gradients, BatchNorm statistics fixed)")
        self.single_view = config.single_view
        self.train_module: nn.Module = SingleImageForward(self.net) if self.single_view else self.net
        renderer = FaceRenderer(model, FaceRenderConfig(height=crop.size, width=crop.size))
        weights = config.loss_weights
        if self.network_kind == DFMVR_KIND:
            parser = None
            if weights.mask > 0:
                assert config.parser_checkpoint is not None  # TrainConfig requires it with mask_loss_source: parser
                parser = load_parser_checkpoint(config.parser_checkpoint, device, freeze=True).eval()
            self.loss_fn: Any = ReconstructionLoss(model, renderer, weights, crop, parser=parser, amp=config.amp)
        elif self.network_kind == "deep3dface":
            embedder = None
            if config.perception_embedder is not None:
                embedder = load_embedder(config.perception_embedder, device)
            skin = self._skin_model(train_set, out_dir)
            self.loss_fn = Deep3DFaceLoss(
                model, renderer, weights, crop, skin, embedder, amp=config.amp, single_view=self.single_view
            )
        else:
            self.loss_fn = UHE2FARLoss(model, renderer, weights, crop, amp=config.amp, single_view=self.single_view)
        self.input_views: Tensor | None = None
        if config.input_views is not None:
            self.input_views = torch.tensor([name in config.input_views for name in INPUT_VIEW_NAMES])
            self.notes.append(f"input views: {', '.join(config.input_views)} only (the others are fed as missing)")
        self.evaluator = (
            MeshEvaluator(benchmark, model, crop, config.eval_samples, config.batch_size, views=self.input_views)
            if benchmark is not None
            else None
        )

    def _skin_model(self, train_set: Dataset | None, out_dir: Path | None) -> SkinColorModel:
        config = self.config
        if config.skin_model is not None:
            self.notes.append(f"skin model: {config.skin_model}")
            return SkinColorModel.load(config.skin_model)
        if train_set is None:
            raise ConfigError("skin_model: null needs the training set to fit the skin-colour classifier on")
        skin, used = fit_skin_model(train_set, config.skin_fit_samples, progress=config.progress)
        message = f"skin model: fitted on the part labels of {used} training samples"
        if out_dir is not None:
            path = skin.save(out_dir / "skin_model.npz")
            message += f", saved as {path}"
        self.notes.append(message)
        return skin

    def network_description(self) -> dict[str, Any]:
        return config_to_dict(self.net_config)

    def loss(
        self, module: nn.Module, batch: Mapping[str, Tensor], epoch: int, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, Any], Any]:
        valid = batch["valid"]
        if self.single_view:
            used = choose_single_views(valid.cpu(), generator).to(valid.device)
        elif self.input_views is not None:
            used = valid & self.input_views.to(valid.device)
        elif self.network_kind == DFMVR_KIND and self.config.view_dropout:
            used = view_dropout(valid.cpu(), generator, self.net_config.view_dropout).to(valid.device)
        else:
            used = valid
        result = self.loss_fn(module, batch, used, epoch)
        scalars = {
            "terms": result.terms,
            "raw": result.raw,
            "views_used": used.float().sum(1).mean(),
        }
        return result.total, scalars, result.preview  # drawn only every image_every steps

    def evaluate(self, net: nn.Module) -> dict[str, Any]:
        return self.evaluator(net) if self.evaluator is not None else {}  # type: ignore[arg-type]

    def export(self, path: Path, extra: Mapping[str, Any]) -> Path:
        return save_checkpoint(path, self.net, model_fingerprint=self.fingerprint, extra=dict(extra))


SKIN_PIXEL_PARTS = (FacePart.SKIN, FacePart.NOSE)
"""Part labels whose pixels are skin examples when fitting the skin-colour classifier (every other pixel, including
the background, eyes, brows and lips, is a non-skin example; ears and neck are labelled OTHER like the background,
a small bias the classifier tolerates)."""


def fit_skin_model(dataset: Dataset, count: int, *, progress: bool = False) -> tuple[SkinColorModel, int]:
    """Fit Deep3DFace's skin-colour classifier on the first ``count`` samples with ground-truth part labels.

    Args:
        dataset: training samples with ``images`` (V, 3, S, S) and ``parts`` (V, S, S) :class:`FacePart` labels;
            samples with ``has_3d`` False (real triplets: their parts are not ground truth) are skipped.
        count: samples to use (fewer when the dataset is smaller).

    Returns:
        ``(model, samples used)``.

    Raises:
        ConfigError: no usable sample.
    """
    total = len(dataset)  # type: ignore[arg-type]
    skin_values = torch.tensor([int(p) for p in SKIN_PIXEL_PARTS])

    used = [0]

    def pairs() -> Any:
        for index in tqdm(range(total), desc="fitting the skin model", disable=not progress, leave=False):
            if used[0] >= count:
                break
            sample = dataset[index]
            if "has_3d" in sample and not bool(sample["has_3d"]):
                continue
            used[0] += 1
            yield sample["images"].movedim(1, -1), torch.isin(sample["parts"], skin_values)

    try:
        return SkinColorModel.fit_batches(pairs()), used[0]
    except DfmvrError as exc:
        raise ConfigError(
            f"skin_model: could not fit the skin-colour classifier on the training set ({exc}); give a skin_model file"
        ) from None


def load_init_checkpoint(net: nn.Module, path: Path, model: MorphableModel) -> tuple[str, TrainingBudget]:
    """Initialise ``net`` from a network checkpoint (``init_checkpoint``), e.g. a trained R-Net for the C-Net stage.

    Every tensor of the checkpoint must exist in ``net`` with the same shape; ``net``'s tensors that the checkpoint
    lacks keep their fresh initialisation (the C-Net when starting from a ``deep3dface`` R-Net checkpoint). The
    checkpoint must be for ``model`` (fingerprint) and of the same network kind.

    Returns:
        A note for the log (what was loaded, what stays fresh), and the checkpoint's training budget (what training
        it cost, :func:`~dfmvr_training.compare_budget.budget_from_extra`; added to this run's budget on export).

    Raises:
        ModelFileError: unreadable or invalid checkpoint, another morphable model.
        ConfigError: another network kind, checkpoint tensors that ``net`` lacks or whose shapes differ.
    """
    checkpoint = load_checkpoint(
        path,
        kind=getattr(net, "kind", DFMVR_KIND),
        sizes=model.coefficient_sizes,
        expression_kind=model.expression_kind,
        model_fingerprint=model.fingerprint(),
    )
    own = net.state_dict()
    unexpected = sorted(set(checkpoint.state_dict) - set(own))
    if unexpected:
        raise ConfigError(
            f"init_checkpoint: {path} holds {len(unexpected)} tensors this network lacks (e.g. {unexpected[0]!r}); "
            "it is a checkpoint of another architecture"
        )
    mismatched = [k for k, v in checkpoint.state_dict.items() if tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        k = mismatched[0]
        raise ConfigError(
            f"init_checkpoint: {path}: {k!r} has shape {tuple(checkpoint.state_dict[k].shape)}, this network "
            f"{tuple(own[k].shape)} (another backbone depth or width?)"
        )
    net.load_state_dict(checkpoint.state_dict, strict=False)
    fresh = sorted({k.split(".")[0] for k in set(own) - set(checkpoint.state_dict)})
    note = f"initialised from {path} ({checkpoint.config.name}, {len(checkpoint.state_dict)} tensors)" + (
        f"; fresh: {', '.join(fresh)}" if fresh else ""
    )
    return note, budget_from_extra(checkpoint.extra)


def staged_budget(prior: TrainingBudget | None, own: TrainingBudget) -> dict[str, Any] | None:
    """The whole training cost of a run that started from another run's checkpoint (``init_checkpoint``): both
    stages' steps and wall time summed, for ``extra["budget"]`` (what ``dfmvr eval --compare`` reads).

    Returns:
        The summed budget with ``stages`` (each stage's own), or None: no prior stage, or a prior stage whose
        budget is not recorded or was run with another batch size or process count (then steps cannot be summed;
        each checkpoint still records its own stage).
    """
    if prior is None or prior.steps is None or own.steps is None:
        return None
    if prior.batch_size != own.batch_size or prior.world_size != own.world_size:
        return None
    seconds = None if prior.seconds is None or own.seconds is None else round(prior.seconds + own.seconds, 1)
    data = tuple(dict.fromkeys((prior.data or ()) + (own.data or ()))) or None
    devices = list(dict.fromkeys(d for d in (prior.device, own.device) if d))
    summed = TrainingBudget(
        steps=prior.steps + own.steps,
        batch_size=own.batch_size,
        world_size=own.world_size,
        seconds=seconds,
        device=" + ".join(devices) or None,
        data=data,
    )
    return {**summed.to_dict(), "stages": [prior.to_dict(), own.to_dict()]}


def _floats(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested scalars to ``{"a/b": float}``."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_floats(value, f"{name}/"))
        elif isinstance(value, Tensor):
            out[name] = float(value.detach().float().mean())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


class Trainer:
    """Trains DF-MVR (or the face parser) as configured; see the module docstring.

    Args:
        config: the run's :class:`TrainConfig`.
        resume: False (fresh run; refuses an ``out_dir`` that already holds checkpoints), True (continue from
            ``out_dir/checkpoints/latest.json``) or a path to a ``training_state.pt`` (or its checkpoint folder).
        dist_context: this process's place in a DDP run (:func:`~dfmvr_training.distributed.init_distributed`);
            None = one process on ``config.device``.

    Attributes:
        step: optimiser steps done. ``total_steps``, ``steps_per_epoch``: the run's length.
        net: the network (not DDP-wrapped); ``module``: what the forward pass calls (DDP-wrapped under DDP).
        losses: total loss of every step run by this object (for tests and summaries).

    Raises:
        ConfigError: inconsistent config (crop size, AMP on CPU, dataset too small, resume mismatch, ...).
        ModelFileError: unreadable model, dataset, parser or training-state file.
    """

    def __init__(
        self, config: TrainConfig, *, resume: bool | str | Path = False, dist_context: DistContext | None = None
    ) -> None:
        self.config = config
        self.dist = dist_context or DistContext(device=resolve_device(config.device))
        self.device = self.dist.device
        self.out_dir = Path(config.out_dir)
        if config.amp != "none" and self.device.type != "cuda":
            raise ConfigError(f"amp: {config.amp!r} autocast needs a CUDA device, the run uses {self.device}")
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        self._check_out_dir(resume)

        model = load_morphable_model(config.morphable_model).to(self.device, torch.float32)
        self.model = model
        fingerprint = model.fingerprint()
        dataset, crop = open_datasets(config.data, model.coefficient_sizes, fingerprint, "data")
        self.crop = crop
        # The parser trains on the ground-truth parts; only the reconstruction network takes a mask input.
        mask_source = config.mask_input_source if config.mode == "reconstruction" else "rendered"
        self.train_set = MaskedViews(dataset, mask_source, crop.size)
        benchmark = None
        if config.benchmark is not None and self.dist.is_main:
            bench, bench_crop = open_datasets([config.benchmark], model.coefficient_sizes, fingerprint, "benchmark")
            if bench_crop != crop:
                raise ConfigError(f"benchmark: crop camera {bench_crop} differs from the training data's {crop}")
            benchmark = MaskedViews(bench, mask_source, crop.size)

        torch.manual_seed(config.seed)  # the initial weights (DDP broadcasts rank 0's anyway)
        if config.mode == "parser":
            self.task: Any = ParserTask(self.device, config.amp, benchmark, config.eval_samples, config.batch_size)
        else:
            out_dir = self.out_dir if self.dist.is_main else None
            self.task = ReconstructionTask(config, model, crop, self.device, benchmark, self.train_set, out_dir)
        self.net: nn.Module = self.task.net
        self.module: nn.Module = getattr(self.task, "train_module", self.net)
        if self.dist.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = DistributedDataParallel(self.module, device_ids=device_ids)
        if config.compile:
            self.module = torch.compile(self.module)  # self.net (evaluation, checkpoints) stays the eager module

        self.sampler = ResumableSampler(self.train_set, self.dist.world_size, self.dist.rank, config.seed)
        self.steps_per_epoch = self.sampler.num_samples // config.batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"batch_size: {config.batch_size} per process × {self.dist.world_size} process(es) is more than the "
                f"{len(self.train_set)} training samples"
            )
        self.total_steps = config.steps if config.steps is not None else config.epochs * self.steps_per_epoch
        self.loader = DataLoader(
            self.train_set,
            batch_size=config.batch_size,
            sampler=self.sampler,
            num_workers=config.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            persistent_workers=config.num_workers > 0,
        )
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp == "fp16" and self.device.type == "cuda")
        self.generator = torch.Generator().manual_seed(config.seed * 1009 + 7919 * self.dist.rank + 1)
        self.step = 0
        self.losses: list[float] = []
        self.last_eval: dict[str, Any] = {}
        self._preview: Any = None
        self._last_checkpoint_step = -1
        self._seconds_before = 0.0  # fit() wall time of earlier (resumed) runs
        self._fit_started: float | None = None

        resumed_from = None
        if resume:
            resumed_from = self._resume(resume)
        self.logger = MetricsLogger(
            self.out_dir,
            tensorboard=config.tensorboard,
            enabled=self.dist.is_main,
            resume_step=self.step if resumed_from is not None else None,
        )
        if self.dist.is_main:
            write_text_atomic(
                self.out_dir / "config.yaml", yaml.safe_dump({"train": train_config_to_dict(config)}, sort_keys=False)
            )
            self.logger.write(
                {
                    "kind": "info",
                    "step": self.step,
                    "message": "start" if resumed_from is None else f"resumed from {resumed_from}",
                    "mode": config.mode,
                    "world_size": self.dist.world_size,
                    "device": str(self.device),
                    "total_steps": self.total_steps,
                    "steps_per_epoch": self.steps_per_epoch,
                    "loss_weights": dataclasses.asdict(config.loss_weights),
                }
            )
            notes = list(getattr(self.task, "notes", []))
            if config.mode == "reconstruction":
                notes += [config.mask_loss_disabled_reason, config.perception_loss_disabled_reason]
            for note in notes:
                if note:
                    self.logger.write({"kind": "info", "step": self.step, "message": note})
                    print(f"dfmvr train: note: {note}", file=sys.stderr)

    # ------------------------------------------------------------------------------------------------ set-up
    def _lr_factor(self, step: int) -> float:
        """Cosine annealing from 1 to 0 over the run (paper V-A: "decays with the cosine anneal schedule"), times a
        linear warm-up from ``1 / warmup_steps`` to 1 over the first ``warmup_steps`` steps (none by default)."""
        warmup = min(1.0, (step + 1) / self.config.warmup_steps) if self.config.warmup_steps else 1.0
        if self.config.lr_schedule == "constant":
            return warmup
        return warmup * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))

    def _check_out_dir(self, resume: bool | str | Path) -> None:
        latest = self.out_dir / "checkpoints" / "latest.json"
        if resume is False and latest.is_file():
            raise ConfigError(
                f"out_dir: {self.out_dir} already holds a run ({latest}); pass --resume to continue it or choose "
                "another --out"
            )

    def _resume(self, resume: bool | str | Path) -> Path:
        if resume is True:
            latest = self.out_dir / "checkpoints" / "latest.json"
            try:
                pointer = json.loads(latest.read_text())
                path = self.out_dir / "checkpoints" / pointer["dir"] / "training_state.pt"
            except FileNotFoundError:
                raise ModelFileError(f"{latest}: no checkpoint to resume from in {self.out_dir}") from None
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelFileError(f"{latest}: unreadable checkpoint pointer ({exc})") from None
        else:
            path = Path(resume)
            if path.is_dir():
                path = path / "training_state.pt"
        state = read_training_state(path, map_location=self.device)
        config = self.config
        problems = []
        if state["mode"] != config.mode:
            problems.append(f"mode {state['mode']!r} (this run: {config.mode!r})")
        if state["network"] != self.task.network_description():
            problems.append("another network architecture")
        if state.get("model_fingerprint") != self.task.fingerprint:
            stored = state.get("model_fingerprint")
            problems.append(f"morphable model fingerprint {stored} (this run: {self.task.fingerprint})")
        if state["world_size"] != self.dist.world_size:
            problems.append(f"world_size {state['world_size']} (this run: {self.dist.world_size})")
        for key in ("batch_size", "seed"):
            if state["config"].get(key) != getattr(config, key):
                problems.append(f"{key} {state['config'].get(key)!r} (this run: {getattr(config, key)!r})")
        if problems:
            raise ConfigError(f"resume: {path} was written by another run: " + "; ".join(problems))
        try:
            self.net.load_state_dict(state["model"], strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path}: training state does not fit this run ({first})") from None
        rng = state["rng"]
        if len(rng) != self.dist.world_size:
            raise ModelFileError(f"{path}: {len(rng)} random states stored, expected one per rank")
        try:
            restore_rng(rng[self.dist.rank], self.generator)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: invalid random-state entry ({exc})") from None
        self.step = int(state["step"])
        self._last_checkpoint_step = self.step
        extra = state.get("extra")
        seconds = extra.get("train_seconds", 0.0) if isinstance(extra, Mapping) else 0.0
        self._seconds_before = float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else 0.0
        return path

    # ------------------------------------------------------------------------------------------------ steps
    @property
    def epoch(self) -> int:
        """0-based epoch of the next step."""
        return self.step // self.steps_per_epoch

    def train_step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        """One optimisation step on a collated batch: forward (with view dropout), render, losses, backward,
        gradient clipping, Adam step, scheduler step.

        Returns:
            ``{"loss", "lr", "grad_norm", "terms/<term>", "raw/<term>", ...}`` as floats (``lr`` is the rate this
            step used).
        """
        self.net.train()
        batch = to_device(batch, self.device)
        lr = self.optimizer.param_groups[0]["lr"]
        total, scalars, preview = self.task.loss(self.module, batch, self.epoch, self.generator)
        value = float(total.detach())
        if not math.isfinite(value):
            raise DfmvrError(
                f"step {self.step}: the loss is {value}; lower lr or enable grad_clip_norm (terms: {_floats(scalars)})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        grad_norm = math.nan
        if self.config.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.losses.append(value)
        self._preview = preview
        return {"loss": value, "lr": lr, "grad_norm": grad_norm, **_floats(scalars)}

    def evaluate(self) -> dict[str, Any]:
        """Evaluate on the benchmark (rank 0; ``{}`` elsewhere or without a benchmark) and log the result."""
        if not self.dist.is_main:
            return {}
        start = time.perf_counter()
        result = self.task.evaluate(self.net)
        if result:
            result = {**result, "seconds": round(time.perf_counter() - start, 2)}
            self.last_eval = result
            self.logger.write({"kind": "eval", "step": self.step, "epoch": self.epoch, **result})
            self.logger.scalars(self.step, _floats(result), "eval")
        return result

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step_XXXXXXXX/`` (training state + exported network) and ``latest.json``.

        Every rank must call it (the random states of all ranks are gathered); rank 0 writes. Returns the folder on
        rank 0, None elsewhere.
        """
        rng = all_gather_objects(self.dist, capture_rng(self.generator))
        self._last_checkpoint_step = self.step
        if not self.dist.is_main:
            return None
        folder = self.out_dir / "checkpoints" / f"step_{self.step:08d}"
        write_training_state(
            folder / "training_state.pt",
            mode=self.config.mode,
            step=self.step,
            world_size=self.dist.world_size,
            config=train_config_to_dict(self.config),
            network=self.task.network_description(),
            model_fingerprint=self.task.fingerprint,
            model={k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {},
            rng=rng,
            extra={"epoch": self.epoch, "last_eval": self.last_eval, "train_seconds": self.train_seconds},
        )
        self.task.export(folder / self.task.export_name, self._export_extra())
        write_json_atomic(
            self.out_dir / "checkpoints" / "latest.json",
            {
                "step": self.step,
                "dir": folder.name,
                "training_state": "training_state.pt",
                "network": self.task.export_name,
            },
        )
        self._prune_checkpoints()
        return folder

    @property
    def train_seconds(self) -> float:
        """Wall time spent in :meth:`fit` so far, over every resumed run (seconds): the training budget."""
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return round(self._seconds_before + running, 1)

    def _export_extra(self) -> dict[str, Any]:
        extra = self._own_extra()
        budget = staged_budget(getattr(self.task, "prior_budget", None), budget_from_extra(extra))
        if budget is not None:
            extra["budget"] = budget
        return extra

    def _own_extra(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "world_size": self.dist.world_size,
            "device": str(self.device),
            "train_seconds": self.train_seconds,
            "epoch": self.epoch,
            "train_config": train_config_to_dict(self.config),
            "crop_camera": dataclasses.asdict(self.crop),
            "mask_input_source": self.config.mask_input_source,
            "loss_weights": dataclasses.asdict(self.config.loss_weights),
            "eval": {k: v for k, v in self.last_eval.items() if isinstance(v, (int, float, str))},
        }

    def _prune_checkpoints(self) -> None:
        folders = sorted(p for p in (self.out_dir / "checkpoints").iterdir() if p.is_dir() and _STEP_DIR.match(p.name))
        for old in folders[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        """Train until ``total_steps``; checkpoints, logs and evaluates on the way; exports the final network.

        Returns:
            Summary: steps, final loss, steps/s, last evaluation, path of the final network (rank 0).
        """
        config = self.config
        show = config.progress and self.dist.is_main
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"dfmvr train ({config.mode})", disable=not show)
        start_step, start_time = self.step, time.perf_counter()
        self._fit_started = start_time
        window_step, window_time = self.step, start_time
        try:
            while self.step < self.total_steps:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_position(epoch, offset * config.batch_size)
                for batch in self.loader:
                    logs = self.train_step(batch)
                    bar.update(1)
                    bar.set_postfix(loss=f"{logs['loss']:.4f}")
                    step = self.step
                    if step % config.log_every == 0 or step == self.total_steps:
                        now = time.perf_counter()
                        rate = (step - window_step) / max(now - window_time, 1e-9)
                        window_step, window_time = step, now
                        record = {"kind": "train", "step": step, "epoch": self.epoch, **logs, "steps_per_s": rate}
                        self.logger.write(record)
                        scalars = {k: v for k, v in record.items() if k not in ("kind", "step")}
                        self.logger.scalars(step, scalars, "train")
                    if config.image_every and step % config.image_every == 0 and self.dist.is_main:
                        self.logger.image(step, f"{config.mode}/preview", self._preview(), self.out_dir / "preview.png")
                    if config.eval_every and step % config.eval_every == 0 and step < self.total_steps:
                        self.evaluate()
                    if step % config.checkpoint_every == 0:
                        self.save_checkpoint()
                    if self.step >= self.total_steps:
                        break
        except KeyboardInterrupt:
            bar.close()
            if not self.dist.distributed and self.step > self._last_checkpoint_step:
                folder = self.save_checkpoint()
                print(f"dfmvr train: interrupted at step {self.step}; checkpoint {folder}", file=sys.stderr)
            self.logger.close()
            raise
        bar.close()
        if self._last_checkpoint_step != self.step:
            self.save_checkpoint()
        self.evaluate()
        seconds = time.perf_counter() - start_time
        final = None
        if self.dist.is_main:
            final = self.task.export(self.out_dir / self.task.export_name, self._export_extra())
            self.logger.write({"kind": "info", "step": self.step, "message": "done", "final": str(final)})
        self.logger.close()
        return {
            "steps": self.step,
            "steps_this_run": self.step - start_step,
            "seconds": seconds,
            "steps_per_s": (self.step - start_step) / seconds if seconds > 0 else math.nan,
            "final_loss": self.losses[-1] if self.losses else None,
            "eval": self.last_eval,
            "final": final,
        }
