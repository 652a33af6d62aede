"""Pure parts of sentinel.video: source classification, redaction, backoff, frame sampling."""

from __future__ import annotations

import itertools
import random

import pytest

from sentinel.domain.sources import SourceKind, classify_source, redact_source
from sentinel.video.sampling import FrameSampler
from sentinel.video.source import (
    Backoff,
    SourceError,
    VideoSource,
)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("/data/cams/front.mp4", SourceKind.FILE),
        ("clips/front.mp4", SourceKind.FILE),
        ("./front door.mp4", SourceKind.FILE),
        ("clips/a:b.mp4", SourceKind.FILE),
        ("./a:b.mp4", SourceKind.FILE),
        ("vtest.avi", SourceKind.FILE),
        ("rtsp://127.0.0.1:8554/cam", SourceKind.RTSP),
        ("rtsp://user:pa%40ss@cam.local/stream1", SourceKind.RTSP),
        ("RTSP://CAM.LOCAL/x", SourceKind.RTSP),
        ("rtsps://cam.local:322/x", SourceKind.RTSP),
        ("http://127.0.0.1:8080/video.mjpg", SourceKind.HTTP),
        ("https://cam.example.com/live.mp4?x=1", SourceKind.HTTP),
        ("http://[::1]:8080/v.mp4", SourceKind.HTTP),
    ],
)
def test_classify_source_accepts(source: str, kind: SourceKind) -> None:
    assert classify_source(source) is kind


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty"),
        ("file:///etc/passwd", "scheme 'file:'"),
        ("file:/etc/passwd", "scheme 'file:'"),
        ("FILE:/etc/passwd", "scheme 'FILE:'"),
        ("concat:/a.mp4|/b.mp4", "scheme 'concat:'"),
        ("subfile,,start,0,end,0,,:/etc/shadow", "not allowed"),
        ("subfile:/etc/passwd", "scheme 'subfile:'"),
        ("data:video/mp4;base64,AAAA", "scheme 'data:'"),
        ("pipe:0", "scheme 'pipe:'"),
        ("ftp://host/a.mp4", "scheme 'ftp:'"),
        ("javascript:alert(1)", "scheme 'javascript:'"),
        ("tcp://127.0.0.1:9000", "scheme 'tcp:'"),
        ("udp://239.0.0.1:1234", "scheme 'udp:'"),
        ("hls+http://host/a.m3u8", "scheme 'hls+http:'"),
        ("crypto:/a.mp4", "scheme 'crypto:'"),
        ("gopher://host/", "scheme 'gopher:'"),
        ("a:b.mp4", "scheme 'a:'"),
        ("rtsp:cam", "no host"),
        ("rtsp://", "no host"),
        ("http:///path", "no host"),
        ("http://host:99999/x", "not a valid URL"),
        ("http://host/a b.mp4", "space"),
        ("http://host\\@evil/x", "backslash"),
        ("/tmp/a.mp4\n", "control characters"),
        ("/tmp/a\x00.mp4", "control characters"),
        ("rtsp://host/a\r\nX-Injected: 1", "control characters"),
        ("/tmp/a\x7f.mp4", "control characters"),
        (" /tmp/a.mp4", "whitespace"),
        ("/tmp/a.mp4 ", "whitespace"),
        ("/" + "a" * 5000, "longer than"),
    ],
)
def test_classify_source_rejects_hostile_input(source: str, message: str) -> None:
    with pytest.raises(ValueError, match="video source") as info:
        classify_source(source)
    assert message in str(info.value)


def test_rejection_explains_accepted_forms() -> None:
    with pytest.raises(ValueError, match=r"rtsp:// or rtsps:// URL, or http:// or https:// URL"):
        classify_source("concat:a|b")


def test_rejected_source_never_becomes_a_video_source() -> None:
    with pytest.raises(ValueError):
        VideoSource("pipe:0")
    with pytest.raises(ValueError, match="loop is only supported for files"):
        VideoSource("rtsp://127.0.0.1/cam", loop=True)


def test_rejection_message_does_not_leak_password() -> None:
    with pytest.raises(ValueError) as info:
        classify_source("rtsp://admin:hunter2@cam/a\nb")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("rtsp://admin:hunter2@cam.local:554/s1", "rtsp://admin:***@cam.local:554/s1"),
        ("http://u:p%40ss@h/v.mjpg", "http://u:***@h/v.mjpg"),
        ("http://u:@h/v.mjpg", "http://u:***@h/v.mjpg"),
        ("rtsp://viewer@cam/s1", "rtsp://viewer@cam/s1"),
        ("rtsp://cam/s1", "rtsp://cam/s1"),
        ("http://cam/video.cgi?user=admin&pwd=secret", "http://cam/video.cgi?user=admin&pwd=***"),
        ("http://cam/v?token=abc&x=1", "http://cam/v?token=***&x=1"),
        ("http://cam/v?x=a%2Fb", "http://cam/v?x=a%2Fb"),
        ("/data/cams/front.mp4", "/data/cams/front.mp4"),
    ],
)
def test_redact_source(source: str, shown: str) -> None:
    assert redact_source(source) == shown


