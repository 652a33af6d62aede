"""VideoSource against real media: files, a GStreamer RTSP server, HTTP files and MJPEG.

No Ray here. Servers bind 127.0.0.1 only, and a server that cannot start fails the test.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from itertools import islice, pairwise
from pathlib import Path

import numpy as np
import pytest

from sentinel.domain.sources import SourceKind
from sentinel.video.source import (
    DecodedFrame,
    SourceError,
    VideoSource,
    to_gray_small,
    to_rgb,
)
from tests.utils import media

SAMPLE_FRAMES = 795


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip20(media_dir: Path) -> Path:
    """20 s of the sample as H.264 MP4: 200 frames at 10 fps."""
    return media.h264_clip(media_dir, 20)


@pytest.fixture(scope="module")
def clip2(media_dir: Path) -> Path:
    """2 s of the sample as H.264 MP4: 20 frames at 10 fps."""
    return media.h264_clip(media_dir, 2)


def _assert_increasing(frames: list[DecodedFrame]) -> None:
    assert [f.index for f in frames] == list(range(frames[0].index, frames[0].index + len(frames)))
    assert all(b.ts > a.ts for a, b in pairwise(frames))


class FakeTime:
    """A clock whose sleep advances it; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_sample_file_decodes_every_frame_non_realtime() -> None:
    source = VideoSource(str(media.sample_video()), realtime=False)
    with source:
        info = source.open()
        frames = list(source.frames())
    assert (info.width, info.height, info.fps, info.kind) == (768, 576, 10.0, SourceKind.FILE)
    assert info.codec == "msmpeg4"
    assert len(frames) == SAMPLE_FRAMES
    _assert_increasing(frames)
    assert frames[0].ts == 0.0
    assert frames[-1].ts == pytest.approx(79.4)
    assert (source.packets_demuxed, source.frames_decoded, source.decode_errors) == (795, 795, 0)


def test_relative_path_and_auto_threads(clip2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(clip2.parent)
    source = VideoSource(clip2.name, realtime=False, thread_count=0)
    assert len(list(source.frames())) == 20
    source.close()


@pytest.mark.parametrize("which", ["avi", "mp4"])
def test_looping_file_continues_timestamps(which: str, clip2: Path) -> None:
    path = media.sample_video() if which == "avi" else clip2
    per_loop = SAMPLE_FRAMES if which == "avi" else 20
    with VideoSource(str(path), realtime=False, loop=True) as source:
        frames = list(islice(source.frames(), int(per_loop * 2.5)))
    _assert_increasing(frames)
    steps = np.diff([f.ts for f in frames])
    assert np.allclose(steps, 0.1, atol=1e-6), "ts continues one frame interval across loops"
    assert frames[per_loop].ts == pytest.approx(frames[per_loop - 1].ts + 0.1)
    assert source.decode_errors == 0


def test_realtime_pacing_sleeps_until_each_frame_is_due(clip2: Path) -> None:
    fake = FakeTime()
    source = VideoSource(str(clip2), realtime=True, loop=False, clock=fake.clock, sleep=fake.sleep)
    frames = list(source.frames())
    source.close()
    assert len(frames) == 20
    assert len(fake.sleeps) == 19  # the first frame is due at once
    assert fake.sleeps == pytest.approx([0.1] * 19, abs=1e-6)


def test_realtime_pacing_never_sleeps_to_catch_up(clip2: Path) -> None:
    fake = FakeTime()
    source = VideoSource(str(clip2), realtime=True, loop=True, clock=fake.clock, sleep=fake.sleep)
    slept_before: dict[int, int] = {}
    for item in islice(source.frames(), 30):
        slept_before[item.index] = len(fake.sleeps)
        if item.index == 5:
            fake.now += 0.25  # a slow consumer: frames 6 and 7 are late
        if item.index == 12:
            fake.now += 3.0  # a stall: playback resumes from here, without a burst
    source.close()
    assert all(0 < s <= 0.1 + 1e-6 for s in fake.sleeps)
    late = [i for i in range(1, 30) if slept_before[i] == slept_before[i - 1]]
    assert late == [6, 7, 13]
    assert fake.sleeps[slept_before[14] - 1] == pytest.approx(0.1)


def test_realtime_file_plays_at_native_rate_on_the_wall_clock(clip20: Path) -> None:
    source = VideoSource(str(clip20), realtime=True, loop=False)
    source.open()
    started = time.monotonic()
    frames = list(islice(source.frames(), 21))  # frame 20 is due 2.0 s after frame 0
    elapsed = time.monotonic() - started
    source.close()
    assert len(frames) == 21
    assert 1.95 <= elapsed <= 2.4


def test_missing_file_is_not_retryable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError, match="not found") as info:
        VideoSource(str(missing)).open()
    assert not info.value.retryable
    assert str(missing) in str(info.value)


