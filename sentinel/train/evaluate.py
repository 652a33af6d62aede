"""Detection quality: mAP@0.5 and per-class precision/recall, in plain numpy.

Predictions and truths are given per image as ``(label, box)`` (and a score for predictions),
boxes xyxy in the same pixels. A prediction is a true positive when it matches, greedily by
score, a not-yet-matched truth of the same label with IoU >= ``iou``. AP is the area under the
all-point interpolated precision/recall curve (VOC 2010+); mAP averages the labels that have at
least one truth. Precision and recall are counted at the score threshold ``conf`` (what the
detector serves with).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

Truth = tuple[str, tuple[float, float, float, float]]
Prediction = tuple[str, float, tuple[float, float, float, float]]


@dataclass(frozen=True)
class ClassReport:
    """One label's figures."""

    ap50: float
    precision: float
    recall: float
    true_positives: int
    false_positives: int
    false_negatives: int
    truths: int


@dataclass(frozen=True)
class EvalReport:
    """A model's figures on one split."""

    map50: float
    images: int
    classes: dict[str, ClassReport]

    def errors(self) -> int:
        """False positives plus misses over all labels (at ``conf``)."""
        return sum(c.false_positives + c.false_negatives for c in self.classes.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "map50": self.map50,
            "images": self.images,
            "classes": {k: asdict(v) for k, v in self.classes.items()},
        }

    def flat_metrics(self, prefix: str) -> dict[str, float]:
        """``{prefix}.map50``, ``{prefix}.<label>.precision`` ... for MLflow and the registry."""
        out = {f"{prefix}.map50": self.map50}
        for label, c in self.classes.items():
            out[f"{prefix}.{label}.ap50"] = c.ap50
            out[f"{prefix}.{label}.precision"] = c.precision
            out[f"{prefix}.{label}.recall"] = c.recall
        return out


def iou_matrix(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def average_precision(recall: NDArray[np.floating], precision: NDArray[np.floating]) -> float:
    """All-point interpolated AP of a precision/recall curve ordered by falling score."""
    if recall.size == 0:
        return 0.0
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def evaluate(
    predictions: Sequence[Sequence[Prediction]],
    truths: Sequence[Sequence[Truth]],
    labels: Sequence[str],
    *,
    iou: float = 0.5,
    conf: float = 0.25,
) -> EvalReport:
    """Score ``predictions`` against ``truths`` (one list per image, same order).

    Predictions of labels outside ``labels`` are ignored (a COCO model scored on a person-only
    dataset is judged on persons).

    Raises:
        ValueError: If the two sequences differ in length or ``iou``/``conf`` is out of range.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"predictions cover {len(predictions)} images but truths {len(truths)}")
    if not 0.0 < iou <= 1.0 or not 0.0 <= conf <= 1.0:
        raise ValueError(f"iou must be in (0, 1] and conf in [0, 1], but got {iou}, {conf}")
    classes: dict[str, ClassReport] = {}
    for label in labels:
        scores: list[float] = []
        hits: list[bool] = []
        n_truth = 0
        for preds, gts in zip(predictions, truths, strict=True):
            gt = np.array([b for lab, b in gts if lab == label], dtype=np.float64).reshape(-1, 4)
            n_truth += len(gt)
            mine = sorted((p for p in preds if p[0] == label), key=lambda p: -p[1])
            if not mine:
                continue
            boxes = np.array([p[2] for p in mine], dtype=np.float64)
            overlaps = iou_matrix(boxes, gt)
            taken = np.zeros(len(gt), dtype=bool)
            for k, pred in enumerate(mine):
                scores.append(pred[1])
                hit = False
                if len(gt):
                    cand = np.where(taken, -1.0, overlaps[k])
                    j = int(np.argmax(cand))
                    if cand[j] >= iou:
                        taken[j] = True
                        hit = True
                hits.append(hit)
        classes[label] = _class_report(np.array(scores), np.array(hits, dtype=bool), n_truth, conf)
    with_truth = [c.ap50 for c in classes.values() if c.truths > 0]
    map50 = float(np.mean(with_truth)) if with_truth else 0.0
    return EvalReport(map50=map50, images=len(truths), classes=classes)


def _class_report(
    scores: NDArray[np.floating], hits: NDArray[np.bool_], n_truth: int, conf: float
) -> ClassReport:
    order = np.argsort(-scores, kind="stable")
    ordered_hits = hits[order]
    tp_cum = np.cumsum(ordered_hits)
    fp_cum = np.cumsum(~ordered_hits)
    if n_truth > 0 and len(ordered_hits):
        recall = tp_cum / n_truth
        precision = tp_cum / np.maximum(tp_cum + fp_cum, 1)
        ap = average_precision(recall, precision)
    else:
        ap = 0.0
    kept = scores >= conf
    tp = int(np.sum(hits & kept))
    fp = int(np.sum(~hits & kept))
    fn = n_truth - tp
    return ClassReport(
        ap50=ap,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / n_truth if n_truth else 0.0,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        truths=n_truth,
    )
