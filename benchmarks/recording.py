"""Recording (VMS) costs: CPU per camera of writing segments, and assembling a 10-minute clip.

1. CPU-seconds per video-second, one process, ``time.process_time`` (all threads), measured
   side by side in interleaved rounds (rotating order), medians reported:

   * ``remux``: demux a 60 s H.264 MP4 (made from the sample with ffmpeg) and feed every packet
     to a :class:`SegmentRecorder` (stream copy, 10 s segments, each probed and deleted);
   * ``decode``: demux + decode the same file (one decoder thread, as the camera's decoder):
     the camera decodes every frame anyway, so ``remux/decode`` is what recording adds;
   * ``transcode``: demux the sample itself (MPEG-4 part 2, ``msmpeg4``) and feed it to a
     recorder, which decodes it again and encodes H.264 (libx264 ultrafast, one thread): what a
     camera with an old codec costs; against ``decode-msmpeg4``, decoding the same file;
   * ``demux``: demux alone (the floor under every figure).

2. Clip assembly: the 60 s clip is fed 10 times (timestamps shifted each pass: 10 minutes of
   continuous footage) through a recorder into a :class:`LocalObjectStore` and a SQLite
   :class:`SegmentRepository` with :func:`finalize_segment`, as fast as it goes (the wall clock
   follows the stream). Then, interleaved: ``assemble`` = look up the segments of the
   10-minute range, load them (:meth:`SegmentSource.load`) and :func:`assemble_clip`; the
   baseline ``read`` = look up the same segments and read their bytes from the store.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
from av.video.stream import VideoStream

from benchmarks.common import BenchmarkError, median, sample_video
from sentinel.store.db import make_engine, migrate, sqlite_url
from sentinel.store.objects import LocalObjectStore
from sentinel.store.segment_repo import SegmentInfo, SegmentRepository
from sentinel.video.clips import SegmentSource, assemble_clip
from sentinel.video.recorder import SegmentRecorder
from sentinel.video.segments import finalize_segment

ROUNDS = 5
CLIP_ROUNDS = 5
CLIP_S = 60
LOOPS = 10  # 10 x 60 s = 10 minutes of footage
SEGMENT_S = 10.0
CAMERA = "bench"
BASE_WALL = datetime(2024, 1, 1, tzinfo=UTC)


def _h264_clip(dest_dir: Path, seconds: int) -> Path:
    """The first ``seconds`` of the sample (looped if shorter) as H.264 MP4: libx264
    veryfast, a keyframe every 20 frames (2 s at 10 fps), yuv420p, +faststart."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchmarkError("ffmpeg not found: `apt-get install ffmpeg`")
    dest = dest_dir / f"sample-h264-{seconds}s.mp4"
    cmd = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-stream_loop", "-1", "-i", str(sample_video()), "-t", str(seconds), "-an",
        "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(dest),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()}")
    return dest


def _packets(video: Path) -> Iterator[tuple[av.Packet[VideoStream], VideoStream]]:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for packet in container.demux(stream):
            if packet.size:
                yield packet, stream


