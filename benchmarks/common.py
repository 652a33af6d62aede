"""Shared pieces of the benchmarks: the model file, the sample clip, frames, Ray, reporting."""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

SAMPLE_VIDEO_ENV = "SENTINEL_SAMPLE_VIDEO"
DEFAULT_SAMPLE_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
HOST = "127.0.0.1"


class BenchmarkError(RuntimeError):
    """A benchmark could not run (missing input, failed subprocess...)."""


def sample_video() -> Path:
    """The PETS09 ``vtest.avi`` clip (``SENTINEL_SAMPLE_VIDEO`` overrides the location)."""
    override = os.environ.get(SAMPLE_VIDEO_ENV)
    path = Path(override) if override else DEFAULT_SAMPLE_VIDEO
    if not path.is_file():
        raise BenchmarkError(
            f"sample video not found at {path}: `apt-get install opencv-doc`, or point "
            f"{SAMPLE_VIDEO_ENV} at a video file"
        )
    return path


def _reusable_model() -> Path | None:
    data_dir = os.environ.get("SENTINEL_DATA_DIR")
    if not data_dir:
        return None
    path = Path(data_dir) / "models" / "yolov8n.onnx"
    digest = path.with_name(path.name + ".sha256")
    return path if path.is_file() and digest.is_file() else None


@contextlib.contextmanager
def onnx_model() -> Iterator[Path]:
    """The YOLOv8n ONNX file: ``$SENTINEL_DATA_DIR/models/yolov8n.onnx`` when it exists with
    its ``.sha256``, else the bundled checkpoint exported into a temporary folder (~5 s)."""
    existing = _reusable_model()
    if existing is not None:
        print(f"model: reusing {existing}", flush=True)
        yield existing
        return
    from sentinel.models.files import export_yolov8n

    with tempfile.TemporaryDirectory(prefix="sentinel-bench-model-") as tmp:
        # Ultralytics prints its export log on stdout: keep stdout for the figures.
        with contextlib.redirect_stdout(sys.stderr):
            path = export_yolov8n(Path(tmp) / "yolov8n.onnx")
        print(f"model: exported bundled YOLOv8n to {path}", flush=True)
        yield path


def rgb_frames(video: Path, count: int, *, every: int = 1) -> list[NDArray[np.uint8]]:
    """The first ``count`` frames (every ``every``-th) of ``video`` as (H, W, 3) RGB arrays."""
    frames: list[NDArray[np.uint8]] = []
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every:
                continue
            frames.append(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
            if len(frames) >= count:
                break
    if len(frames) < count:
        raise BenchmarkError(f"{video} has fewer than {count} frames at every {every}")
    return frames


def init_ray(namespace: str) -> None:
    """Starts a private local Ray cluster on 127.0.0.1 (never joins someone else's), its
    workers at the nice value Sentinel gives its own (``cluster.worker_niceness``)."""
    import ray

    from sentinel.config import ClusterSettings

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        namespace=namespace,
        _node_ip_address=HOST,
        logging_level=logging.WARNING,
        log_to_driver=False,
        _system_config={"worker_niceness": ClusterSettings().worker_niceness},
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
