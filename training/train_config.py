"""Configuration of ``dfmvr train``: a frozen, validated dataclass loaded from a YAML file's ``train:`` section.

Paper V-A fixes the recipe this config defaults to: Adam, initial learning rate 1e-4, cosine annealing (to 0 over
the run here), batch 16 on 2 GPUs for 512 epochs (the batch size and length are the user's to choose on other
hardware). Every field is checked when the config is built; errors are :class:`~dfmvr_core.errors.ConfigError`
naming the dotted field (``train.batch_size: ...``).

Relative paths (data, benchmark, morphable model, parser checkpoint, network YAML, out_dir) are used as given, i.e.
relative to the **current working directory** (the repository root in the documented commands), not to the YAML
file.

``network`` may also name a comparison baseline (``deep3dface``, ``deep3dface_cnet``, ``uh_e2far`` or a YAML file /
inline ``network_config`` with ``kind: deep3dface | uh_e2far``, :mod:`dfmvr_core.networks.registry`). The network's kind
picks the losses: ``losses:`` is parsed into :class:`~dfmvr_training.losses.LossWeights` (DF-MVR, presets ``paper`` /
``authors_code``), :class:`~dfmvr_training.losses.Deep3DFaceLossWeights` (preset ``deep3dface``) or
:class:`~dfmvr_training.losses.UHE2FARLossWeights` (preset ``uh_e2far``); without a ``preset`` the kind's own is used.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError
from dfmvr_core.inference.default_model import DEFAULT_CHECKPOINT, resolve_checkpoint
from dfmvr_core.networks.baseline_config import BaselineNetworkConfig
from dfmvr_core.networks.net_config import NetworkConfig, ablation_config
from dfmvr_core.networks.registry import (
    DFMVR_KIND,
    AnyNetworkConfig,
    load_any_network_config,
    network_config_from_dict,
    network_kind,
)
from dfmvr_training.losses import (
    Deep3DFaceLossWeights,
    LossWeights,
    UHE2FARLossWeights,
    ablation_loss_weights,
    load_deep3dface_loss_weights,
    load_loss_weights,
    load_uh_e2far_loss_weights,
)

__all__ = [
    "ABLATION_VARIANTS",
    "AMP_MODES",
    "INPUT_VIEW_NAMES",
    "MASK_INPUT_SOURCES",
    "MASK_LOSS_SOURCES",
    "TRAIN_MODES",
    "TRAIN_VIEWS",
    "TrainConfig",
    "load_train_config",
    "train_config_to_dict",
]

TRAIN_MODES = ("reconstruction", "parser")
"""``reconstruction``: DF-MVR weakly supervised (paper IV); ``parser``: the 10-class BiSeNet face parser on the
synthetic crops' part labels."""
MASK_INPUT_SOURCES = ("rendered", "landmarks")
"""Face masks fed to the network (and used by the photo/mask losses as the input's mask M): ``rendered`` = the
dataset's ground-truth part labels (a perfect parser); ``landmarks`` = polygons drawn from the 68 2D landmarks
(:func:`dfmvr_core.preprocess.parts_from_landmarks`), what the node uses without a parser."""
MASK_LOSS_SOURCES = ("parser", "none")
"""Mask loss (eq. 3): ``parser`` parses the renderings with a frozen BiSeNet (``parser_checkpoint``: the 19-class
face-parsing.PyTorch file or a 10-class one from ``--mode parser``); ``none`` forces ω_m = 0."""
AMP_MODES = ("none", "bf16", "fp16")
LR_SCHEDULES = ("cosine", "constant")
TRAIN_VIEWS = ("auto", "single", "all")
"""Views a baseline trains on per sample: ``single`` (one random valid view: Deep3DFace's R-Net and UH-E2FAR are
single-image methods), ``all`` (every valid view through the multi-view forward: the C-Net stage); ``auto`` = ``all``
for ``aggregation: cnet``, else ``single``. DF-MVR networks use ``view_dropout`` instead (``auto`` only)."""
INPUT_VIEW_NAMES = ("left", "front", "right")
"""Camera names of ``input_views``, in the rig's view order (the order of the datasets' views)."""
ABLATION_VARIANTS = ("v1", "v2", "v3", "v4", "v5", "v6")
"""Table IV: v1-v4 change the network (v4 also drops the mask loss), v5 drops the 3D landmark loss, v6 = full."""