def _video_seconds(video: Path) -> tuple[float, int, str]:
    """Seconds of video (frames / average rate), frame count and codec name."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for p in container.demux(stream) if p.size)
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        return frames / rate, frames, stream.codec_context.name


def _demux(video: Path, _tmp: Path) -> int:
    return sum(1 for _ in _packets(video))


def _decode(video: Path, _tmp: Path) -> int:
    frames = 0
    for packet, _stream in _packets(video):
        frames += len(packet.decode())
    return frames


def _record(video: Path, tmp: Path) -> int:
    """Feeds every packet to a recorder (stream copy or transcode, by codec); returns the
    number of segments written (each deleted at once)."""

    def discard(info: SegmentInfo) -> None:
        info.path.unlink(missing_ok=True)

    recorder: SegmentRecorder | None = None
    for packet, stream in _packets(video):
        if recorder is None:
            recorder = SegmentRecorder(
                directory=tmp, template_stream=stream, on_segment=discard, segment_s=SEGMENT_S
            )
            recorder.start()
        recorder.feed(packet)
    if recorder is None:
        raise BenchmarkError(f"{video} has no video packets")
    recorder.stop()
    if recorder.bad_segments or not recorder.segments:
        raise BenchmarkError(f"recorder wrote {recorder.segments} segments, {recorder.last_error}")
    return recorder.segments


def _cpu_figures(h264: Path, old: Path, tmp: Path) -> None:
    h264_s, h264_frames, h264_codec = _video_seconds(h264)
    old_s, old_frames, old_codec = _video_seconds(old)
    jobs: dict[str, tuple[Callable[[Path, Path], int], Path, float]] = {
        "demux": (_demux, h264, h264_s),
        "decode": (_decode, h264, h264_s),
        "remux": (_record, h264, h264_s),
        "decode-old": (_decode, old, old_s),
        "transcode": (_record, old, old_s),
    }
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    counts: dict[str, int] = {}
    names = list(jobs)
    for rnd in range(ROUNDS):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            fn, video, seconds = jobs[name]
            start = time.process_time()
            counts[name] = fn(video, tmp)
            cpu[name].append((time.process_time() - start) / seconds)
        print(
            f"recording: round {rnd + 1}/{ROUNDS}: "
            + ", ".join(f"{n} {cpu[n][-1] * 1000:.1f}" for n in names)
            + " CPU-ms per video-s",
            flush=True,
        )
    med = {name: median(values) for name, values in cpu.items()}
    print(
        f"recording: clips {h264.name} ({h264_codec}, {h264_frames} frames, {h264_s:.1f} "
        f"video-s) and {old.name} ({old_codec}, {old_frames} frames, {old_s:.1f} video-s); "
        f"CPU-ms per video-s, time.process_time, medians of {ROUNDS} interleaved rounds"
    )
    print(f"recording: demux only {med['demux'] * 1000:.1f} ({h264_codec})")
    print(
        f"recording: remux (stream copy, {counts['remux']} x {SEGMENT_S:g} s segments) "
        f"{med['remux'] * 1000:.1f} vs decode {med['decode'] * 1000:.1f}: "
        f"ratio remux/decode {med['remux'] / med['decode']:.3f}"
    )
    print(
        f"recording: transcode {old_codec} -> h264 ({counts['transcode']} segments) "
        f"{med['transcode'] * 1000:.1f} vs decode {med['decode-old'] * 1000:.1f}: "
        f"ratio transcode/decode {med['transcode'] / med['decode-old']:.2f} (the recorder "
        "decodes a second time itself, then encodes)"
    )


def _record_archive(clip: Path, tmp: Path, store: LocalObjectStore, repo: SegmentRepository) -> int:
    """Feeds ``clip`` ``LOOPS`` times (shifted timestamps) through a recorder into the store
    and index, as fast as it goes; returns the number of segments stored."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        packets = [(p, p.pts, p.dts) for p in container.demux(stream) if p.size]
        base = stream.time_base
        if base is None or not packets:
            raise BenchmarkError(f"{clip} has no timed video packets")
        rate = stream.average_rate or stream.guessed_rate or 25
        span = round(len(packets) / rate / base)  # one pass, in time-base units
        now = [BASE_WALL]

        def on_segment(info: SegmentInfo) -> None:
            finalize_segment(info, camera_id=CAMERA, kind="continuous", store=store, repo=repo)

        recorder = SegmentRecorder(
            directory=tmp,
            template_stream=stream,
            on_segment=on_segment,
            segment_s=SEGMENT_S,
            clock=lambda: now[0],
        )
        recorder.start()
        for loop in range(LOOPS):
            for packet, pts, dts in packets:
                packet.pts = None if pts is None else pts + loop * span
                packet.dts = None if dts is None else dts + loop * span
                ts = packet.pts if packet.pts is not None else packet.dts or 0
                now[0] = BASE_WALL + timedelta(seconds=float(ts * base))
                recorder.feed(packet)
        recorder.stop()
    if recorder.bad_segments or recorder.dropped:
        raise BenchmarkError(
            f"{recorder.bad_segments} bad segments, {recorder.dropped} dropped packets: "
            f"{recorder.last_error}"
        )
    return recorder.segments


