"""Quiet clips for tests and benchmarks: a real scene without its moving objects.

A camera that watches an empty car park is the common case, and the hardest one to make cheap:
nothing moves, but the parked vehicles are always in view. :func:`median_background` removes
the moving objects from a video by a per-pixel temporal median (people pass, parked vehicles
stay), and :func:`write_quiet_clip` turns that background into minutes of video with what a
real sensor adds (slow lighting drift and per-frame noise), optionally around the real frames
of the busy part: quiet, busy, quiet.

Run as ``python -m sentinel.video.synth SOURCE DEST [--quiet-s 60] [--busy]`` to write a clip.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.stream import VideoStream
from numpy.typing import NDArray

MEDIAN_SAMPLES = 51  # frames the background is the median of (odd: a real pixel value)


@dataclass(frozen=True)
class QuietClip:
    """A written clip and where its parts lie, in stream seconds from its first frame.

    Attributes:
        path: The video file.
        fps: Frames per second.
        frames: Frames written.
        busy: ``(start, end)`` of the busy part (real frames), ``None`` without one.
    """

    path: Path
    fps: float
    frames: int
    busy: tuple[float, float] | None

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds."""
        return self.frames / self.fps

    def quiet(self, ts: float) -> bool:
        """Whether stream time ``ts`` lies outside the busy part."""
        return self.busy is None or not self.busy[0] <= ts < self.busy[1]


def iter_frames(
    video: Path, *, step: float = 1.0, width: int | None = None
) -> Iterator[NDArray[np.uint8]]:
    """Decodes ``video`` into (H, W, 3) RGB arrays, one in every ``step`` frames.

    Args:
        video: The file to read.
        step: Take frames ``0, step, 2 * step, ...`` (rounded down); 1 takes them all.
        width: Scale to this width (even, aspect kept) when given.

    Yields:
        The frames, in order.
    """
    if step < 1.0:
        raise ValueError(f"step must be >= 1, but got {step}")
    taken = 0
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index < int(taken * step):
                continue
            taken += 1
            if width is not None:
                height = 2 * max(1, round(width * frame.height / frame.width / 2))
                frame = frame.reformat(width=width, height=height)
            yield np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def median_background(frames: Sequence[NDArray[np.uint8]]) -> NDArray[np.uint8]:
    """The per-pixel temporal median of ``frames`` (of one size; an odd count picks a real
    pixel value).

    Objects that move through the scene are in any one place for a minority of the frames and
    vanish; parked ones stay.

    Args:
        frames: Frames spread over the video (e.g. 51 evenly spaced ones).

    Returns:
        The (H, W, 3) uint8 background.
    """
    if not frames:
        raise ValueError("median_background needs at least one frame")
    stack = np.stack(frames)
    out = np.empty(stack.shape[1:], dtype=np.uint8)
    rows = 32  # in bands of rows: the median's working copy stays a few MB
    for top in range(0, stack.shape[1], rows):
        band = np.median(stack[:, top : top + rows], axis=0)
        out[top : top + rows] = band.round().astype(np.uint8)
    return out


@dataclass(frozen=True)
class SensorModel:
    """What a real camera adds to a still scene.

    Attributes:
        noise_std: Standard deviation of the per-pixel, per-frame Gaussian noise (gray levels).
        drift: Amplitude of the slow lighting change, as a fraction of the brightness.
        drift_period_s: Period of the lighting change (clouds, the sun), in seconds.
        seed: Seed of the noise.
    """

    noise_std: float = 3.0
    drift: float = 0.06
    drift_period_s: float = 90.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.noise_std < 0.0 or not 0.0 <= self.drift < 1.0 or self.drift_period_s <= 0.0:
            raise ValueError(
                "need noise_std >= 0, 0 <= drift < 1 and drift_period_s > 0, but got "
                f"{self.noise_std}, {self.drift}, {self.drift_period_s}"
            )

    def gain(self, t: float) -> float:
        """Brightness factor at time ``t``: a slow sine plus a slower one, never abrupt."""
        phase = 2.0 * math.pi * t / self.drift_period_s
        return 1.0 + self.drift * (0.7 * math.sin(phase) + 0.3 * math.sin(0.37 * phase + 1.0))


def sensor_frames(
    scene: Iterator[NDArray[np.uint8]], fps: float, sensor: SensorModel, start: int = 0
) -> Iterator[NDArray[np.uint8]]:
    """Applies lighting drift and noise to each frame of ``scene``.

    Args:
        scene: RGB frames.
        fps: Their rate (the drift follows time).
        sensor: The sensor model.
        start: Index of the first frame in the whole clip (keeps the drift continuous).

    Yields:
        The frames as the sensor would see them.
    """
    rng = np.random.default_rng(sensor.seed + start)
    for offset, frame in enumerate(scene):
        out = frame.astype(np.float32) * sensor.gain((start + offset) / fps)
        if sensor.noise_std > 0.0:
            noise = rng.standard_normal(frame.shape[:2], dtype=np.float32)
            noise *= sensor.noise_std
            out += noise[:, :, None]  # luminance noise, as on most sensors
        yield np.clip(out, 0.0, 255.0).round().astype(np.uint8)


