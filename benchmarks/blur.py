"""Face blurring (issue 16, ``privacy.blur_faces``): what a snapshot and an export cost.

Frames: the PETS09 sample (768x576, 10 fps) with Debian's ``messi5.jpg`` pasted in, drifting
2 px a frame, so every frame has a real face (about 37 px) as well as the scene.

* **snapshot**: ``FaceBlurrer.blur`` + JPEG (what the writer thread does per snapshot) vs the
  plain JPEG of a camera that does not blur (what the camera's sink does inline); p50 ms each
  and the ratio. The blurring camera's loop pays neither: it hands the frame to the thread.
* **export**: ``redact_clip`` of an H.264 clip (``SECONDS`` s) with detection every 1, 5 and
  10 frames vs the plain export's stream copy (remux) of the same clip; wall seconds and the
  ratio, the decode + re-encode alone (a detector that finds nothing) to split the cost, and
  whether the detector still finds a face in any output frame (it must not).

``python -m benchmarks blur``; ``SENTINEL_BENCH_BLUR_SECONDS`` sets the clip length.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from benchmarks.common import BenchmarkError, median, rgb_frames, sample_video

SECONDS = float(os.environ.get("SENTINEL_BENCH_BLUR_SECONDS", "10"))
FPS = 10
MESSI = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")


def _frames(count: int) -> list[NDArray[np.uint8]]:
    if not MESSI.is_file():
        raise BenchmarkError(f"missing {MESSI}: `apt-get install opencv-doc`")
    face = np.asarray(Image.open(MESSI).convert("RGB"), dtype=np.uint8)
    fh, fw = face.shape[:2]
    out = []
    for i, rgb in enumerate(rgb_frames(sample_video(), count)):
        frame = rgb.copy()
        x = (i * 2) % (frame.shape[1] - fw)
        frame[100 : 100 + fh, x : x + fw] = face
        out.append(frame)
    return out


def _clip(frames: list[NDArray[np.uint8]], dest: Path) -> Path:
    with av.open(str(dest), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = (
            frames[0].shape[1],
            frames[0].shape[0],
            "yuv420p",
        )
        stream.options = {"preset": "ultrafast", "crf": "23", "g": str(2 * FPS)}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dest


def _remux(src: Path, dest: Path) -> None:
    """The plain export's work: packets copied into a new MP4 (no decoding)."""
    with av.open(str(src)) as inp, av.open(str(dest), "w") as out:
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        for packet in inp.demux(ist):
            if packet.dts is None:
                continue
            packet.stream = ost
            out.mux(packet)


def run(_model: Path) -> None:
    from sentinel.domain.render import encode_jpeg
    from sentinel.retention.blurring import FaceBlurrer
    from sentinel.video.redact import redact_clip

    count = max(10, round(SECONDS * FPS))
    frames = _frames(count)
    blurrer = FaceBlurrer()
    blurrer.detect(frames[0])  # load the models outside the timing
    plain_ms, blur_ms = [], []
    for rgb in frames[:: max(1, count // 10)]:
        t0 = time.perf_counter()
        encode_jpeg(rgb)
        t1 = time.perf_counter()
        blurred, _ = blurrer.blur(rgb)
        encode_jpeg(blurred)
        t2 = time.perf_counter()
        plain_ms.append((t1 - t0) * 1000)
        blur_ms.append((t2 - t1) * 1000)
    h, w = frames[0].shape[:2]
    print(
        f"blur snapshot {w}x{h}: blurred p50 {median(blur_ms):.0f} ms (writer thread) vs plain "
        f"JPEG {median(plain_ms):.1f} ms ({median(blur_ms) / median(plain_ms):.0f}x); "
        f"camera loop: 0 ms of it",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = _clip(frames, Path(tmp) / "src.mp4")
        t0 = time.perf_counter()
        _remux(src, Path(tmp) / "plain.mp4")
        plain_s = time.perf_counter() - t0
        recoded = redact_clip(src, Path(tmp) / "recoded.mp4", lambda _rgb: [], every=1)
        print(
            f"blur export {SECONDS:.0f} s: plain stream copy {plain_s:.3f} s; decode + re-encode "
            f"without detection {recoded.seconds:.2f} s ({recoded.seconds / plain_s:.0f}x)",
            flush=True,
        )
        for every in (1, 5, 10):
            dest = Path(tmp) / f"blur{every}.mp4"
            report = redact_clip(src, dest, blurrer.detect, every=every)
            with av.open(io.BytesIO(dest.read_bytes()), "r") as container:
                checked = [
                    np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
                    for i, f in enumerate(container.decode(video=0))
                    if i % 5 == 0
                ]
            left = sum(1 for rgb in checked if blurrer.detect(rgb))
            print(
                f"blur export {SECONDS:.0f} s ({report.frames} frames {w}x{h}), detect every "
                f"{every}: {report.seconds:.1f} s vs plain stream copy {plain_s:.2f} s "
                f"({report.seconds / plain_s:.0f}x; {report.seconds / recoded.seconds:.1f}x the "
                f"re-encode alone; {report.seconds / SECONDS:.2f}x real time); "
                f"frames with a face left (every 5th checked): {left}",
                flush=True,
            )
