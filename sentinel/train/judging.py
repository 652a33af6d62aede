"""Scoring exported models on evaluation splits, and the gate's verdict between two of them.

Both the challenger and the champion are judged as ONNX files run by the detector's own
runner (``sentinel.models.yolo.YoloOnnx``), so what is scored is exactly what would be served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sentinel.models.yolo import YoloOnnx
from sentinel.train.evaluate import EvalReport, Prediction, Truth, evaluate
from sentinel.train.gate import GateReport, gate

EVAL_CONF = 0.05  # low, so the precision/recall curve (AP) is seen; P/R are counted at conf
EVAL_BATCH = 4


@dataclass
class Split:
    """Images with their true boxes (xyxy pixels, labels by name)."""

    images: list[NDArray[np.uint8]] = field(default_factory=list)
    truths: list[list[Truth]] = field(default_factory=list)

    def add(self, image: NDArray[np.uint8], truths: Sequence[Truth]) -> None:
        self.images.append(image)
        self.truths.append(list(truths))

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class OnnxModel:
    """A model file to judge: the ONNX path (digest recorded beside it), labels, input size."""

    path: Path
    labels: tuple[str, ...]
    input_size: int


def predict(model: YoloOnnx, images: Sequence[NDArray[np.uint8]]) -> list[list[Prediction]]:
    """The model's detections per image, as ``(label, score, xyxy)``."""
    out: list[list[Prediction]] = []
    for start in range(0, len(images), EVAL_BATCH):
        for dets in model.detect(images[start : start + EVAL_BATCH]):
            out.append(
                [(d.label, float(d.score), (d.box.x1, d.box.y1, d.box.x2, d.box.y2)) for d in dets]
            )
    return out


def score(
    model: OnnxModel,
    splits: Mapping[str, Split],
    labels: Sequence[str],
    *,
    conf: float = 0.25,
    threads: int = 2,
) -> dict[str, EvalReport]:
    """``model``'s report on each non-empty split, judged on ``labels`` only."""
    runner = YoloOnnx(
        model.path,
        labels=model.labels,
        input_size=model.input_size,
        threads=threads,
        conf_threshold=min(EVAL_CONF, conf),
        providers=["CPUExecutionProvider"],
    )
    reports = {}
    for name, split in splits.items():
        if len(split) == 0:
            continue
        reports[name] = evaluate(predict(runner, split.images), split.truths, labels, conf=conf)
    return reports


@dataclass(frozen=True)
class Judgement:
    challenger: dict[str, EvalReport]
    champion: dict[str, EvalReport]
    gate: GateReport

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for split, report in self.challenger.items():
            out.update(report.flat_metrics(f"challenger.{split}"))
        for split, report in self.champion.items():
            out.update(report.flat_metrics(f"champion.{split}"))
        return out


def judge(
    challenger: OnnxModel,
    champion: OnnxModel,
    splits: Mapping[str, Split],
    labels: Sequence[str],
    *,
    margin: float,
    conf: float = 0.25,
    threads: int = 2,
) -> Judgement:
    """Score both models on every split and apply the gate (all of ``splits`` required)."""
    ch = score(challenger, splits, labels, conf=conf, threads=threads)
    cp = score(champion, splits, labels, conf=conf, threads=threads)
    return Judgement(ch, cp, gate(ch, cp, margin=margin, splits=tuple(splits)))
