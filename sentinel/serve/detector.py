"""The detector deployment: frames from every camera, batched across cameras by ``@serve.batch``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from ray import serve

from sentinel.config import DetectorSettings
from sentinel.domain.boxes import ModelInput
from sentinel.domain.types import DetectResult
from sentinel.models.yolo import YoloOnnx


@serve.deployment(name="Detector", max_ongoing_requests=64)
class Detector:
    """Serves a YOLO-format ONNX model; requests from all cameras share batches."""

    def __init__(self, settings: dict[str, Any], model_path: str) -> None:
        cfg = DetectorSettings(**settings)
        self.model = YoloOnnx(
            Path(model_path),
            labels=cfg.labels,
            input_size=cfg.input_size,
            threads=cfg.threads,
            conf_threshold=cfg.conf_threshold,
            iou_threshold=cfg.iou_threshold,
        )
        # @serve.batch wraps the method in an object with setters; typeshed sees a function.
        self.detect_batch.set_max_batch_size(cfg.max_batch_size)  # type: ignore[attr-defined]
        self.detect_batch.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)  # type: ignore[attr-defined]

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def detect_batch(
        self, requests: list[tuple[list[ModelInput], str]]
    ) -> list[list[DetectResult]]:
        start = time.perf_counter()
        inputs = [prepared for batch, _ in requests for prepared in batch]
        # Inference runs off the event loop so the next batch can gather meanwhile.
        results = iter(await asyncio.to_thread(self.model.detect_prepared, inputs))
        infer_ms = (time.perf_counter() - start) * 1000.0
        cameras = len({source for _, source in requests})
        return [
            [DetectResult(next(results), len(inputs), infer_ms, cameras) for _ in batch]
            for batch, _ in requests
        ]

    async def detect_inputs(self, inputs: list[ModelInput], source: str = "") -> list[DetectResult]:
        """Detections for inputs a camera prepared (letterboxed frames or region crops).

        All of one call's inputs share a batch, with other cameras' calls; each result is in
        its input's source pixels.

        Args:
            inputs: The prepared inputs (see :func:`sentinel.domain.boxes.letterbox_u8`).
            source: Who sent them (a camera id); only counted, for
                ``DetectResult.batch_cameras``.
        """
        if not inputs or not all(isinstance(p, ModelInput) for p in inputs):
            raise ValueError("inputs must be a non-empty list of ModelInput")
        results: list[DetectResult] = await self.detect_batch((inputs, source))
        return results

    async def detect(self, frame: NDArray[np.uint8], source: str = "") -> DetectResult:
        """Detections for one RGB frame (H, W, 3) uint8, letterboxed here.

        Cameras prepare their frames themselves (:meth:`detect_inputs`), which keeps the resize
        off the replica; this entry point is for callers that hold a plain frame.

        Args:
            frame: The frame.
            source: Who sent it (a camera id); only counted, for ``DetectResult.batch_cameras``.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be an (H, W, 3) uint8 array, but got {frame.shape} {frame.dtype}"
            )
        results: list[DetectResult] = await self.detect_batch(([self.model.prepare(frame)], source))
        return results[0]

    def input_size(self) -> int:
        """The side of the square model input cameras letterbox their frames to."""
        return self.model.input_size

    def labels(self) -> list[str]:
        return list(self.model.labels)

    def ready(self) -> bool:
        return True


def detector_options(settings: DetectorSettings) -> dict[str, Any]:
    """The deployment options ``settings`` ask for: a fixed replica count, or autoscaling.

    ``num_gpus`` > 0 places replicas on GPU nodes only (Ray schedules by resources).
    """
    sizing: dict[str, Any] = (
        {"autoscaling_config": settings.autoscaling.serve_config()}
        if settings.autoscaling is not None
        else {"num_replicas": settings.replicas}
    )
    return {
        **sizing,
        "ray_actor_options": {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus},
    }


def build_detector(settings: DetectorSettings, model_path: Path) -> Any:
    """The bound detector deployment, sized by ``settings``."""
    return Detector.options(**detector_options(settings)).bind(  # type: ignore[attr-defined]
        settings.model_dump(mode="json"), str(model_path)
    )