_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def _int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}{' or null' if allow_none else ''}, got {value!r}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: expected one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``dfmvr train`` needs (YAML ``train:`` section; see ``config/training/*.yaml``).

    Attributes:
        data: dataset folders written by ``dfmvr make-dataset`` (split ``train``); concatenated.
        morphable_model: the morphable model file the datasets were rendered with (fingerprints are checked).
        benchmark: held-out dataset folder (split ``benchmark``) for evaluation, or None (no evaluation).
        mode: see :data:`TRAIN_MODES`.
        network: ``small`` / ``paper`` / a baseline (``deep3dface``, ``deep3dface_cnet``, ``uh_e2far``) or a YAML file
            with a ``network:`` section (ignored when ``network_config`` is given).
        network_config: an inline network definition (a :class:`NetworkConfig` mapping, or a
            :class:`BaselineNetworkConfig` one with ``kind``), e.g. a tiny one for tests.
        ablation: Table IV variant (:data:`ABLATION_VARIANTS`) or None (= v6, the full model); DF-MVR only.
        losses: loss weights: ``{preset: <preset>, <field>: value, ...}``, the fields of the network kind's weights
            (DF-MVR: presets ``paper`` (default) / ``authors_code``, :class:`LossWeights`; Deep3DFace: ``deep3dface``,
            :class:`Deep3DFaceLossWeights`; UH-E2FAR: ``uh_e2far``, :class:`UHE2FARLossWeights`).
        mask_input_source: :data:`MASK_INPUT_SOURCES`.
        mask_loss_source: :data:`MASK_LOSS_SOURCES`.
        parser_checkpoint: BiSeNet weights for ``mask_loss_source: parser``.
        init_checkpoint: a network checkpoint (``model.pt``) whose weights initialise the network before training;
            Deep3DFace's C-Net stage starts from a trained R-Net (a ``deep3dface`` checkpoint): its weights fill the
            R-Net, the C-Net starts fresh. Keys of the checkpoint that the network lacks are refused. ``default``:
            the embedded default model (fine-tuning it on your own captures).
        freeze_rnet: with ``aggregation: cnet``: keep the R-Net fixed (no gradients, BatchNorm statistics frozen) and
            train the C-Net only, label-free through the hybrid loss (Deep3DFace section 4). Needs ``init_checkpoint``.
        train_views: :data:`TRAIN_VIEWS` (baselines).
        perception_embedder: Deep3DFace's perception loss: a frozen face-recognition network mapping (N, 3, S, S)
            images to (N, D) embeddings, as a ``torch.export`` ``.pt2`` or TorchScript file
            (:func:`~dfmvr_training.losses.load_embedder`); null forces the perception weight to 0 (logged).
        skin_model: Deep3DFace's skin-colour classifier (``.npz``, :class:`~dfmvr_training.losses.SkinColorModel`);
            null fits one at the start of the run on the training set's part labels (skin + nose pixels vs the
            rest) and saves it as ``out_dir/skin_model.npz``.
        skin_fit_samples: how many training samples (the first ones with ground-truth parts) that fit uses.
        batch_size: samples per step and process (DDP: per rank).
        steps: optimiser steps of the run, or None with ``epochs``.
        epochs: passes over the data (``steps = epochs × batches per epoch``), or None with ``steps``.
        lr: Adam's initial learning rate (paper 1e-4).
        lr_schedule: ``cosine`` (paper: cosine annealing, to 0 at the last step) or ``constant``.
        warmup_steps: linear learning-rate warm-up over the first this many steps (0: none, the paper's schedule);
            lets a short run start at a higher peak rate without BatchNorm statistics running away.
        weight_decay: Adam's L2 weight decay (paper: none mentioned, 0).
        grad_clip_norm: clip the global gradient norm to this (None: no clipping).
        amp: ``none``, ``bf16`` or ``fp16`` autocast of the network forward (CUDA only; rendering and losses stay
            float32; fp16 uses a gradient scaler).
        view_dropout: paper V-C's training-time view dropout (probabilities from the network config).
        input_views: DF-MVR only: the cameras (names from ``left``, ``front``, ``right``, rig order) the network is
            given in training and in the run's evaluation; the others are fed as missing (black) views. None = all.
            ``[front]`` trains the single-view baseline of the same network and budget (issue 8's comparison). Needs
            ``view_dropout: false`` (the subset is fixed).
        seed: seeds the weights, the data order and the view dropout.
        num_workers: DataLoader worker processes (0 = load in the training process).
        checkpoint_every: write a checkpoint every this many steps (and always at the end).
        keep_checkpoints: how many step checkpoints to keep (the latest ones).
        eval_every: evaluate on the benchmark every this many steps (0: only at the end; needs ``benchmark``).
        eval_samples: how many benchmark samples (the first ones) to evaluate.
        log_every: write a metrics line every this many steps.
        image_every: TensorBoard image grids (input | rendering | error) every this many steps (0: never).
        tensorboard: write TensorBoard event files (needs the ``train`` extra).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available); under DDP on CUDA each rank uses
            ``cuda:LOCAL_RANK``.
        num_threads: torch CPU threads per process (None: torch's default).
        compile: run the training forward/backward through ``torch.compile`` (Inductor). The first step compiles
            (minutes on a CPU: about 11 on the project's 2 cores for ``small``; cached under the system temp dir for
            reruns and resumes), then ``small`` trains about 1.7x faster on the CPU. Evaluation and checkpoints use
            the uncompiled network (same weights).
        out_dir: run folder (config, metrics.jsonl, tb/, checkpoints/, model.pt).
        progress: show a tqdm progress bar.
    """

    data: tuple[Path, ...]
    morphable_model: Path
    benchmark: Path | None = None
    mode: str = "reconstruction"
    network: str = "small"
    network_config: NetworkConfig | BaselineNetworkConfig | None = None
    ablation: str | None = None
    losses: dict[str, Any] = field(default_factory=dict)
    mask_input_source: str = "rendered"
    mask_loss_source: str = "none"
    parser_checkpoint: Path | None = None
    init_checkpoint: Path | None = None
    freeze_rnet: bool = True
    train_views: str = "auto"
    perception_embedder: Path | None = None
    skin_model: Path | None = None
    skin_fit_samples: int = 200
    batch_size: int = 4
    steps: int | None = None
    epochs: int | None = None
    lr: float = 1.0e-4
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip_norm: float | None = 10.0
    amp: str = "none"
    view_dropout: bool = True
    input_views: tuple[str, ...] | None = None
    seed: int = 0
    num_workers: int = 2
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    eval_every: int = 1000
    eval_samples: int = 8
    log_every: int = 10
    image_every: int = 500
    tensorboard: bool = True
    device: str = "cpu"
    num_threads: int | None = None
    compile: bool = False
    out_dir: Path = Path("runs/train")
    progress: bool = True
    loss_weights: LossWeights | Deep3DFaceLossWeights | UHE2FARLossWeights = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.data, tuple) or not self.data or not all(isinstance(p, Path) for p in self.data):
            raise ConfigError(f"data: expected a non-empty list of dataset folders, got {self.data!r}")
        for name in ("morphable_model", "out_dir"):
            if not isinstance(getattr(self, name), Path):
                raise ConfigError(f"{name}: expected a path, got {getattr(self, name)!r}")
        for name in ("benchmark", "parser_checkpoint", "init_checkpoint", "perception_embedder", "skin_model"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), Path):
                raise ConfigError(f"{name}: expected a path or null, got {getattr(self, name)!r}")
        if self.init_checkpoint is not None and str(self.init_checkpoint) == DEFAULT_CHECKPOINT:
            object.__setattr__(self, "init_checkpoint", resolve_checkpoint(DEFAULT_CHECKPOINT))
        _choice("mode", self.mode, TRAIN_MODES)
        _choice("mask_input_source", self.mask_input_source, MASK_INPUT_SOURCES)
        _choice("mask_loss_source", self.mask_loss_source, MASK_LOSS_SOURCES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("train_views", self.train_views, TRAIN_VIEWS)
        if self.ablation is not None:
            _choice("ablation", self.ablation, ABLATION_VARIANTS)
        if not isinstance(self.network, str) or not self.network:
            raise ConfigError(f"network: expected a config name (small, paper) or a YAML path, got {self.network!r}")
        if self.network_config is not None and not isinstance(
            self.network_config, (NetworkConfig, BaselineNetworkConfig)
        ):
            raise ConfigError(f"network_config: expected a network mapping, got {type(self.network_config).__name__}")
        if self.mask_loss_source == "parser" and self.parser_checkpoint is None:
            raise ConfigError(
                "parser_checkpoint: required with mask_loss_source 'parser' (a BiSeNet .pth: face-parsing.PyTorch's "
                "19-class 79999_iter.pth or a 10-class parser from 'dfmvr train --mode parser'); "
                "or set mask_loss_source: none"
            )
        _int("batch_size", self.batch_size, 1)
        _int("steps", self.steps, 1, allow_none=True)
        _int("epochs", self.epochs, 1, allow_none=True)
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError(
                f"steps: give exactly one of steps and epochs, got steps={self.steps!r}, epochs={self.epochs!r}"
            )
        for name, low, high in (("lr", 0.0, 10.0), ("weight_decay", 0.0, 10.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"{name}: expected a number in [{low}, {high}], got {value!r}")
        if self.lr <= 0:
            raise ConfigError(f"lr: expected a learning rate > 0, got {self.lr!r}")
        clip = self.grad_clip_norm
        if clip is not None and (
            isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip < math.inf
        ):
            raise ConfigError(f"grad_clip_norm: expected a positive finite norm or null, got {clip!r}")
        for name in ("view_dropout", "tensorboard", "progress", "freeze_rnet", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        self._check_input_views()
        _int("seed", self.seed, 0)
        _int("num_workers", self.num_workers, 0)
        _int("checkpoint_every", self.checkpoint_every, 1)
        _int("keep_checkpoints", self.keep_checkpoints, 1)
        _int("warmup_steps", self.warmup_steps, 0)
        _int("eval_every", self.eval_every, 0)
        _int("eval_samples", self.eval_samples, 1)
        _int("log_every", self.log_every, 1)
        _int("image_every", self.image_every, 0)
        _int("num_threads", self.num_threads, 1, allow_none=True)
        _int("skin_fit_samples", self.skin_fit_samples, 1)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ConfigError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if not isinstance(self.losses, Mapping):
            raise ConfigError(f"losses: expected a mapping (preset + overrides), got {type(self.losses).__name__}")
        kind = self.network_kind
        if kind != DFMVR_KIND:
            self._check_baseline_options()
        elif self.train_views != "auto":
            raise ConfigError(
                f"train_views: {self.train_views!r} applies to baseline networks; DF-MVR trains on all views with "
                "view_dropout (use auto)"
            )
        try:
            weights = _kind_loss_weights(kind, self.losses)
        except ConfigError as exc:
            raise ConfigError(f"losses: {str(exc).removeprefix('loss weights: ')}") from None
        if isinstance(weights, LossWeights):
            if self.ablation is not None:
                weights = ablation_loss_weights(weights, self.ablation)
            if self.mask_loss_source == "none":
                weights = dataclasses.replace(weights, mask=0.0)
        if isinstance(weights, Deep3DFaceLossWeights) and self.perception_embedder is None:
            weights = dataclasses.replace(weights, perception=0.0)
        object.__setattr__(self, "loss_weights", weights)

    def _check_input_views(self) -> None:
        views = self.input_views
        if views is None:
            return
        if (
            not isinstance(views, tuple)
            or not views
            or len(set(views)) != len(views)
            or not set(views) <= set(INPUT_VIEW_NAMES)
        ):
            raise ConfigError(
                f"input_views: expected null or a non-empty list of distinct names from {list(INPUT_VIEW_NAMES)}, "
                f"got {views!r}"
            )
        if self.network_kind != DFMVR_KIND:
            raise ConfigError("input_views: applies to DF-MVR networks; baselines choose views with train_views")
        if self.view_dropout:
            raise ConfigError(
                f"input_views: {list(views)} fixes the views the network sees; set view_dropout: false (view dropout "
                "draws them at random)"
            )

    def _check_baseline_options(self) -> None:
        """Options that do not apply to (or are needed by) a baseline network."""
        config = self.network_definition()
        if self.ablation is not None:
            raise ConfigError(f"ablation: Table IV variants apply to DF-MVR networks, not to {config.name!r}")
        cnet = isinstance(config, BaselineNetworkConfig) and config.aggregation == "cnet"
        if cnet and self.train_views == "single":
            raise ConfigError(
                "train_views: 'single' cannot train the C-Net (aggregation cnet), which weighs the views of a sample; "
                "use auto or all"
            )
        if cnet and self.freeze_rnet and self.init_checkpoint is None:
            raise ConfigError(
                "init_checkpoint: the C-Net stage (aggregation cnet, freeze_rnet true) trains with a fixed R-Net, so "
                "it needs a trained R-Net checkpoint (train 'deep3dface' first); or set freeze_rnet: false"
            )

    @property
    def network_kind(self) -> str:
        """``dfmvr``, ``deep3dface`` or ``uh_e2far``: the kind of the network to train."""
        return network_kind(self.network_definition())

    @property
    def single_view(self) -> bool:
        """Whether a baseline trains on one view per sample (see :data:`TRAIN_VIEWS`); False for DF-MVR."""
        if self.network_kind == DFMVR_KIND:
            return False
        if self.train_views != "auto":
            return self.train_views == "single"
        config = self.network_definition()
        return not (isinstance(config, BaselineNetworkConfig) and config.aggregation == "cnet")

    @property
    def perception_loss_disabled_reason(self) -> str | None:
        """Why Deep3DFace's perception weight is 0 although the preset has one (logged at the start), or None."""
        if self.network_kind != "deep3dface" or self.perception_embedder is not None:
            return None
        if _kind_loss_weights("deep3dface", self.losses).perception == 0:
            return None
        return (
            "perception_embedder is null (no face-recognition network): Deep3DFace's perception loss (eq. 4) is off, "
            "w_per = 0"
        )

    @property
    def mask_loss_disabled_reason(self) -> str | None:
        """Why ω_m is 0 although the preset has a mask weight (logged at the start of a run), or None."""
        if self.network_kind != DFMVR_KIND:
            return None
        preset = load_loss_weights(dict(self.losses))
        if preset.mask == 0:
            return None
        if self.mask_loss_source == "none":
            return "mask_loss_source is 'none' (no face parser checkpoint): the mask loss (eq. 3) is off, ω_m = 0"
        if self.ablation == "v4":
            return "ablation v4 removes the mask loss: ω_m = 0"
        return None

    def network_definition(self) -> AnyNetworkConfig:
        """The network config to train: ``network_config`` or ``network`` (name/YAML), with ``ablation`` applied.

        Raises:
            ConfigError: unknown name, missing or invalid YAML (named).
        """
        base = self.network_config if self.network_config is not None else load_any_network_config(self.network)
        if self.ablation in (None, "v5", "v6") or not isinstance(base, NetworkConfig):
            return base
        return ablation_config(base, self.ablation)


def _kind_loss_weights(
    kind: str, losses: Mapping[str, Any]
) -> LossWeights | Deep3DFaceLossWeights | UHE2FARLossWeights:
    """``losses:`` parsed into the weights dataclass of the network ``kind`` (the kind's preset by default)."""
    data = dict(losses)
    preset = data.get("preset")
    owners = {"deep3dface": ("deep3dface",), "uh_e2far": ("uh_e2far",), DFMVR_KIND: ("paper", "authors_code")}
    if preset is not None and isinstance(preset, str) and preset not in owners[kind]:
        for other, presets in owners.items():
            if preset in presets:
                raise ConfigError(
                    f"preset: {preset!r} is the loss of {other!r} networks, but the network is a {kind!r} one; use "
                    f"one of {owners[kind]}"
                )
    if kind == "deep3dface":
        return load_deep3dface_loss_weights(data)
    if kind == "uh_e2far":
        return load_uh_e2far_loss_weights(data)
    return load_loss_weights(data)


def _normalize(data: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if isinstance(data.get("data"), (str, Path)):
        data["data"] = [data["data"]]
    inline = data.get("network_config")
    if isinstance(inline, Mapping):
        kind = inline.get("kind", DFMVR_KIND)
        if kind == DFMVR_KIND:
            data["network_config"] = {k: v for k, v in inline.items() if k != "kind"}
        else:  # a baseline (or an unknown kind): errors named for its class, not for NetworkConfig's
            network_config_from_dict(inline, "train.network_config")
    return data


def load_train_config(
    source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file's ``train:`` section or a mapping, with optional overrides.

    Args:
        source: YAML path, or the ``train`` mapping itself.
        overrides: field → value applied on top (e.g. from the command line: ``{"steps": 10, "epochs": None}``).

    Raises:
        ConfigError: missing/invalid file, unknown field, invalid value; the message names ``train.<field>``.
    """
    origin = "config"
    if isinstance(source, Mapping):
        data: Any = source
    else:
        path = Path(source)
        origin = str(path)
        try:
            document = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, expected a YAML file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(document, Mapping) or "train" not in document:
            raise ConfigError(f"{path}: expected a top-level 'train' section")
        data = document["train"]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: train: expected a mapping, got {type(data).__name__}")
    merged = _normalize({**data, **dict(overrides or {})})
    try:
        return from_mapping(TrainConfig, merged, path="train")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def train_config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON/YAML-ready form of ``config`` (paths as strings, tuples as lists); :func:`load_train_config` reads it."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    if config.network_config is not None:
        data["network_config"] = dataclasses.asdict(config.network_config)
    return plain(data)
