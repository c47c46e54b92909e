"""The comparison spec of ``dfmvr eval --compare``: which checkpoints to score side by side on one benchmark.

A YAML file with a ``compare:`` section (see ``config/eval/compare_example.yaml``)::

    compare:
      benchmark: out/data/benchmark          # a synthetic split (dfmvr make-dataset --split benchmark)
      morphable_model: ../shared/data/ict_facekit/ict_face_full_fp32.npz
      out_dir: runs/compare
      eval_samples: 50                       # the first N samples (null: all)
      mean_face: true                        # add the model's mean face as a row
      entries:
        - {label: DF-MVR (small), checkpoint: runs/small/model.pt, views: [left, front, right]}
        - {label: DF-MVR (small) front only, checkpoint: runs/small/model.pt, views: [front]}

Relative paths are used as given, i.e. relative to the current working directory (as in ``dfmvr train``). Every
field is validated when the spec is built; errors are :class:`~dfmvr_core.errors.ConfigError` naming the file,
the entry (index and label) and the field, e.g. ``compare.entries[1] ('front only').views: ...``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dfmvr_core.config import from_mapping
from dfmvr_core.errors import ConfigError

__all__ = [
    "MASK_SOURCES",
    "MEAN_FACE_LABEL",
    "SPEC_SECTION",
    "CompareEntry",
    "CompareSpec",
    "label_slug",
    "load_compare_spec",
    "parse_entry_arg",
]

SPEC_SECTION = "compare"
CAMERAS = ("left", "front", "right")  # = dfmvr_training.benchmark_eval.CAMERA_ORDER (no import: that pulls torch)
MASK_SOURCES = ("landmarks", "rendered")
MEAN_FACE_LABEL = "Mean face"
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def label_slug(label: str) -> str:
    """Folder name of an entry: the label lower-cased, runs of other characters than ``a-z0-9`` as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "entry"


@dataclass(frozen=True)
class CompareEntry:
    """One row of the table: a checkpoint given some of the cameras.

    Attributes:
        label: the method's name in the table (unique; no ``|`` or line breaks).
        checkpoint: a checkpoint :func:`dfmvr_core.inference.checkpoint.load_checkpoint` reads (DF-MVR or a
            baseline), trained for the benchmark's morphable model.
        views: the cameras the network is given, a subset of ``(left, front, right)``, stored in that order
            (``[front]``: the single-view setting).
        network: expected network config name (checked against the checkpoint), or None (whatever it holds).
    """

    label: str
    checkpoint: Path
    views: tuple[str, ...] = CAMERAS
    network: str | None = None

    def __post_init__(self) -> None:
        if not self.label.strip() or "|" in self.label or "\n" in self.label:
            raise ConfigError(f"label: expected a non-empty name without '|' or line breaks, got {self.label!r}")
        unknown = [v for v in self.views if v not in CAMERAS]
        if unknown or not self.views or len(set(self.views)) != len(self.views):
            raise ConfigError(
                f"views: expected a non-empty list of distinct cameras from {list(CAMERAS)}, got {list(self.views)}"
            )
        object.__setattr__(self, "views", tuple(c for c in CAMERAS if c in self.views))
        if self.network is not None and not self.network.strip():
            raise ConfigError("network: expected a network config name or null, got an empty string")

    @property
    def slug(self) -> str:
        """Folder of this entry's results under ``out_dir/entries/``."""
        return label_slug(self.label)


