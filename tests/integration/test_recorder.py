"""SegmentRecorder against real media: stream copy, transcoding, pre-roll, a full disk, RTSP.

No Ray here. Every segment is checked by decoding it with PyAV.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest
from av.video.stream import VideoStream

from sentinel.store.segment_repo import SegmentInfo
from sentinel.video.recorder import (
    PacketBuffer,
    RecorderState,
    SegmentRecorder,
    cleanup_orphans,
    packet_time,
)
from sentinel.video.source import VideoSource
from tests.utils import media

Packet = av.Packet


@pytest.fixture(scope="module")
def clip20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 s of the sample as H.264 MP4: 200 frames at 10 fps, a keyframe every 2 s."""
    return media.h264_clip(tmp_path_factory.mktemp("media"), 20)


@dataclass
class Played:
    frames: int
    first_is_key: bool
    duration: float
    codec: str
    size: tuple[int, int]
    times: list[float] = field(default_factory=list)


def play(path: Path) -> Played:
    """Decodes every frame of a stored segment."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        duration = float((stream.duration or 0) * (stream.time_base or 0))
        codec = stream.codec_context.name
    times = [float(f.time or 0.0) for f in frames]
    size = (frames[0].width, frames[0].height)
    return Played(len(frames), frames[0].key_frame, duration, codec, size, times)


class Store:
    """The ``on_segment`` side: moves each segment into a store folder, like the real one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.infos: list[SegmentInfo] = []
        self.paths: list[Path] = []

    def take(self, info: SegmentInfo) -> None:
        assert info.path.name.startswith(".tmp-") and info.path.is_file()
        dest = self.root / f"seg-{len(self.infos):03d}.mp4"
        info.path.replace(dest)
        self.infos.append(info)
        self.paths.append(dest)


class Camera:
    """A VideoSource feeding a recorder (created on the first packet) and a pre-roll buffer."""

    def __init__(self, source: str, directory: Path, store: Store, **kwargs: object) -> None:
        self.directory, self.store, self.kwargs = directory, store, kwargs
        self.recorder: SegmentRecorder | None = None
        self.buffer = PacketBuffer(5.0)
        self.states: set[RecorderState] = set()
        self.video = VideoSource(source, realtime=False, on_packet=self.on_packet)

    def on_packet(self, packet: Packet[VideoStream], stream: VideoStream) -> None:
        if self.recorder is None:
            self.recorder = SegmentRecorder(
                directory=self.directory,
                template_stream=stream,
                on_segment=self.store.take,
                **self.kwargs,  # type: ignore[arg-type]
            )
        self.buffer.add(packet)
        self.before_feed(packet)
        self.recorder.feed(packet, stream)
        self.states.add(self.recorder.state)

    def before_feed(self, packet: Packet[VideoStream]) -> None:
        """Hook for tests (start/stop at a given time)."""

    def run(self, until_s: float | None = None) -> SegmentRecorder:
        for frame in self.video.frames():
            if until_s is not None and frame.ts >= until_s:
                break
        self.video.close()
        assert self.recorder is not None
        return self.recorder


class Continuous(Camera):
    """Records all the time (restarting after a stop)."""

    def before_feed(self, packet: Packet[VideoStream]) -> None:
        assert self.recorder is not None
        if not self.recorder.recording:
            self.recorder.start()


