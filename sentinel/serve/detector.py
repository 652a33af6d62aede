"""The detector deployment: frames from every camera, batched across cameras by ``@serve.batch``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
from numpy.typing import NDArray
from ray import serve

from sentinel.config import DetectorSettings
from sentinel.domain.boxes import ModelInput
from sentinel.domain.types import DetectResult
from sentinel.models.files import ModelFileError, verify_recorded_digest
from sentinel.models.yolo import YoloOnnx

logger = logging.getLogger(__name__)


MODEL_CONTROLLER = "sentinel-models"
"""The detached actor that says which registry version the champion serves."""


@serve.deployment(name="Detector", max_ongoing_requests=64)
class Detector:
    """Serves a YOLO-format ONNX model; requests from all cameras share batches.

    ``model`` names the registry version of ``model_path`` (``version``, ``sha256``,
    ``labels``, ``input_size``): the file is refused unless its sha256 is that one, and every
    result carries the version. With ``controller`` (``namespace``, ``poll_s``) the replica
    asks the model controller which version the champion is, and swaps to a new one (fetched
    and verified by the controller, verified again here) between batches.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        model_path: str,
        model: dict[str, Any] | None = None,
        controller: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = DetectorSettings(**settings)
        self._served = (self._load(Path(model_path), model), _version_of(model))
        # @serve.batch wraps the method in an object with setters; typeshed sees a function.
        self.detect_batch.set_max_batch_size(self.cfg.max_batch_size)  # type: ignore[attr-defined]
        self.detect_batch.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)  # type: ignore[attr-defined]
        self._stop = threading.Event()
        if controller is not None:
            replica = serve.get_replica_context().replica_id.unique_id
            threading.Thread(
                target=self._follow_champion,
                args=(replica, str(controller["namespace"]), float(controller["poll_s"])),
                name="detector-champion",
                daemon=True,
            ).start()

    @property
    def model(self) -> YoloOnnx:
        return self._served[0]

    def _load(self, path: Path, model: dict[str, Any] | None) -> YoloOnnx:
        """The runner of ``path``, refused unless its sha256 is the recorded (and, for a
        registry version, the registered) one."""
        digest = verify_recorded_digest(path)
        if model is not None and digest != model.get("sha256"):
            raise ModelFileError(
                f"refusing {path}: its sha256 is {digest}, the registry records "
                f"{model.get('sha256')}"
            )
        return YoloOnnx(
            path,
            labels=(model or {}).get("labels") or self.cfg.labels,
            input_size=int((model or {}).get("input_size") or self.cfg.input_size),
            threads=self.cfg.threads,
            spin=self.cfg.spin_wait,
            conf_threshold=self.cfg.conf_threshold,
            iou_threshold=self.cfg.iou_threshold,
            verify=False,  # checked above
        )

    def _follow_champion(self, replica: str, namespace: str, poll_s: float) -> None:
        """Thread: reports this replica's version to the controller, loads the one it names."""
        while not self._stop.wait(poll_s):
            try:
                controller = ray.get_actor(MODEL_CONTROLLER, namespace=namespace)
                ref: Any = controller.replica_sync.remote(replica, self._served[1])
                want: dict[str, Any] | None = ray.get(ref, timeout=10)
                if want is None or want.get("version") == self._served[1]:
                    continue
                runner = self._load(Path(want["path"]), want)
                self._served = (runner, int(want["version"]))  # one assignment: batches see one
                logger.warning(
                    "detector replica %s now serves version %s", replica, want["version"]
                )
                ray.get(controller.replica_sync.remote(replica, self._served[1]), timeout=10)
            except ValueError:  # no controller (the registry is off, or it is starting)
                continue
            except Exception as exc:  # a bad file or a busy controller: keep serving, retry
                logger.warning("detector replica %s: champion check failed: %s", replica, exc)

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.01)
    async def detect_batch(
        self, requests: list[tuple[list[ModelInput], str]]
    ) -> list[list[DetectResult]]:
        start = time.perf_counter()
        inputs = [prepared for batch, _ in requests for prepared in batch]
        runner, version = self._served  # one model for the whole batch, even mid-swap
        # Inference runs off the event loop so the next batch can gather meanwhile.
        results = iter(await asyncio.to_thread(runner.detect_prepared, inputs))
        infer_ms = (time.perf_counter() - start) * 1000.0
        cameras = len({source for _, source in requests})
        return [
            [DetectResult(next(results), len(inputs), infer_ms, cameras, version) for _ in batch]
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

    def model_version(self) -> int | None:
        """The registry version this replica serves (None: an unversioned file)."""
        return self._served[1]

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


def build_detector(
    settings: DetectorSettings,
    model_path: Path,
    model: dict[str, Any] | None = None,
    controller: dict[str, Any] | None = None,
) -> Any:
    """The bound detector deployment, sized by ``settings`` (``model``, ``controller``: see
    :class:`Detector`)."""
    return Detector.options(**detector_options(settings)).bind(  # type: ignore[attr-defined]
        settings.model_dump(mode="json"), str(model_path), model, controller
    )


def _version_of(model: dict[str, Any] | None) -> int | None:
    return None if model is None else int(model["version"])
