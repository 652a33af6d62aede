"""The fine-tuning step keeps the pretrained batch-norm statistics (FP blow-up regression)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sentinel.train.batching import collate, encode_sample
from sentinel.train.model import (
    TrainConfig,
    build_model,
    make_optimizer,
    to_torch,
    train_mode,
    train_step,
)


def test_a_train_step_keeps_batch_norm_statistics_and_trains_the_head() -> None:
    torch.manual_seed(0)
    model: Any = build_model(["person"])
    train_mode(model)
    norms: list[Any] = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    assert model.model[-1].training  # the head itself is in training mode
    before = [m.running_mean.clone() for m in norms]
    head = model.model[-1].cv3[0][2].weight.detach().clone()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    sample = encode_sample(
        image, np.array([[20, 10, 60, 90]], np.float32), np.zeros(1, np.int64), size=64, max_boxes=1
    )
    batch = collate(np.stack([sample["image"]] * 2), np.stack([sample["targets"]] * 2))
    out = train_step(
        model, make_optimizer(model, TrainConfig()), to_torch(batch, torch.device("cpu"))
    )
    assert np.isfinite(out["loss"])
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms, strict=True))
    assert not torch.equal(head, model.model[-1].cv3[0][2].weight)
