"""The detector being fine-tuned: ultralytics' ``DetectionModel`` inside our own train loop.

:func:`build_model` starts from the bundled YOLOv8n (sha256-checked by
``sentinel.models.files``) with a head for the dataset's labels; ultralytics' ``load`` copies the
pretrained class rows whose names match (``person`` keeps COCO's row), so a one-class model
starts where the pretrained one was. The backbone (layers 0-9) is frozen and held in eval mode,
so a few hundred frames cannot wreck its batch-norm statistics. AdamW at 2e-4 (1e-3 made the
class loss jump here: FIELD-NOTES).

Checkpoints are ultralytics-format ``.pt`` files (the ``{"model": ...}`` dict its exporter
reads) with their sha256 written beside them, and refused on load unless it matches: they are
pickles.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from sentinel.models.files import bundled_yolov8n, verify_recorded_digest, write_digest

logger = logging.getLogger(__name__)

BACKBONE_LAYERS = 10  # YOLOv8's backbone is model.model[0:10]; the neck and head follow


@dataclass(frozen=True)
class TrainConfig:
    """The optimiser's and the loop's knobs (also logged to MLflow as the run's params)."""

    epochs: int = 3
    batch_size: int = 8
    input_size: int = 640
    lr: float = 2e-4
    weight_decay: float = 5e-4
    freeze_backbone: bool = True
    threads: int = 2
    seed: int = 0

    def as_params(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def _ultralytics_env() -> None:
    # Ultralytics must not reach for the network or its settings sync.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")


def set_threads(threads: int) -> None:
    """Use ``threads`` torch threads: ultralytics and a 1-CPU Ray worker leave only 1 (~1.8x
    slower steps here, FIELD-NOTES)."""
    torch.set_num_threads(max(1, threads))


def _load_pretrained() -> dict[str, Any]:
    path = bundled_yolov8n()  # sha256-pinned before it is unpickled
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt


def build_model(labels: Sequence[str], *, freeze_backbone: bool = True) -> torch.nn.Module:
    """YOLOv8n with a head for ``labels``, initialised from the bundled pretrained weights.

    Raises:
        ValueError: If ``labels`` is empty or has duplicates.
        ModelFileError: If the bundled checkpoint is missing or fails its digest.
    """
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be non-empty and distinct, but got {list(labels)}")
    _ultralytics_env()
    from ultralytics.cfg import get_cfg  # heavy; only here
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import DEFAULT_CFG

    ckpt = _load_pretrained()
    source = ckpt["model"]
    model: Any = DetectionModel(  # type: ignore[no-untyped-call]
        deepcopy(source.yaml), nc=len(labels), verbose=False
    )
    model.names = dict(enumerate(labels))
    model.load(ckpt, verbose=False)
    model.args = get_cfg(DEFAULT_CFG)  # the loss reads its box/cls/dfl gains from here
    model.float()
    if freeze_backbone:
        for layer in model.model[:BACKBONE_LAYERS]:
            for p in layer.parameters():
                p.requires_grad = False
    built: torch.nn.Module = model
    return built


def train_mode(model: torch.nn.Module, *, freeze_backbone: bool = True) -> None:
    """Training mode for the head and neck; the frozen backbone stays in eval mode.

    Every batch-norm layer keeps its pretrained running statistics (eval mode; its scale and
    shift still train): a few batches of 8 frames of one scene, at another input size than
    COCO's, dragged the neck's statistics far enough that the exported model fired everywhere
    (10 steps at 224 px: 454 false positives on 25 frames against 25 with frozen statistics).
    """
    model.train()
    if freeze_backbone:
        for layer in model.model[:BACKBONE_LAYERS]:  # type: ignore[index]
            layer.eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def to_torch(batch: Mapping[str, NDArray[np.float32]], device: torch.device) -> dict[str, Any]:
    """The collated numpy batch (``sentinel.train.batching.collate``) as tensors on ``device``."""
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Mapping[str, Any],
    *,
    core: torch.nn.Module | None = None,
) -> dict[str, float]:
    """One optimiser step on ``batch``; returns the mean loss per image and its parts.

    ``model`` runs the forward pass (a DistributedDataParallel wrapper on several workers, so
    gradients are averaged); ``core`` is the ``DetectionModel`` inside it, whose ``loss``
    scores the predictions (default: ``model`` itself).
    """
    detector = core if core is not None else model
    optimizer.zero_grad(set_to_none=True)
    preds = model(batch["img"])
    loss, items = detector.loss(batch, preds)  # type: ignore[operator]
    total = loss.sum()
    total.backward()
    torch.nn.utils.clip_grad_norm_(
        [p for p in model.parameters() if p.requires_grad], max_norm=10.0
    )
    optimizer.step()
    n = max(1, int(batch["img"].shape[0]))
    out = {"loss": float(total.detach()) / n}
    if isinstance(items, Mapping):  # ultralytics 8.4: {"box_loss": t, "cls_loss": t, ...}
        out.update({str(k): float(v) for k, v in items.items()})
    return out


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int,
    step: int,
    labels: Sequence[str],
    input_size: int,
) -> str:
    """Write an ultralytics-format checkpoint (+ its ``.sha256``); returns the digest.

    ``model`` is what ultralytics' exporter loads; ``sentinel`` holds the loop's state.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "model": deepcopy(model).float().eval(),
        "train_args": {"imgsz": input_size},
        "sentinel": {
            "epoch": epoch,
            "step": step,
            "labels": list(labels),
            "input_size": input_size,
            "optimizer": None if optimizer is None else optimizer.state_dict(),
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return write_digest(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, refusing it unless its digest
    file matches (it is a pickle).

    Raises:
        ModelFileError: The digest is missing or differs.
    """
    verify_recorded_digest(path)
    _ultralytics_env()
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state


def restore(
    state: Mapping[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[int, int]:
    """Load a checkpoint's weights (and optimiser state) into ``model``; returns
    ``(epoch, step)`` the checkpoint was taken after."""
    model.load_state_dict(state["model"].state_dict())
    meta = state["sentinel"]
    if optimizer is not None and meta.get("optimizer") is not None:
        optimizer.load_state_dict(meta["optimizer"])
    return int(meta["epoch"]), int(meta["step"])