def _clip_figures(clip: Path, tmp: Path) -> None:
    store = LocalObjectStore(tmp / "objects")
    engine = make_engine(sqlite_url(tmp / "db.sqlite"))
    try:
        migrate(engine)
        repo = SegmentRepository(engine)
        (tmp / "rec").mkdir()
        started, cpu0 = time.perf_counter(), time.process_time()
        stored = _record_archive(clip, tmp / "rec", store, repo)
        rec_wall, rec_cpu = time.perf_counter() - started, time.process_time() - cpu0
        records = repo.range(CAMERA, BASE_WALL, BASE_WALL + timedelta(days=1))
        start, end = records[0].start_at, records[-1].end_at
        end = min(end, start + timedelta(minutes=10))
        stored_bytes = sum(r.size for r in records)
        print(
            f"recording: archive: {stored} segments, {stored_bytes / 1e6:.1f} MB, "
            f"{(records[-1].end_at - start).total_seconds():.1f} s of footage recorded in "
            f"{rec_wall:.2f} s wall ({rec_cpu:.2f} CPU-s, with finalize_segment into "
            "LocalObjectStore + SQLite)",
            flush=True,
        )
        dest = tmp / "clip.mp4"
        read_s: list[float] = []
        assemble_s: list[float] = []
        load_s: list[float] = []
        info = None
        for rnd in range(CLIP_ROUNDS):
            for job in ("read", "assemble") if rnd % 2 == 0 else ("assemble", "read"):
                t0 = time.perf_counter()
                chosen = repo.range(CAMERA, start, end)
                if job == "read":
                    total = sum(len(store.get(r.object_key)) for r in chosen)
                    read_s.append(time.perf_counter() - t0)
                    if total != sum(r.size for r in chosen):
                        raise BenchmarkError("stored sizes do not match the index")
                else:
                    sources = [SegmentSource.load(store, r) for r in chosen]
                    t1 = time.perf_counter()
                    info = assemble_clip(sources, start, end, dest)
                    assemble_s.append(time.perf_counter() - t0)
                    load_s.append(t1 - t0)
            print(
                f"recording: clip round {rnd + 1}/{CLIP_ROUNDS}: read {read_s[-1] * 1000:.1f} "
                f"ms, assemble {assemble_s[-1] * 1000:.1f} ms",
                flush=True,
            )
        assert info is not None
        clip_bytes = sum(r.size for r in chosen)
        span = (end - start).total_seconds()
        print(
            f"recording: clip of {span:.0f} s ({len(chosen)} segments): load + assemble "
            f"{median(assemble_s):.3f} s (load {median(load_s):.3f} s), output "
            f"{info.size / 1e6:.1f} MB, {info.frames} frames, {info.duration_s:.1f} media-s, "
            f"{info.splices} splices; medians of {CLIP_ROUNDS} interleaved rounds"
        )
        print(
            f"recording: baseline read of the same {clip_bytes / 1e6:.1f} MB from the store "
            f"{median(read_s):.3f} s: ratio assemble/read {median(assemble_s) / median(read_s):.1f}"
        )
    finally:
        engine.dispose()


def run(model_path: Path | None = None) -> None:
    """Prints the figures; ``model_path`` is unused (no detector here)."""
    del model_path
    old = sample_video()
    with tempfile.TemporaryDirectory(prefix="sentinel-bench-rec-") as name:
        tmp = Path(name)
        clip = _h264_clip(tmp, CLIP_S)
        (tmp / "cpu").mkdir()
        _cpu_figures(clip, old, tmp / "cpu")
        _clip_figures(clip, tmp)