def test_source_error_carries_retryable() -> None:
    error = SourceError("rtsp source rtsp://cam: timed out", retryable=True)
    assert error.retryable and "timed out" in str(error)


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(initial_s=1.0, max_s=10.0, factor=2.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 1.0


def test_backoff_jitter_stays_in_bounds_and_is_seedable() -> None:
    a = Backoff(initial_s=2.0, max_s=30.0, jitter=0.25, rng=random.Random(7))
    b = Backoff(initial_s=2.0, max_s=30.0, jitter=0.25, rng=random.Random(7))
    delays = [a.next() for _ in range(12)]
    assert delays == [b.next() for _ in range(12)]
    base = 2.0
    for delay in delays:
        assert base * 0.75 <= delay <= min(30.0, base * 1.25)
        base = min(30.0, base * 2)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": 0.0},
        {"initial_s": 5.0, "max_s": 1.0},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_backoff_rejects_bad_bounds(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


def _taken(sampler: FrameSampler, stamps: list[float]) -> list[int]:
    return [i for i, ts in enumerate(stamps) if sampler.take(ts)]


@pytest.mark.parametrize(
    ("source_fps", "target_fps", "every"),
    [(10, 5, 2), (30, 5, 6), (25, 5, 5), (60, 10, 6), (10, 10, 1), (10, 20, 1), (5, 30, 1)],
)
def test_sampler_takes_every_nth_frame(source_fps: float, target_fps: float, every: int) -> None:
    stamps = [i / source_fps for i in range(600)]
    assert _taken(FrameSampler(target_fps), stamps) == list(range(0, 600, every))


@pytest.mark.parametrize(
    ("source_fps", "target_fps"),
    [(7, 5), (29.97, 5), (12.5, 5), (24, 7), (15, 4), (5.5, 5), (100, 3)],
)
def test_sampler_rate_approximates_target(source_fps: float, target_fps: float) -> None:
    seconds = 60
    stamps = [i / source_fps for i in range(int(seconds * source_fps))]
    taken = _taken(FrameSampler(target_fps), stamps)
    assert abs(len(taken) / seconds - target_fps) <= 0.05 * target_fps
    # No window of one second takes more than the target allows (+1 for phase).
    times = [stamps[i] for i in taken]
    for start in range(seconds - 1):
        assert sum(start <= t < start + 1 for t in times) <= target_fps + 1


def test_sampler_is_robust_to_jitter() -> None:
    rng = random.Random(3)
    stamps = [i / 30 + rng.uniform(-0.008, 0.008) for i in range(1800)]
    stamps = [max(s, stamps[i - 1] + 1e-4) if i else s for i, s in enumerate(stamps)]
    taken = _taken(FrameSampler(5), stamps)
    assert 295 <= len(taken) <= 301
    gaps = [b - a for a, b in itertools.pairwise(taken)]
    assert set(gaps) <= {5, 6, 7}


def test_sampler_does_not_burst_after_a_gap() -> None:
    sampler = FrameSampler(5)
    stamps = [i / 10 for i in range(20)] + [100 + i / 10 for i in range(20)]
    taken = _taken(sampler, stamps)
    after = [stamps[i] for i in taken if stamps[i] >= 100]
    assert after[:4] == pytest.approx([100.0, 100.2, 100.4, 100.6])


def test_sampler_restarts_when_time_goes_backwards() -> None:
    sampler = FrameSampler(5)
    assert _taken(sampler, [0.0, 0.1, 0.2, 0.3]) == [0, 2]
    assert sampler.take(0.0)  # a reconnected stream starts over
    assert not sampler.take(0.1)
    assert sampler.take(0.2)


def test_sampler_counts_and_reset() -> None:
    sampler = FrameSampler(5)
    _taken(sampler, [i / 10 for i in range(10)])
    assert (sampler.seen, sampler.taken) == (10, 5)
    sampler.reset()
    assert sampler.take(0.95)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_sampler_rejects_bad_target(bad: float) -> None:
    with pytest.raises(ValueError, match="target_fps"):
        FrameSampler(bad)


def test_sampler_rejects_non_finite_timestamp() -> None:
    with pytest.raises(ValueError, match="finite"):
        FrameSampler(5).take(float("nan"))
