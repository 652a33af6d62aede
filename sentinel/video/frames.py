"""Random access to the frames of a stored video: a recorded MP4 segment or a plain file.

``decord`` reads by frame index (it seeks to the keyframe before and decodes forward), which
is what training and mining need: a few chosen frames out of a long recording. Where decord
cannot open a file, PyAV decodes it from the start and keeps the frames asked for. A frame
that fails to decode is skipped and counted (``FrameReader.skipped``), never fatal; a file
neither can open raises :class:`UnreadableVideo`, which callers count as a skipped segment.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
from numpy.typing import NDArray

__all__ = ["FrameReader", "UnreadableVideo", "open_frames"]

logger = logging.getLogger(__name__)


class UnreadableVideo(Exception):  # noqa: N818 - named for what the caller gets
    """Neither decord nor PyAV could open the video."""


class FrameReader:
    """The frames of one video by index (0-based), with their times from the first frame.

    Attributes:
        name: What the video is (a path or an object key), for messages.
        backend: "decord" or "pyav".
        times: Seconds of each frame from the first one (``len(times)`` frames).
        skipped: Frames asked for that could not be decoded so far.
    """

    def __init__(self, name: str, backend: str, times: NDArray[np.float64], handle: Any) -> None:
        self.name = name
        self.backend = backend
        self.times = times
        self.skipped = 0
        self._handle = handle

    def __len__(self) -> int:
        return len(self.times)

    @property
    def fps(self) -> float:
        """Frames per second, from the frames' times (0 for a single frame)."""
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return 0.0
        return float((len(self.times) - 1) / (self.times[-1] - self.times[0]))

    def read(self, indices: Sequence[int]) -> Iterator[tuple[int, NDArray[np.uint8]]]:
        """The RGB (H, W, 3) uint8 frames at ``indices`` (ascending, duplicates once); an
        index out of range raises IndexError, a frame that fails to decode is skipped."""
        wanted = sorted(set(indices))
        if wanted and (wanted[0] < 0 or wanted[-1] >= len(self)):
            raise IndexError(f"frame indices {wanted[0]}..{wanted[-1]} outside 0..{len(self) - 1}")
        if self.backend == "decord":
            yield from self._read_decord(wanted)
        else:
            yield from self._read_pyav(wanted)

    def _read_decord(self, wanted: list[int]) -> Iterator[tuple[int, NDArray[np.uint8]]]:
        for index in wanted:
            try:
                frame = np.asarray(self._handle[index].asnumpy(), dtype=np.uint8)
            except Exception as exc:  # decord raises its own DECORDError (a RuntimeError)
                self.skipped += 1
                logger.debug("%s: frame %d skipped: %s", self.name, index, exc)
                continue
            yield index, frame

    def _read_pyav(self, wanted: list[int]) -> Iterator[tuple[int, NDArray[np.uint8]]]:
        remaining = set(wanted)
        src = self._handle
        try:
            with av.open(str(src) if isinstance(src, Path) else io.BytesIO(src), "r") as container:
                for index, frame in enumerate(container.decode(video=0)):
                    if index in remaining:
                        remaining.discard(index)
                        yield index, np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    if not remaining:
                        break
        except (av.error.FFmpegError, OSError) as exc:
            logger.warning("%s: decoding stopped: %s", self.name, exc)
        finally:
            self.skipped += len(remaining)


def open_frames(src: Path | bytes, *, name: str | None = None) -> FrameReader:
    """Opens a video (a path, or an MP4's bytes as the object store returns them).

    Raises:
        UnreadableVideo: If neither decord nor PyAV can open it, or it has no video frame.
    """
    label = name or (str(src) if isinstance(src, Path) else f"<{len(src)} bytes>")
    try:
        import decord  # a compiled extension: imported here so that importing this is cheap

        reader = decord.VideoReader(
            str(src) if isinstance(src, Path) else io.BytesIO(src), num_threads=1
        )
        count = len(reader)
        if count == 0:
            raise UnreadableVideo(f"{label} has no video frame")
        times = np.asarray(reader.get_frame_timestamp(list(range(count)))[:, 0], dtype=np.float64)
        return FrameReader(label, "decord", times - times[0], reader)
    except UnreadableVideo:
        raise
    except Exception as exc:  # decord's DECORDError, or a file it does not handle
        logger.info("%s: decord cannot open it (%s); decoding with PyAV", label, exc)
    return _open_pyav(src, label)


def _open_pyav(src: Path | bytes, label: str) -> FrameReader:
    times: list[float] = []
    try:
        with av.open(str(src) if isinstance(src, Path) else io.BytesIO(src), "r") as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                for frame in packet.decode():
                    times.append(float(frame.time) if frame.time is not None else len(times))
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        if not times:
            raise UnreadableVideo(f"{label} cannot be read: {exc}") from exc
        logger.warning("%s: read %d frames, then: %s", label, len(times), exc)
    if not times:
        raise UnreadableVideo(f"{label} has no video frame")
    # PyAV reopens the source at every read: the reader keeps the path or the bytes.
    return FrameReader(label, "pyav", np.asarray(times, dtype=np.float64) - times[0], src)
