"""Re-encoding a clip with faces pixelated in every frame (exports of a blurring camera).

``redact_clip`` decodes an MP4 with PyAV, looks for faces every ``every`` frames with the
detector it is given, pixelates (``sentinel.domain.blur``) and encodes H.264 (libx264) with the
source's timestamps. Running the detector on every frame costs its time per frame (dlib HOG:
hundreds of ms at 768x576 on a small CPU), so frames are held back until the next detection and
each is blurred where faces were at the detection before *and* after it: a face that moves,
appears or is missed once between two detections is still covered. The last frame is always a
detection, so the tail has a detection after it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import VideoFrame
from numpy.typing import NDArray

from sentinel.domain.blur import FaceBox, blur_faces, union_boxes

__all__ = ["FaceDetect", "RedactReport", "redact_clip"]

FaceDetect = Callable[[NDArray[np.uint8]], Sequence[FaceBox]]

_ENCODER = "libx264"
_CRF = "20"  # visually close to the source; the export is a viewing copy
_PRESET = "veryfast"


@dataclass(frozen=True, slots=True)
class RedactReport:
    """What a redaction did: frames written, detector runs, faces found, seconds taken."""

    frames: int
    detections: int
    faces: int
    seconds: float


@dataclass(slots=True)
class _Held:
    rgb: NDArray[np.uint8]
    pts: int | None


class _Writer:
    def __init__(self, out: av.container.OutputContainer, stream: av.VideoStream) -> None:
        self.out = out
        self.stream = stream
        self.frames = 0

    def write(self, held: _Held, boxes: Sequence[FaceBox], time_base: Fraction) -> None:
        frame = VideoFrame.from_ndarray(blur_faces(held.rgb, boxes), format="rgb24")
        frame.pts = held.pts
        frame.time_base = time_base
        for packet in self.stream.encode(frame):
            self.out.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.out.mux(packet)


def redact_clip(src: Path, dest: Path, detect: FaceDetect, *, every: int = 5) -> RedactReport:
    """Writes ``src`` to ``dest`` (MP4, H.264) with faces pixelated in every frame.

    Args:
        src: An MP4 clip (any codec PyAV decodes).
        dest: Where the redacted MP4 goes (overwritten).
        detect: Face boxes of an RGB frame.
        every: Run ``detect`` every this many frames (and on the last).

    Raises:
        ValueError: ``every`` is below 1, or ``src`` has no video stream.
        Exception: Whatever ``detect`` or the codec raises; ``dest`` is then incomplete and
            the caller discards it (an export of a blurring camera is never kept unblurred).
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, but got {every}")
    started = time.perf_counter()
    detections = faces = 0
    with av.open(str(src)) as inp:
        if not inp.streams.video:
            raise ValueError(f"{src} has no video stream")
        ist = inp.streams.video[0]
        time_base = ist.time_base or Fraction(1, 90000)
        rate = ist.average_rate or ist.guessed_rate or Fraction(10)
        with av.open(str(dest), "w", format="mp4") as out:
            ost = out.add_stream(_ENCODER, rate=rate)
            if not isinstance(ost, av.VideoStream):
                raise ValueError(f"{_ENCODER} is not a video encoder")
            ost.width = ist.codec_context.width // 2 * 2  # 4:2:0 needs even sides
            ost.height = ist.codec_context.height // 2 * 2
            ost.pix_fmt = "yuv420p"
            ost.time_base = time_base
            ost.codec_context.time_base = time_base
            ost.options = {"crf": _CRF, "preset": _PRESET}
            writer = _Writer(out, ost)
            # held[0] is the last detection frame (blurred with the detections on both sides
            # of it); the rest came after it and wait for the next detection.
            held: list[_Held] = []
            before: list[FaceBox] = []  # the detection before the last one
            last: list[FaceBox] = []  # the last detection

            def flush(found: list[FaceBox]) -> None:
                for i, item in enumerate(held):
                    boxes = union_boxes(before, last, found) if i == 0 else union_boxes(last, found)
                    writer.write(item, boxes, time_base)

            for count, frame in enumerate(inp.decode(ist)):
                item = _Held(
                    np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8), frame.pts
                )
                if count % every == 0:
                    found = list(detect(item.rgb))
                    detections, faces = detections + 1, faces + len(found)
                    if count:
                        flush(found)
                    held = [item]
                    before, last = last, found
                else:
                    held.append(item)
            if len(held) > 1:  # frames after the last detection: detect on the final one
                tail = held.pop()
                found = list(detect(tail.rgb))
                detections, faces = detections + 1, faces + len(found)
                flush(found)
                held = [tail]
                before, last = last, found
            flush([])  # the final detection frame: its own boxes and the one before
            writer.close()
    return RedactReport(writer.frames, detections, faces, time.perf_counter() - started)