def test_directory_is_not_retryable(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a regular file") as info:
        VideoSource(str(tmp_path)).open()
    assert not info.value.retryable


@pytest.mark.parametrize("content", ["random", "text"])
def test_corrupt_file_is_not_retryable(content: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    if content == "random":
        media.corrupt_file(path)
    else:
        path.write_text("this is not a video\n" * 100)
    with pytest.raises(SourceError) as info:
        list(VideoSource(str(path), realtime=False).frames())
    assert not info.value.retryable
    assert "corrupt video" in str(info.value) and str(path) in str(info.value)


def test_undecodable_frames_make_a_corrupt_file(clip20: Path, tmp_path: Path) -> None:
    start, end = media.mp4_media_span(clip20)
    bad = media.damaged_copy(clip20, tmp_path / "bad.mp4", start, int((end - start) * 0.35))
    source = VideoSource(str(bad), realtime=False)
    with pytest.raises(SourceError, match="corrupt video") as info:
        list(source.frames())
    assert not info.value.retryable
    assert "of the first" in str(info.value)


def test_a_few_bad_packets_are_skipped_and_counted(clip20: Path, tmp_path: Path) -> None:
    start, end = media.mp4_media_span(clip20)
    bad = media.damaged_copy(clip20, tmp_path / "dent.mp4", start, int((end - start) * 0.08))
    source = VideoSource(str(bad), realtime=False)
    frames = list(source.frames())
    assert source.decode_errors >= 1
    assert len(frames) == source.frames_decoded >= 150
    assert source.packets_demuxed == 200
    _assert_increasing(frames)


@pytest.mark.parametrize(("which", "low", "high"), [("avi", 390, 400), ("mp4", 80, 120)])
def test_truncated_file_decodes_what_it_can(
    which: str, low: int, high: int, clip20: Path, tmp_path: Path
) -> None:
    src = media.sample_video() if which == "avi" else clip20
    cut = media.truncated_copy(src, tmp_path / f"cut.{which}", 0.5)
    source = VideoSource(str(cut), realtime=False)
    frames = list(source.frames())
    assert low <= len(frames) <= high
    _assert_increasing(frames)


def test_rtsp_stream_reads_at_about_real_time(clip20: Path) -> None:
    with media.rtsp_server(clip20) as url:
        source = VideoSource(url, open_timeout_s=5, read_timeout_s=5)
        started = time.monotonic()
        info = source.open()
        opened = time.monotonic() - started
        frames = list(islice(source.frames(), 41))
        elapsed = time.monotonic() - started
        source.close()
    assert (info.width, info.height, info.codec, info.kind) == (768, 576, "h264", SourceKind.RTSP)
    assert info.fps == 10.0
    assert opened < 2.0
    _assert_increasing(frames)
    assert frames[-1].ts - frames[0].ts == pytest.approx(4.0, abs=0.15)
    assert 3.5 <= elapsed <= 5.0, "41 frames at 10 fps arrive over about 4 s"
    assert frames[-1].frame.width == 768


def test_rtsp_stream_end_is_retryable(media_dir: Path) -> None:
    clip = media.h264_clip(media_dir, 3)
    with media.rtsp_server(clip) as url:
        source = VideoSource(url, open_timeout_s=5, read_timeout_s=5)
        frames: list[DecodedFrame] = []
        with pytest.raises(SourceError, match="stream ended") as info:
            frames.extend(source.frames())
        frames.extend(islice(source.frames(), 5))  # a retry reconnects
        source.close()
    assert info.value.retryable
    assert 30 <= len(frames) <= 35
    _assert_increasing(frames)


def test_rtsp_wrong_path_is_not_retryable(clip2: Path) -> None:
    with media.rtsp_server(clip2, mount="cam") as url:
        wrong = url.rsplit("/", 1)[0] + "/nope"
        with pytest.raises(SourceError, match="404") as info:
            VideoSource(wrong, open_timeout_s=5).open()
    assert not info.value.retryable


def test_unreachable_rtsp_is_retryable_and_fast() -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{media.free_port()}/cam"
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        VideoSource(url, open_timeout_s=2, read_timeout_s=2).open()
    assert time.monotonic() - started < 2.5
    assert info.value.retryable
    assert "hunter2" not in str(info.value) and "admin:***@127.0.0.1" in str(info.value)


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_times_out_retryable(scheme: str) -> None:
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}/cam"
        started = time.monotonic()
        with pytest.raises(SourceError, match="timed out") as info:
            VideoSource(url, open_timeout_s=1.5, read_timeout_s=1.5).open()
        elapsed = time.monotonic() - started
    assert info.value.retryable
    assert 1.3 <= elapsed <= 3.5


@pytest.fixture
def http_dir(clip20: Path, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "clip.mp4").write_bytes(clip20.read_bytes())
    media.corrupt_file(tmp_path / "junk.mp4")
    with media.http_file_server(tmp_path) as base:
        yield base


def test_http_mp4_reads(http_dir: str) -> None:
    source = VideoSource(f"{http_dir}/clip.mp4", realtime=False)
    info = source.open()
    frames = list(source.frames())
    source.close()
    assert (info.codec, info.kind, info.fps) == ("h264", SourceKind.HTTP, 10.0)
    assert len(frames) == 200
    _assert_increasing(frames)


@pytest.mark.parametrize(("name", "retryable"), [("missing.mp4", False), ("junk.mp4", False)])
def test_http_errors(http_dir: str, name: str, retryable: bool) -> None:
    with pytest.raises(SourceError) as info:
        VideoSource(f"{http_dir}/{name}", open_timeout_s=3).open()
    assert info.value.retryable is retryable


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/x-mixed-replace; boundary=frame",  # FFmpeg picks mpjpeg by Content-Type
        "application/octet-stream",  # mislabelled: FFmpeg finds mpjpeg by probing the content
    ],
)
def test_http_mjpeg_reads(content_type: str) -> None:
    jpegs = media.jpeg_frames(media.sample_video(), 10, width=320)
    with media.mjpeg_server(jpegs, fps=10, content_type=content_type) as url:
        source = VideoSource(url, open_timeout_s=5, read_timeout_s=5)
        info = source.open()
        started = time.monotonic()
        frames = list(islice(source.frames(), 20))
        elapsed = time.monotonic() - started
        source.close()
    assert (info.codec, info.kind, info.width, info.height) == ("mjpeg", SourceKind.HTTP, 320, 240)
    assert info.fps == 0.0  # MJPEG does not say; FFmpeg's 25 fps would be wrong here
    _assert_increasing(frames)
    assert 1.5 <= elapsed <= 3.0
    assert frames[-1].ts - frames[0].ts == pytest.approx(1.9, abs=0.3), "stamped on arrival"


