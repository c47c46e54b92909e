"""The embedded default model: the trained ``small`` checkpoint shipped inside the package (``checkpoint: default``).

The file lives at ``dfmvr_core/weights/small_ict_synthetic.pt`` (float16 weights, see
:func:`~dfmvr_core.inference.checkpoint.save_checkpoint`), is installed as package data, and is for the ICT-FaceKit
model it was trained with (its fingerprint is in the file; :func:`~dfmvr_core.inference.checkpoint.load_checkpoint`
refuses another model). Its model card is the README's "The default model" section.
"""

from __future__ import annotations

from pathlib import Path

from dfmvr_core.errors import ModelFileError

__all__ = ["DEFAULT_CHECKPOINT", "DEFAULT_NETWORK", "pack_checkpoint", "packaged_checkpoint_path", "resolve_checkpoint"]

DEFAULT_CHECKPOINT = "default"
"""The ``checkpoint`` value (config, CLI) that names the embedded model."""
DEFAULT_NETWORK = "small"
"""The network config the embedded model is for."""
_FILE = "small_ict_synthetic.pt"


def packaged_checkpoint_path() -> Path:
    """Where the embedded checkpoint is installed (it may be absent from a source checkout without weights)."""
    return Path(__file__).resolve().parents[1] / "weights" / _FILE


def resolve_checkpoint(value: str | Path | None, *, packaged: Path | None = None) -> Path | None:
    """The checkpoint file ``value`` names: ``"default"`` → the embedded model, anything else as given.

    Args:
        value: a path, ``"default"``, or None (no checkpoint: fresh weights).
        packaged: the embedded file's location (default :func:`packaged_checkpoint_path`; tests pass another).

    Raises:
        ModelFileError: ``"default"`` but the embedded model is not installed (names where it was expected).
    """
    if value is None:
        return None
    if str(value) != DEFAULT_CHECKPOINT:
        return Path(value)
    path = packaged or packaged_checkpoint_path()
    if not path.is_file():
        raise ModelFileError(
            f"checkpoint 'default': the embedded default model is not installed (expected {path}); reinstall dfmvr "
            "from a checkout that has it, or pass a trained checkpoint file"
        )
    return path


def pack_checkpoint(source: str | Path, target: str | Path, *, weights_dtype: str = "float16") -> Path:
    """Rewrite a trained checkpoint compactly for shipping: float16 weights, the trainer's ``extra`` kept minus the
    bulky entries (the full training config stays, so the recipe travels with the weights).

    Args:
        source: a checkpoint written by the trainer (``model.pt``).
        target: the output file (e.g. ``dfmvr_core/weights/small_ict_synthetic.pt``), written atomically.
        weights_dtype: storage type of the floating-point weights (``float16`` halves the file).

    Raises:
        ModelFileError: ``source`` is missing, corrupt or not a dfmvr checkpoint.
    """
    from dfmvr_core.inference.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(source)
    net = checkpoint.build_network("cpu")
    return save_checkpoint(
        target,
        net,
        model_fingerprint=checkpoint.model_fingerprint,
        extra={**checkpoint.extra, "packed_from": Path(source).name},
        weights_dtype=weights_dtype,
    )