@dataclass(frozen=True)
class CompareSpec:
    """Everything ``dfmvr eval --compare`` needs (YAML ``compare:`` section).

    Attributes:
        benchmark: the synthetic benchmark split every entry is scored on.
        morphable_model: the model the benchmark was rendered with (fingerprints are checked).
        out_dir: output folder (``comparison.md``, ``comparison.json``, ``entries/<slug>/``).
        entries: the checkpoints to compare (may be empty with ``mean_face``).
        mean_face: add a row for the model's mean face (the trivial baseline).
        eval_samples: score the first N samples (None: all); every entry gets the same ones.
        mask_source: face masks given to the networks: ``landmarks`` (drawn from the 68 points, as the node does
            without a parser) or ``rendered`` (the benchmark's part labels). Baselines ignore them.
        batch_size: samples per forward pass.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available) for the networks; the metric runs
            on the CPU.
        error_maps: per entry, error maps of the first N samples (None: every sample, 0: none).
        max_mm: the error shown red in the maps.
        map_size: error-map side in pixels.
        fail_fast: stop at the first entry that fails (default: mark it failed in the table and go on).
    """

    benchmark: Path
    morphable_model: Path
    out_dir: Path
    entries: tuple[CompareEntry, ...] = ()
    mean_face: bool = True
    eval_samples: int | None = None
    mask_source: str = "landmarks"
    batch_size: int = 8
    device: str = "cpu"
    error_maps: int | None = None
    max_mm: float = 5.0
    map_size: int = 384
    fail_fast: bool = False

    def __post_init__(self) -> None:
        if not self.entries and not self.mean_face:
            raise ConfigError("entries: nothing to compare (no entries and mean_face: false)")
        seen: dict[str, int] = {}
        reserved = {label_slug(MEAN_FACE_LABEL)} if self.mean_face else set()
        for i, entry in enumerate(self.entries):
            if entry.slug in reserved:
                raise ConfigError(
                    f"entries[{i}] ({entry.label!r}).label: reserved for the mean-face row (mean_face: true)"
                )
            if entry.slug in seen:
                raise ConfigError(
                    f"entries[{i}] ({entry.label!r}).label: same name (folder {entry.slug!r}) as "
                    f"entries[{seen[entry.slug]}] ({self.entries[seen[entry.slug]].label!r}); labels must differ"
                )
            seen[entry.slug] = i
        if self.eval_samples is not None and self.eval_samples < 1:
            raise ConfigError(f"eval_samples: expected a number of samples >= 1 or null, got {self.eval_samples}")
        if self.mask_source not in MASK_SOURCES:
            raise ConfigError(f"mask_source: expected one of {MASK_SOURCES}, got {self.mask_source!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: expected an integer >= 1, got {self.batch_size}")
        if not _DEVICE.match(self.device):
            raise ConfigError(f"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if self.error_maps is not None and self.error_maps < 0:
            raise ConfigError(f"error_maps: expected a count >= 0 or null (every sample), got {self.error_maps}")
        if not self.max_mm > 0:
            raise ConfigError(f"max_mm: expected a positive error in mm, got {self.max_mm}")
        if not 96 <= self.map_size <= 8192:
            raise ConfigError(f"map_size: expected 96 to 8192 pixels, got {self.map_size}")


def _entry_path(index: int, raw: Any) -> str:
    label = raw.get("label") if isinstance(raw, Mapping) else None
    return f"{SPEC_SECTION}.entries[{index}]" + (f" ({label!r})" if isinstance(label, str) else "")


def load_compare_spec(
    source: str | Path | Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None
) -> CompareSpec:
    """A :class:`CompareSpec` from a YAML file's ``compare:`` section or a mapping, with optional overrides.

    Args:
        source: YAML path, the ``compare`` mapping itself, or None (everything from ``overrides``).
        overrides: field → value applied on top (the command line's ``--benchmark``, ``--model``, ``-o``,
            ``--samples``, ...); ``entries`` given here are appended to the file's.

    Raises:
        ConfigError: missing/invalid file, unknown field, invalid value; the message names the file,
            ``compare.<field>`` and, for an entry, its index and label.
    """
    origin = "compare spec"
    data: Any = {}
    if isinstance(source, Mapping):
        data = source
    elif source is not None:
        path = Path(source)
        origin = str(path)
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: comparison spec not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, expected a YAML file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(document, Mapping) or SPEC_SECTION not in document:
            raise ConfigError(f"{path}: expected a top-level '{SPEC_SECTION}' section")
        data = document[SPEC_SECTION]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: {SPEC_SECTION}: expected a mapping, got {type(data).__name__}")
    overrides = dict(overrides or {})
    extra_entries = list(overrides.pop("entries", []))
    merged = {**data, **overrides}
    try:
        entries = merged.get("entries", [])
        if entries is None:
            entries = []
        if not isinstance(entries, (list, tuple)):
            raise ConfigError(f"{SPEC_SECTION}.entries: expected a list of entries, got {type(entries).__name__}")
        built = [
            e if isinstance(e, CompareEntry) else from_mapping(CompareEntry, e, path=_entry_path(i, e))
            for i, e in enumerate([*entries, *extra_entries])
        ]
        mean_face = merged.get("mean_face", True)
        if not isinstance(mean_face, bool):
            raise ConfigError(f"{SPEC_SECTION}.mean_face: expected true or false, got {mean_face!r}")
        # the other fields first (mean_face true: valid without entries), then the whole spec with its entries
        fields = {k: v for k, v in merged.items() if k not in ("entries", "mean_face")}
        spec = from_mapping(CompareSpec, fields, path=SPEC_SECTION)
        return dataclasses.replace(spec, entries=tuple(built), mean_face=mean_face)
    except ConfigError as exc:
        message = str(exc)
        if not message.startswith(f"{SPEC_SECTION}."):
            message = f"{SPEC_SECTION}.{message}"
        raise ConfigError(f"{origin}: {message}") from None


def parse_entry_arg(text: str) -> CompareEntry:
    """``LABEL=CHECKPOINT[:VIEWS]`` (the command line's ``--entry``) → :class:`CompareEntry`.

    ``VIEWS`` is a comma-separated list of cameras (``front``, ``left,front,right``); without it, all three.
    A ``:`` inside the checkpoint path is kept unless what follows the last one is such a list.

    Raises:
        ConfigError: naming the argument and the expected form.
    """
    form = "expected LABEL=CHECKPOINT[:VIEWS], e.g. 'DF-MVR front=runs/small/model.pt:front'"
    label, sep, rest = text.partition("=")
    if not sep or not label.strip() or not rest:
        raise ConfigError(f"--entry {text!r}: {form}")
    checkpoint, views = rest, list(CAMERAS)
    head, colon, tail = rest.rpartition(":")
    if colon and head and tail and all(v.strip() in CAMERAS for v in tail.split(",")):
        checkpoint, views = head, [v.strip() for v in tail.split(",")]
    try:
        return CompareEntry(label=label.strip(), checkpoint=Path(checkpoint), views=tuple(views))
    except ConfigError as exc:
        raise ConfigError(f"--entry {text!r}: {exc}") from None