def test_http_mjpeg_mislabelled_with_preamble_still_reads() -> None:
    # FFmpeg falls back to its raw "mjpeg" demuxer here, whose probe reads ~5 s of stream.
    jpegs = media.jpeg_frames(media.sample_video(), 10, width=320)
    octet = "application/octet-stream"
    with media.mjpeg_server(jpegs, fps=10, content_type=octet, preamble=b"\r\n") as url:
        source = VideoSource(url, open_timeout_s=10, read_timeout_s=5)
        info = source.open()
        frames = list(islice(source.frames(), 60))
        source.close()
    assert (info.codec, info.width, info.height, info.fps) == ("mjpeg", 320, 240, 0.0)
    _assert_increasing(frames)
    assert frames[-1].ts >= 0.5  # stamped on arrival: the frames after the probe's burst


def test_hls_over_http_reads(clip20: Path, tmp_path: Path) -> None:
    media.hls_playlist(tmp_path, clip20)
    with media.http_file_server(tmp_path) as base:
        frames = list(VideoSource(f"{base}/list.m3u8", realtime=False).frames())
    assert 19 <= len(frames) <= 23


@pytest.mark.parametrize("direction", ["http playlist -> file", "file playlist -> http"])
def test_a_playlist_cannot_switch_protocol(direction: str, clip20: Path, tmp_path: Path) -> None:
    with media.http_file_server(tmp_path) as base:
        if direction.startswith("http"):
            media.hls_playlist(tmp_path, clip20, segment_url=f"file://{tmp_path}/seg.ts")
            source = VideoSource(f"{base}/list.m3u8", realtime=False, open_timeout_s=3)
        else:
            playlist = media.hls_playlist(tmp_path, clip20, segment_url=f"{base}/seg.ts")
            source = VideoSource(str(playlist), realtime=False, open_timeout_s=3)
        with pytest.raises(SourceError) as info:
            list(source.frames())
    assert not info.value.retryable


def test_frames_again_after_the_end_starts_over(clip2: Path) -> None:
    source = VideoSource(str(clip2), realtime=False)
    frames = list(source.frames()) + list(source.frames())
    assert len(frames) == 40
    _assert_increasing(frames)


def test_reopen_continues_the_timeline(clip2: Path) -> None:
    source = VideoSource(str(clip2), realtime=False)
    first = list(islice(source.frames(), 5))
    source.close()
    source.open()
    second = list(islice(source.frames(), 5))
    source.close()
    _assert_increasing(first + second)
    assert second[0].ts == pytest.approx(first[-1].ts + 0.1)


def test_to_rgb_and_to_gray_small_shapes() -> None:
    with VideoSource(str(media.sample_video()), realtime=False) as source:
        frame = next(source.frames()).frame
    rgb = to_rgb(frame)
    assert rgb.shape == (576, 768, 3) and rgb.dtype == np.uint8
    gray = to_gray_small(frame)
    assert gray.shape == (72, 96) and gray.dtype == np.uint8
    assert to_gray_small(frame, width=64).shape == (48, 64)
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert abs(float(gray.mean()) - float(luma.mean())) < 8
    with pytest.raises(ValueError):
        to_gray_small(frame, width=0)
