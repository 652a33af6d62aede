"""Real media for tests: the sample video, derived clips, and local camera-like servers.

Every server here binds 127.0.0.1 only. Helpers fail loudly (with how to fix it) instead of
skipping: a test that needs a camera and cannot get one is a failed test.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import queue
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import av
from PIL import Image

SAMPLE_VIDEO_ENV = "SENTINEL_SAMPLE_VIDEO"
DEFAULT_SAMPLE_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
SYSTEM_PYTHON = Path("/usr/bin/python3")
RTSP_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
HOST = "127.0.0.1"


def sample_video() -> Path:
    """Returns the sample video (PETS09 ``vtest.avi``: 768x576, 10 fps, 795 frames).

    ``SENTINEL_SAMPLE_VIDEO`` overrides the location.

    Raises:
        FileNotFoundError: the file is missing, with how to install it.
    """
    override = os.environ.get(SAMPLE_VIDEO_ENV)
    path = Path(override) if override else DEFAULT_SAMPLE_VIDEO
    if not path.is_file():
        raise FileNotFoundError(
            f"sample video not found at {path}. Install it with `make test` (which installs the "
            f"Debian package opencv-doc) or `apt-get install opencv-doc`, or point "
            f"{SAMPLE_VIDEO_ENV} at a video file."
        )
    return path


def _ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg CLI not found: `apt-get install ffmpeg` (Debian package)")
    return ffmpeg


def h264_clip(dest_dir: Path, seconds: float = 20) -> Path:
    """Transcodes the first ``seconds`` of the sample to an H.264 MP4 (cached by name).

    libx264, a keyframe every 20 frames, yuv420p and ``+faststart`` (index first, so the file
    streams over HTTP and survives truncation).

    Args:
        dest_dir: Folder for the clip; an existing clip of the same length is reused.
        seconds: Length of the clip.

    Returns:
        The path of the MP4 file.

    Raises:
        RuntimeError: ffmpeg is missing or failed (with its stderr).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"sample-h264-{seconds:g}s.mp4"
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    # Write to a private name, then rename: concurrent test workers never see a partial file.
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.part.mp4")
    cmd = [
        _ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-i", str(sample_video()), "-t", f"{seconds:g}", "-an",
        "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(partial),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()}")
    partial.replace(dest)
    return dest


def hls_playlist(dest_dir: Path, clip: Path, segment_url: str | None = None) -> Path:
    """Writes an HLS playlist with one MPEG-TS segment remuxed from ``clip`` (H.264 MP4).

    Args:
        dest_dir: Folder for ``seg.ts`` and ``list.m3u8``.
        clip: Source of the segment (its first 2 s).
        segment_url: URL the playlist gives for the segment; ``seg.ts`` (relative) if None.

    Returns:
        The playlist's path.
    """
    segment = dest_dir / "seg.ts"
    cmd = [
        _ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(clip),
        "-t", "2", "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "mpegts", str(segment),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()}")
    playlist = dest_dir / "list.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\n{segment_url or 'seg.ts'}\n#EXT-X-ENDLIST\n"
    )
    return playlist


def corrupt_file(dest: Path, size: int = 256 * 1024, seed: int = 1234) -> Path:
    """Writes ``size`` random bytes to ``dest`` (give it a video name, e.g. ``bad.mp4``)."""
    dest.write_bytes(random.Random(seed).randbytes(size))
    return dest


