"""A YOLO-format ONNX model run with ONNX Runtime: letterbox in, detections out.

No Ray here: the Serve deployment and the benchmarks wrap the same runner, so the bare baseline
and the served path run identical code.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from sentinel.domain.boxes import (
    COCO_LABELS,
    Letterbox,
    ModelInput,
    decode_yolo,
    input_tensor,
    letterbox_u8,
)
from sentinel.domain.types import Detection
from sentinel.models.files import ModelFileError, verify_recorded_digest

logger = logging.getLogger(__name__)


def verify_model(path: Path) -> None:
    """Check ``path`` against the sha256 recorded next to it (``<file>.sha256``) at export time.

    Raises:
        ModelFileError: the file is missing, no digest is recorded, or the digests differ.
    """
    if not path.is_file():
        raise ModelFileError(
            f"detector model {path} does not exist; run `sentinel models init` to export the "
            "bundled YOLOv8n, or set detector.model_path to a YOLO-format ONNX file"
        )
    verify_recorded_digest(path)


class YoloOnnx:
    """Runs a YOLOv8-style ONNX detector on RGB frames of any size."""

    def __init__(
        self,
        path: Path,
        *,
        labels: Sequence[str] | None = None,
        input_size: int = 640,
        threads: int = 2,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        providers: Sequence[str] | None = None,
        verify: bool = True,
        spin: bool = False,
    ) -> None:
        if verify:
            verify_model(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # ORT's threads busy-wait between parallel sections by default: on cores shared with
        # cameras (and the replica's own event loop) they sleep instead (DetectorSettings).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        chosen = [p for p in (providers or ["CUDAExecutionProvider"]) if p in available]
        self.session = ort.InferenceSession(
            str(path), sess_options=opts, providers=[*chosen, "CPUExecutionProvider"]
        )
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.labels: tuple[str, ...] = tuple(labels) if labels else self._labels_from_meta()
        self.input_size = input_size
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        out_shape = self.session.get_outputs()[0].shape
        rows = out_shape[1] if len(out_shape) == 3 else None
        if isinstance(rows, int) and rows != 4 + len(self.labels):
            raise ModelFileError(
                f"model output has {rows} rows per box, but 4 + {len(self.labels)} labels "
                "were expected; set detector.labels to the model's class names"
            )

    def _labels_from_meta(self) -> tuple[str, ...]:
        meta = self.session.get_modelmeta().custom_metadata_map
        names = meta.get("names")
        if names:
            # Ultralytics writes a Python dict literal {0: 'person', ...}: literal_eval parses
            # literals only, never code, so a hostile model file cannot run anything here.
            try:
                parsed = ast.literal_eval(names)
                return tuple(str(parsed[i]) for i in range(len(parsed)))
            except (ValueError, SyntaxError, KeyError, TypeError):
                logger.warning("could not parse class names from model metadata; using COCO")
        return COCO_LABELS

    def prepare(self, frame: NDArray[np.uint8]) -> ModelInput:
        """Letterbox one RGB frame for this model (what a camera does before sending it)."""
        return letterbox_u8(frame, self.input_size)

    def preprocess(
        self, frames: Sequence[NDArray[np.uint8]]
    ) -> tuple[NDArray[np.float32], list[Letterbox]]:
        prepared = [self.prepare(frame) for frame in frames]
        return input_tensor([p.image for p in prepared]), [p.letterbox for p in prepared]

    def infer(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)

    def detect(self, frames: Sequence[NDArray[np.uint8]]) -> list[list[Detection]]:
        """Detections for each frame, in frame pixel coordinates."""
        return self.detect_prepared([self.prepare(frame) for frame in frames])

    def detect_prepared(self, inputs: Sequence[ModelInput]) -> list[list[Detection]]:
        """Detections for each prepared input, in its source's pixel coordinates.

        Inputs of the same size run as one batch; different sizes (regions at native
        resolution beside full frames) run as one batch per size, in order of first appearance.
        """
        by_size: dict[int, list[int]] = {}
        for i, prepared in enumerate(inputs):
            by_size.setdefault(prepared.letterbox.size, []).append(i)
        out: list[list[Detection]] = [[] for _ in inputs]
        for indices in by_size.values():
            preds = self.infer(input_tensor([inputs[i].image for i in indices]))
            for row, i in enumerate(indices):
                out[i] = decode_yolo(
                    preds[row],
                    inputs[i].letterbox,
                    self.labels,
                    conf_threshold=self.conf_threshold,
                    iou_threshold=self.iou_threshold,
                )
        return out