def test_stream_copy_makes_keyframe_aligned_segments(clip20: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    camera = Continuous(str(clip20), tmp_path, store, segment_s=4.0)
    recorder = camera.run()
    recorder.stop()
    assert not recorder.recording and recorder.bad_segments == 0
    assert [(i.start, i.end) for i in store.infos] == [(4.0 * k, 4.0 * k + 4) for k in range(5)]
    assert sum(i.frames for i in store.infos) == 200
    for info, path in zip(store.infos, store.paths, strict=True):
        played = play(path)
        assert played.first_is_key and played.frames == info.frames == 40
        assert played.codec == info.codec == "h264" and not info.transcoded
        assert abs(played.duration - (info.end - info.start)) < 0.15
        assert info.size == path.stat().st_size
        assert played.times == sorted(played.times)
    walls = [(i.wall_start, i.wall_end) for i in store.infos]
    assert all(a[0] < a[1] <= b[0] for a, b in itertools.pairwise(walls))
    assert not list(tmp_path.glob(".tmp-*"))


def test_msmpeg4_is_transcoded_to_h264(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")

    camera = Continuous(str(media.sample_video()), tmp_path, store, segment_s=5.0)
    recorder = camera.run(until_s=12.0)
    recorder.stop()
    assert recorder.transcoded and recorder.codec == "h264"
    assert len(store.infos) == 3 and recorder.bad_segments == 0
    for info, path in zip(store.infos, store.paths, strict=True):
        played = play(path)
        assert info.transcoded and info.codec == played.codec == "h264"
        assert played.first_is_key and played.frames == info.frames
        assert played.size == (768, 576)
    assert [i.start for i in store.infos] == [0.0, 5.0, 10.0]
    assert sum(i.frames for i in store.infos) >= 120


def test_pre_roll_starts_at_an_earlier_keyframe(clip20: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")

    class Event(Camera):
        def before_feed(self, packet: Packet[VideoStream]) -> None:
            recorder, t = self.recorder, packet_time(packet)
            assert recorder is not None and t is not None
            if t >= 8.0 and not recorder.recording and not store.infos:
                recorder.start(self.buffer.packets_since(t - 3.0))  # includes this packet
            if 12.0 <= t < 12.1:
                recorder.stop_after(2.0)  # the event closes

    recorder = Event(str(clip20), tmp_path, store, segment_s=10.0).run()
    assert not recorder.recording
    assert len(store.infos) == 1
    info = store.infos[0]
    assert info.start == 4.0  # the keyframe at or before 8 - 3 s (keyframes every 2 s)
    assert 14.0 <= info.end <= 14.5
    played = play(store.paths[0])
    assert played.first_is_key and played.frames == info.frames == round((info.end - 4.0) * 10)
    assert len(set(played.times)) == played.frames  # the repeated packet was not stored twice


def test_packet_buffer_is_bounded_and_starts_at_a_keyframe(clip20: Path) -> None:
    buffer = PacketBuffer(3.0)
    with av.open(str(clip20)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                buffer.add(packet)
    packets = buffer.packets_since(0.0)
    assert packets[0].is_keyframe and len(packets) == len(buffer)
    first = packet_time(packets[0])
    assert first is not None and 19.9 - 5.0 <= first <= 19.9 - 3.0
    since = buffer.packets_since(18.5)
    assert packet_time(since[0]) == 18.0 and since[0].is_keyframe


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[bool]:
    """A 2 MiB tmpfs at ``path`` (True), or a plain folder if mounting is not permitted."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    try:
        yield done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", str(path)], check=True)


def test_disk_full_stops_then_resumes(
    clip20: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with small_disk(tmp_path / "small") as mounted:
        print(f"disk full: {'real 2 MiB tmpfs' if mounted else 'simulated ENOSPC'}")
        disk = tmp_path / "small"
        store = Store(disk / "store")  # segments stay on the small disk and fill it
        if not mounted:  # no CAP_SYS_ADMIN: fail the writes from the 5th segment on
            real = SegmentRecorder._open

            def failing_open(self: SegmentRecorder, t: float, offset: int) -> object:
                if len(store.infos) >= 4 and disk_full[0]:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real(self, t, offset)

            disk_full = [True]
            monkeypatch.setattr(SegmentRecorder, "_open", failing_open)

        camera = Continuous(str(clip20), disk, store, segment_s=2.0)
        for _ in range(3):  # about 5.4 MB of video for a 2 MiB disk
            recorder = camera.run()  # feed() never raises
        assert RecorderState.STORAGE_FULL in camera.states
        assert recorder.state is RecorderState.STORAGE_FULL
        assert recorder.last_error.startswith("storage_full: ")
        assert recorder.dropped > 0
        assert not list(disk.glob(".tmp-*"))  # the partial segment was deleted
        for path in store.paths:
            assert play(path).first_is_key  # every handed-over segment plays
        before = len(store.infos)

        for path in store.paths:  # space is freed (segments archived elsewhere)
            path.unlink()
        if not mounted:
            disk_full[0] = False
        recorder.resume()
        state: RecorderState = recorder.state
        assert state is RecorderState.RECORDING
        camera.run()
        recorder.stop()
        assert len(store.infos) >= before + 5
        for path in store.paths[before:]:
            assert play(path).first_is_key


def test_a_crashed_segment_is_an_orphan_never_handed_over(clip20: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with av.open(str(clip20)) as container:
        stream = container.streams.video[0]
        recorder = SegmentRecorder(
            directory=tmp_path, template_stream=stream, on_segment=store.take, segment_s=60.0
        )
        recorder.start()
        for packet in container.demux(stream):
            if packet.size:
                recorder.feed(packet)
        # "crash": the process dies with the segment open (no trailer, no index)
        (orphan,) = tmp_path.glob(".tmp-*.mp4")
        assert orphan.stat().st_size > 0 and not store.infos
        with pytest.raises(av.error.FFmpegError):
            play(orphan)
        (tmp_path / "keep.mp4").write_bytes(b"x")
        fresh = tmp_path / ".tmp-fresh.mp4"
        fresh.write_bytes(b"x")
        assert cleanup_orphans(tmp_path, min_age_s=3600) == []
        assert sorted(cleanup_orphans(tmp_path)) == sorted([orphan, fresh])
        assert (tmp_path / "keep.mp4").exists() and not list(tmp_path.glob(".tmp-*"))
        recorder._segment = None  # the dead process's state


def test_rtsp_stream_copy_records_a_playable_segment(clip20: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")

    with media.rtsp_server(clip20) as url:
        camera = Continuous(url, tmp_path, store, segment_s=30.0)
        started = time.monotonic()
        for _ in camera.video.frames():
            if time.monotonic() - started >= 5.0:
                break
        camera.video.close()
    recorder = camera.recorder
    assert recorder is not None and not recorder.transcoded
    recorder.stop()
    assert len(store.infos) == 1 and recorder.bad_segments == 0
    info = store.infos[0]
    played = play(store.paths[0])
    assert played.first_is_key and played.codec == "h264" and played.frames == info.frames
    assert 2.0 <= info.end - info.start <= 6.0 and played.frames >= 20


def test_stream_copy_costs_a_fraction_of_decoding(clip20: Path, tmp_path: Path) -> None:
    def demux() -> Iterator[tuple[Packet[VideoStream], VideoStream]]:
        with av.open(str(clip20)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for packet in container.demux(stream):
                if packet.size:
                    yield packet, stream

    store, rounds = Store(tmp_path / "store"), 5
    started = time.process_time()
    for _ in range(rounds):
        for packet, _stream in demux():
            packet.decode()
    decode_s = time.process_time() - started
    started = time.process_time()
    for _ in range(rounds):
        recorder: SegmentRecorder | None = None
        for packet, stream in demux():
            if recorder is None:
                recorder = SegmentRecorder(
                    directory=tmp_path, template_stream=stream, on_segment=store.take
                )
                recorder.start()
            recorder.feed(packet)
        assert recorder is not None
        recorder.stop()
    copy_s = time.process_time() - started
    ratio = copy_s / decode_s
    print(f"CPU: stream copy {copy_s:.3f} s, decode {decode_s:.3f} s, ratio {ratio:.3f}")
    assert len(store.infos) == 2 * rounds
    assert ratio < 0.5


def test_cleanup_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert cleanup_orphans(tmp_path / "none") == []
    shutil.rmtree(tmp_path, ignore_errors=True)