def truncated_copy(src: Path, dest: Path, fraction: float) -> Path:
    """Copies the first ``fraction`` (0 < fraction < 1) of ``src`` to ``dest``."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def damaged_copy(src: Path, dest: Path, start: int, length: int, seed: int = 99) -> Path:
    """Copies ``src`` to ``dest`` with ``length`` bytes from ``start`` overwritten at random."""
    data = bytearray(src.read_bytes())
    if not 0 <= start <= start + length <= len(data):
        raise ValueError(f"range {start}+{length} is outside {src} ({len(data)} bytes)")
    data[start : start + length] = random.Random(seed).randbytes(length)
    dest.write_bytes(bytes(data))
    return dest


def mp4_media_span(path: Path) -> tuple[int, int]:
    """Returns the byte range of the ``mdat`` payload (the coded frames) of an MP4 file."""
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[offset + 8 : offset + 16])[0], 16
        elif size == 0:
            size = len(data) - offset
        if kind == b"mdat":
            return offset + header, offset + size
        if size < header:
            break
        offset += size
    raise ValueError(f"{path} has no mdat box")


def jpeg_frames(video: Path, count: int, width: int = 320) -> list[bytes]:
    """Decodes the first ``count`` frames of ``video`` and encodes them as JPEG (for MJPEG)."""
    out: list[bytes] = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            height = max(2, round(width * frame.height / frame.width / 2) * 2)
            rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
            image = Image.fromarray(rgb)
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=80)
            out.append(buf.getvalue())
            if len(out) == count:
                break
    if len(out) < count:
        raise RuntimeError(f"{video} has only {len(out)} frames, {count} wanted")
    return out


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def rtsp_server(
    file: Path, port: int | None = None, mount: str = "cam", start_timeout_s: float = 20.0
) -> Iterator[str]:
    """Serves an H.264 MP4 over RTSP with GStreamer (tests/utils/rtsp_server.py).

    Args:
        file: The H.264 MP4 to serve (see `h264_clip`).
        port: TCP port; None lets the server pick a free one (no race).
        mount: Mount point of the stream.
        start_timeout_s: How long to wait for the server's READY line.

    Yields:
        The URL, ``rtsp://127.0.0.1:<port>/<mount>``.

    Raises:
        RuntimeError: the server did not start, with its stderr and how to fix it.
    """
    if not SYSTEM_PYTHON.is_file():
        raise RuntimeError(
            f"{SYSTEM_PYTHON} not found; the RTSP test server needs Debian's python3"
        )
    cmd = [
        str(SYSTEM_PYTHON), str(RTSP_SERVER_SCRIPT),
        "--file", str(file), "--port", str(port or 0), "--mount", mount,
    ]  # fmt: skip
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            url = _wait_ready(proc, start_timeout_s)
            if url is None:
                stderr.seek(0)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)  # it may be exiting: report its code if so
                code = proc.poll()
                why = f"exited with code {code}" if code is not None else "was not READY"
                raise RuntimeError(
                    f"RTSP test server {why} within {start_timeout_s:g} s: {' '.join(cmd)}. "
                    "It needs Debian's gir1.2-gst-rtsp-server-1.0 "
                    "python3-gi gstreamer1.0-plugins-{base,good,bad,ugly}. stderr:\n"
                    + stderr.read()
                )
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float) -> str | None:
    """Returns the URL from the server's ``READY <url>`` line, or None on timeout or exit."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="rtsp-server-stdout", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return None
        if line is None:
            return None
        if line.startswith("READY"):
            return line.split(maxsplit=1)[1].strip()
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keeps test output clean: no access log on stderr."""


@contextlib.contextmanager
def _serve(
    server: ThreadingHTTPServer, before_close: Callable[[], None] | None = None
) -> Iterator[str]:
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        if before_close is not None:
            before_close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def http_file_server(directory: Path) -> Iterator[str]:
    """Serves ``directory`` over HTTP on 127.0.0.1 (random port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    with _serve(ThreadingHTTPServer((HOST, 0), handler)) as url:
        yield url


class _MjpegHandler(BaseHTTPRequestHandler):
    frames: ClassVar[list[bytes]] = []
    interval_s: ClassVar[float] = 0.1
    mime: ClassVar[str] = "multipart/x-mixed-replace; boundary=frame"
    preamble: ClassVar[bytes] = b""
    stop: ClassVar[threading.Event]

    def log_message(self, format: str, *args: Any) -> None:
        """Keeps test output clean: no access log on stderr."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.mime)
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        due = time.monotonic()
        self.wfile.write(self.preamble)
        index = 0
        try:
            while not self.stop.is_set():
                jpeg = self.frames[index % len(self.frames)]
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode("ascii") + jpeg + b"\r\n")
                self.wfile.flush()
                index += 1
                due += self.interval_s
                self.stop.wait(max(0.0, due - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away, as camera clients do


@contextlib.contextmanager
def mjpeg_server(
    frames: list[bytes],
    fps: float,
    content_type: str = "multipart/x-mixed-replace; boundary=frame",
    preamble: bytes = b"",
) -> Iterator[str]:
    """An IP-camera-like MJPEG server: ``multipart/x-mixed-replace; boundary=frame``.

    Every client gets the frames in a loop at ``fps``, forever, until the context exits.

    Args:
        frames: JPEG images (see `jpeg_frames`).
        fps: Frames per second sent to each client.
        content_type: The response's Content-Type (some cameras send a wrong one).
        preamble: Bytes sent before the first part (some cameras send a blank line).

    Yields:
        The stream URL, ``http://127.0.0.1:<port>/video.mjpg``.
    """
    if not frames or fps <= 0:
        raise ValueError("mjpeg_server needs at least one frame and fps > 0")
    stop = threading.Event()
    handler = type(
        "MjpegHandler",
        (_MjpegHandler,),
        {
            "frames": list(frames),
            "interval_s": 1.0 / fps,
            "stop": stop,
            "mime": content_type,
            "preamble": preamble,
        },
    )
    with _serve(ThreadingHTTPServer((HOST, 0), handler), before_close=stop.set) as url:
        yield f"{url}/video.mjpg"
