"""A trained segmenter applied to rasters: load a checkpoint safely, segment an image, pick the device.

The checkpoint is a Lightning checkpoint file (``CHECKPOINT_FILE`` inside each Ray checkpoint directory), loaded
with ``weights_only=True``. The image is padded through the fixed collate, segmented, and cropped back to its own
size. ``study.predict`` is the command line over this module; ``results.report`` uses it for its pictures.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from datamodules.cli import UsageError
from datamodules.collate import collate
from datamodules.labels import TASKS
from datamodules.synth import Sample
from models.extraction import candidates_table, class_candidates
from models.segmenter import Segmenter

CHECKPOINT_FILE = "checkpoint.ckpt"  # the Lightning checkpoint inside each Ray checkpoint directory


class PredictError(UsageError):
    """A user mistake or an unusable input: one line, exit status 2."""


@dataclass
class LoadedCheckpoint:
    """A segmenter restored from a checkpoint, in eval mode on ``device``.

    ``data`` holds the data module's hyperparameters the model was trained with (task, scale, seed,
    n_instances, ...), empty when the checkpoint does not carry them.
    """

    path: Path
    model: Segmenter
    task: str
    device: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """The segmentation of one image.

    Shape: classes (H, W) uint8, the image's own size. curves: (column, class, row) of every extracted
    candidate point, sorted (``models.extraction.candidates_table``).
    """

    classes: npt.NDArray[np.uint8]
    curves: list[tuple[int, int, float]]


def pick_device(requested: str = "auto") -> str:
    """``auto``: the GPU if torch sees one, else the CPU."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise PredictError(f"--device {requested!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise PredictError(f"--device {requested}: torch sees {torch.cuda.device_count()} GPUs here; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise PredictError(f"--device {requested}: only cpu and cuda are supported")
    return requested


def checkpoint_file(path: Path | str) -> Path:
    """The Lightning checkpoint file of ``path``: the file itself, or ``checkpoint.ckpt`` in a directory."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
        if not path.is_file():
            raise PredictError(f"{path.parent} holds no {CHECKPOINT_FILE}; give a checkpoint file or directory")
    elif not path.exists():
        raise PredictError(f"no such checkpoint: {path}")
    return path


def load_checkpoint(path: Path | str, device: str = "cpu") -> LoadedCheckpoint:
    """Restore the segmenter of a Lightning checkpoint (``weights_only=True``); PredictError if unusable."""
    file = checkpoint_file(path)
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictError(f"{file} is not a checkpoint torch can load safely ({reason[:200]})") from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or hparams.get("task") not in TASKS or "state_dict" not in ckpt:
        raise PredictError(f"{file} is not a welllog-study segmenter checkpoint (no task or weights in it)")
    try:
        model = Segmenter(**hparams)
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise PredictError(f"{file} does not fit this version's segmenter ({reason[:200]})") from None
    model.eval().to(device)
    data = ckpt.get("datamodule_hyper_parameters")
    return LoadedCheckpoint(file, model, hparams["task"], device, dict(data) if isinstance(data, dict) else {})


def _as_sample(image: npt.NDArray[np.uint8]) -> Sample:
    """An unlabelled raster in the shape the collate takes: no curves, every pixel background."""
    h, w = image.shape
    return Sample(
        image=image,
        label=np.zeros((h, w), np.uint8),
        curve_rows=np.zeros((0, w), np.float32),
        curve_classes=np.zeros(0, np.int64),
        curve_tracks=np.zeros((0, 2), np.float32),
    )


def logits_of(ckpt: LoadedCheckpoint, image: npt.NDArray[np.uint8]) -> torch.Tensor:
    """The model's logits for one grey raster, padded through the fixed collate and cropped back.

    Shape: image (H, W) uint8 -> (1, C, H, W) float32 on the CPU.
    """
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 raster, got {image.shape} {image.dtype}")
    h, w = image.shape
    batch = collate([_as_sample(image)])  # images (1, 1, Hp, Wp), Hp and Wp multiples of 32
    with torch.inference_mode():
        logits: torch.Tensor = ckpt.model(batch.images.to(ckpt.device))  # (1, C, Hp, Wp)
    return logits[:, :, :h, :w].float().cpu()  # (1, C, H, W): the padding is not part of the image


def segment(ckpt: LoadedCheckpoint, image: npt.NDArray[np.uint8]) -> Prediction:
    """Class map and extracted curve points of one grey raster (H, W) uint8."""
    mode = ckpt.model.mode
    logits = logits_of(ckpt, image)  # (1, C, H, W)
    classes = mode.predict(logits)[0].numpy().astype(np.uint8)  # (H, W)
    centres = class_candidates(mode, logits)[0]  # (Kc, H, W)
    return Prediction(classes, candidates_table(centres, mode.curve_classes))
