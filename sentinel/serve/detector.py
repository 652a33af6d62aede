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
        self, requests: list[tuple[NDArray[np.uint8], str]]
    ) -> list[DetectResult]:
        start = time.perf_counter()
        frames = [frame for frame, _ in requests]
        # Inference runs off the event loop so the next batch can gather meanwhile.
        results = await asyncio.to_thread(self.model.detect, frames)
        infer_ms = (time.perf_counter() - start) * 1000.0
        cameras = len({source for _, source in requests})
        return [DetectResult(dets, len(frames), infer_ms, cameras) for dets in results]

    async def detect(self, frame: NDArray[np.uint8], source: str = "") -> DetectResult:
        """Detections for one RGB frame (H, W, 3) uint8.

        Args:
            frame: The frame.
            source: Who sent it (a camera id); only counted, for ``DetectResult.batch_cameras``.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be an (H, W, 3) uint8 array, but got {frame.shape} {frame.dtype}"
            )
        result: DetectResult = await self.detect_batch((frame, source))
        return result

    def labels(self) -> list[str]:
        return list(self.model.labels)

    def ready(self) -> bool:
        return True


def build_detector(settings: DetectorSettings, model_path: Path) -> Any:
    """The bound detector deployment, sized by ``settings``."""
    return Detector.options(  # type: ignore[attr-defined]
        num_replicas=settings.replicas,
        ray_actor_options={"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus},
    ).bind(settings.model_dump(mode="json"), str(model_path))