def write_quiet_clip(
    source: Path,
    dest: Path,
    *,
    quiet_s: float = 60.0,
    fps: float | None = None,
    busy: bool = False,
    width: int | None = None,
    sensor: SensorModel | None = None,
    codec: str = "libx264",
    background: NDArray[np.uint8] | None = None,
) -> QuietClip:
    """Writes ``quiet_s`` of the source's scene without its moving objects (and, with
    ``busy``, the source's real frames between two such stretches).

    Args:
        source: The video whose scene is used (e.g. the PETS09 sample).
        dest: The file to write (the container follows its suffix, e.g. ``.mp4``).
        quiet_s: Seconds of each quiet stretch.
        fps: Frame rate of the clip; defaults to the source's. With ``busy`` the real frames
            are taken every ``source fps / fps``-th, so they keep their speed.
        busy: Put the source's frames between two quiet stretches.
        width: Scale the frames to this width (even); defaults to the source's.
        sensor: Lighting drift and noise; defaults to :class:`SensorModel`.
        codec: Encoder (libx264 at ``ultrafast``, like a cheap camera; ``mpeg4`` also works).
        background: The scene without its moving objects, from :func:`scene_background` for
            the same ``source`` and ``width`` (computed when not given).

    Returns:
        The clip and where its busy part lies.

    Raises:
        ValueError: On a negative ``quiet_s``, a clip without frames or a bad ``fps``.
    """
    if quiet_s < 0.0:
        raise ValueError(f"quiet_s must be >= 0, but got {quiet_s}")
    sensor = sensor if sensor is not None else SensorModel()
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        source_fps = float(rate) if rate else 25.0
    fps = source_fps if fps is None else fps
    if not 0.0 < fps <= source_fps:
        raise ValueError(f"fps must be in (0, {source_fps}], but got {fps}")
    step = source_fps / fps
    count = _count_frames(source)
    if background is None:
        background = scene_background(source, width=width)
    busy_n = int(count / step) if busy else 0
    quiet_n = round(quiet_s * fps)
    total = 2 * quiet_n + busy_n if busy else quiet_n
    if total == 0:
        raise ValueError("the clip would have no frames")

    def scene() -> Iterator[NDArray[np.uint8]]:
        yield from itertools.repeat(background, quiet_n)
        if busy:  # the real frames, streamed (the whole sample is ~1 GB as RGB)
            yield from itertools.islice(iter_frames(source, step=step, width=width), busy_n)
            yield from itertools.repeat(background, quiet_n)

    height, frame_width = background.shape[:2]
    rate_q = Fraction(fps).limit_denominator(1000)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(dest), "w") as out:
        video = out.add_stream(codec, rate=rate_q)
        if not isinstance(video, VideoStream):
            raise ValueError(f"{codec} is not a video encoder")
        video.width, video.height, video.pix_fmt = frame_width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"preset": "ultrafast", "crf": "23", "g": str(round(2 * fps))}
        for rgb in sensor_frames(scene(), fps, sensor):
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    span = (quiet_n / fps, (quiet_n + busy_n) / fps) if busy else None
    return QuietClip(path=dest, fps=fps, frames=total, busy=span)


def scene_background(source: Path, *, width: int | None = None) -> NDArray[np.uint8]:
    """The median of ``MEDIAN_SAMPLES`` frames spread over ``source`` (see
    :func:`median_background`), scaled to ``width`` when given."""
    step = max(1.0, _count_frames(source) / MEDIAN_SAMPLES)
    return median_background(list(iter_frames(source, step=step, width=width)))


def _count_frames(video: Path) -> int:
    """Frames in ``video``, by demuxing (no decoding)."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        count = sum(1 for packet in container.demux(stream) if packet.size)
    if count == 0:
        raise ValueError(f"{video} has no video frames")
    return count


def main(argv: list[str] | None = None) -> int:
    """Command line: writes a quiet clip and prints where its parts lie."""
    parser = argparse.ArgumentParser(prog="python -m sentinel.video.synth", description=__doc__)
    parser.add_argument("source", type=Path, help="video whose scene is used")
    parser.add_argument("dest", type=Path, help="file to write (.mp4)")
    parser.add_argument("--quiet-s", type=float, default=60.0, help="seconds of each quiet part")
    parser.add_argument("--fps", type=float, default=None, help="frame rate (default: source)")
    parser.add_argument("--busy", action="store_true", help="quiet, the real frames, quiet")
    parser.add_argument("--width", type=int, default=None, help="frame width (default: source)")
    parser.add_argument("--noise", type=float, default=SensorModel.noise_std, help="noise std")
    parser.add_argument("--drift", type=float, default=SensorModel.drift, help="lighting drift")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    clip = write_quiet_clip(
        args.source,
        args.dest,
        quiet_s=args.quiet_s,
        fps=args.fps,
        busy=args.busy,
        width=args.width,
        sensor=SensorModel(noise_std=args.noise, drift=args.drift, seed=args.seed),
    )
    busy = f", busy {clip.busy[0]:.1f}-{clip.busy[1]:.1f} s" if clip.busy else ""
    print(f"{clip.path}: {clip.frames} frames at {clip.fps:g} fps, {clip.duration_s:.1f} s{busy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
