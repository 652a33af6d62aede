"""Recordings archive: finalize into the object store + index, reconcile, timeline, clips.

Real segments: 20 s of the sample (H.264, 10 fps, a keyframe every 2 s, B-frames) recorded
once per module by SegmentRecorder (segment_s=4) with a clock on the stream's time, so segment
k covers exactly BASE + 4k s to BASE + 4k + 4 s. The finalize tests run on both object stores
(local, S3 on moto) and both databases (SQLite, PostgreSQL); every clip is decoded with PyAV.
"""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from sentinel.store.db import alembic_config, make_engine, migrate
from sentinel.store.objects import LocalObjectStore, ObjectStore
from sentinel.store.recording_tables import SEGMENTS
from sentinel.store.segment_repo import SegmentInfo, SegmentRecord, SegmentRepository, SegmentUsage
from sentinel.video.clips import ClipInfo, NoFootage, SegmentSource, assemble_clip
from sentinel.video.segments import ReconcileReport, finalize_segment, reconcile, segment_key
from tests.utils import media
from tests.utils.segments import record_segments

BASE = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CAM = "front_door"
KEY_RE = re.compile(r"recordings/front_door/2025/03/01/20250301T1200\d\d\.\d{3}Z-[0-9a-f]{8}\.mp4")
NOW = datetime(2025, 3, 2, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[SegmentInfo]:
    """The five 4 s segments of the 20 s clip (files kept; tests finalize copies)."""
    clip = media.h264_clip(tmp_path_factory.mktemp("media"), 20)
    infos = record_segments(clip, tmp_path_factory.mktemp("segments"), BASE, 4.0)
    assert [(i.wall_start, i.wall_end) for i in infos] == [
        (at(4 * k), at(4 * k + 4)) for k in range(5)
    ]
    return infos


def temp_copy(info: SegmentInfo, folder: Path) -> SegmentInfo:
    """A fresh temp file of the segment, as the recorder hands it over."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".tmp-{uuid.uuid4().hex}.mp4"
    shutil.copyfile(info.path, path)
    return replace(info, path=path)


def sources(infos: list[SegmentInfo]) -> list[SegmentSource]:
    return [SegmentSource(i.path.read_bytes(), i.wall_start, i.wall_end) for i in infos]


@pytest.fixture
def repo(store_engine: Engine) -> SegmentRepository:
    return SegmentRepository(store_engine, clock=lambda: NOW)


# --- finalize ---------------------------------------------------------------------------------


def test_finalize_stores_and_indexes(
    object_store: ObjectStore, repo: SegmentRepository, recorded: list[SegmentInfo], tmp_path: Path
) -> None:
    records: list[SegmentRecord] = []
    for info in recorded:
        tmp = temp_copy(info, tmp_path / "tmp")
        records.append(
            finalize_segment(tmp, camera_id=CAM, kind="continuous", store=object_store, repo=repo)
        )
        assert not tmp.path.exists()
    for info, rec in zip(recorded, records, strict=True):
        assert KEY_RE.fullmatch(rec.object_key), rec.object_key
        assert object_store.get(rec.object_key) == info.path.read_bytes()
        assert (rec.start_at, rec.end_at, rec.size) == (info.wall_start, info.wall_end, info.size)
        assert (rec.codec, rec.transcoded, rec.kind, rec.exported) == (
            "h264",
            False,
            "continuous",
            False,
        )
        assert rec.duration_s == pytest.approx(4.0) and rec.created_at == NOW
    assert len({r.object_key for r in records}) == 5
    assert dict(object_store.iter_keys("recordings/")).keys() == {r.object_key for r in records}
    assert repo.range(CAM, at(0), at(20)) == records
    assert repo.range(CAM, at(5), at(9)) == records[1:3]
    assert repo.range(CAM, at(4), at(4)) == [records[1]]  # ended-at-start is not overlapping
    assert repo.range("other", at(0), at(20)) == []
    again = repo.add(CAM, recorded[0], records[0].object_key, "continuous")
    assert again == records[0]  # idempotent by object key
    assert repo.usage() == [SegmentUsage(CAM, sum(i.size for i in recorded), at(0))]
    assert repo.oldest(limit=2) == records[:2]
    assert repo.set_exported(records[0].id)
    assert repo.oldest(CAM, limit=2) == records[1:3]
    assert repo.oldest(include_exported=True, limit=1)[0].exported
    assert repo.oldest(kinds=("event",)) == []
    # The clip from the store: the whole recording back, frame for frame.
    loaded = [SegmentSource.load(object_store, r) for r in repo.range(CAM, at(0), at(20))]
    clip = assemble_clip(loaded, at(0), at(20), tmp_path / "clip.mp4")
    assert clip.frames == sum(i.frames for i in recorded) == len(decode(clip.path))
    assert repo.delete(records[4].id) and not repo.delete(records[4].id)
    assert repo.get(records[4].id) is None and repo.get(records[3].id) == records[3]


class FailingStore:
    """An object store whose ``put`` fails (disk full, S3 down)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        raise OSError(28, "No space left on device")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class FailingRepo(SegmentRepository):
    """A repository whose insert fails (the database is down)."""

    def add(self, camera_id: str, info: SegmentInfo, object_key: str, kind: str) -> SegmentRecord:
        raise ConnectionError("database is down")


def test_failed_put_leaves_no_row(
    object_store: ObjectStore, repo: SegmentRepository, recorded: list[SegmentInfo], tmp_path: Path
) -> None:
    tmp = temp_copy(recorded[0], tmp_path)
    failing: ObjectStore = FailingStore(object_store)  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space"):
        finalize_segment(tmp, camera_id=CAM, kind="event", store=failing, repo=repo)
    assert repo.usage() == [] and list(object_store.iter_keys()) == []
    assert not tmp.path.exists()


def test_failed_insert_deletes_the_object(
    object_store: ObjectStore, store_engine: Engine, recorded: list[SegmentInfo], tmp_path: Path
) -> None:
    tmp = temp_copy(recorded[0], tmp_path)
    failing = FailingRepo(store_engine)
    with pytest.raises(ConnectionError):
        finalize_segment(tmp, camera_id=CAM, kind="event", store=object_store, repo=failing)
    assert list(object_store.iter_keys()) == []
    assert SegmentRepository(store_engine).usage() == [] and not tmp.path.exists()


def test_finalize_refuses_bad_input_and_stores_nothing(
    repo: SegmentRepository, recorded: list[SegmentInfo], tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    for camera_id, kind in (("../etc", "event"), (CAM, "motion")):
        tmp = temp_copy(recorded[0], tmp_path / "tmp")
        with pytest.raises(ValueError):
            finalize_segment(tmp, camera_id=camera_id, kind=kind, store=store, repo=repo)
        assert not tmp.path.exists()
    assert list(store.iter_keys()) == [] and repo.usage() == []


# --- reconcile --------------------------------------------------------------------------------


def test_reconcile_removes_orphan_rows_and_objects(
    object_store: ObjectStore, repo: SegmentRepository, recorded: list[SegmentInfo], tmp_path: Path
) -> None:
    kept = [
        finalize_segment(temp_copy(i, tmp_path), camera_id=CAM, kind="continuous",
                         store=object_store, repo=repo)
        for i in recorded[:3]
    ]  # fmt: skip
    other = finalize_segment(
        temp_copy(recorded[0], tmp_path),
        camera_id="yard",
        kind="event",
        store=object_store,
        repo=repo,
    )
    object_store.delete(kept[1].object_key)  # lost object: its row must go
    stray = segment_key(CAM, at(12))  # a crash between put and insert
    object_store.put(stray, recorded[3].path.read_bytes())
    foreign = segment_key("yard", at(30))  # another camera's orphan: not this reconcile's
    object_store.put(foreign, b"x")
    report = reconcile(object_store, repo, CAM)
    assert report == ReconcileReport(CAM, 1, 1, recorded[3].size)
    assert repo.range(CAM, at(0), at(20)) == [kept[0], kept[2]]
    assert not object_store.exists(stray) and object_store.exists(foreign)
    assert repo.get(other.id) == other
    assert reconcile(object_store, repo, CAM) == ReconcileReport(CAM, 0, 0, 0)
    assert repo.orphans({kept[0].object_key, kept[2].object_key}) == [other]


# --- timeline ---------------------------------------------------------------------------------


def test_timeline_reports_gaps(repo: SegmentRepository, recorded: list[SegmentInfo]) -> None:
    for k, info in enumerate(recorded):
        if k != 2:  # the middle segment is missing
            repo.add(CAM, info, f"recordings/{CAM}/seg-{k}.mp4", "continuous")
    timeline = repo.timeline(CAM, at(0), at(20))
    assert [s.start_at for s in timeline.segments] == [at(0), at(4), at(12), at(16)]
    assert timeline.gaps == [(at(8), at(12))]
    assert timeline.covered_s == pytest.approx(16.0)
    wide = repo.timeline(CAM, at(-5), at(25))
    assert wide.gaps == [(at(-5), at(0)), (at(8), at(12)), (at(20), at(25))]
    assert repo.timeline(CAM, at(-5), at(25), max_gap_s=10).gaps == []
    assert repo.timeline(CAM, at(9), at(11)).gaps == [(at(9), at(11))]
    assert repo.timeline(CAM, at(30), at(40)).segments == []
    assert repo.timeline(CAM, at(30), at(40)).gaps == [(at(30), at(40))]
    with pytest.raises(ValueError):
        repo.timeline(CAM, at(20), at(0))
    with pytest.raises(ValueError):
        repo.range(CAM, datetime(2025, 3, 1), at(1))  # naive


def test_migration_0004_matches_the_model_and_downgrades(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0003")
            conn.commit()
        assert not sa.inspect(engine).has_table("segments")
        migrate(engine)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == (
                ScriptDirectory.from_config(alembic_config()).get_current_head(),
            )
            ours = {
                "include_object": lambda _o, name, kind, *_: kind != "table" or name == "segments"
            }
            diffs = compare_metadata(MigrationContext.configure(conn, opts=ours), SQLModel.metadata)
        assert diffs == []
        with engine.begin() as conn:  # exported defaults to false in the database too
            conn.execute(
                sa.insert(SEGMENTS).values(
                    id="s1", camera_id=CAM, start_at=at(0), end_at=at(4), duration_s=4.0,
                    size=1 << 40, codec="h264", transcoded=False, object_key="k", created_at=NOW,
                    kind="event",
                )
            )  # fmt: skip
        (record,) = SegmentRepository(engine).oldest()
        assert not record.exported and record.size == 1 << 40  # bigint
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "0003")
            conn.commit()
        assert not sa.inspect(engine).has_table("segments")
    finally:
        engine.dispose()


# --- clips ------------------------------------------------------------------------------------


@dataclass
class Decoded:
    key: bool
    time: float


def decode(path: Path) -> list[Decoded]:
    """Decodes every frame of a clip (raises if it does not decode)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return [Decoded(f.key_frame, float(f.time or 0.0)) for f in container.decode(stream)]


def top_level_boxes(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        yield kind
        offset += size if size else len(data)


def check_clip(clip: ClipInfo, start: float, end: float, footage_end: float = 20.0) -> None:
    frames = decode(clip.path)
    assert frames[0].key and frames[0].time == pytest.approx(0.0, abs=1e-3)
    times = [f.time for f in frames]
    assert all(a < b for a, b in itertools.pairwise(times)), times
    assert len(frames) == clip.frames and clip.size == clip.path.stat().st_size
    assert at(start) - timedelta(seconds=4) <= clip.actual_start <= at(start)
    assert min(at(end), at(footage_end)) <= clip.actual_end <= at(end) + timedelta(seconds=4)
    assert times[-1] + 0.1 == pytest.approx(clip.duration_s, abs=0.05)
    boxes = list(top_level_boxes(clip.path))
    assert boxes.index(b"moov") < boxes.index(b"mdat")  # +faststart: plays while downloading


@pytest.mark.parametrize(
    ("start", "end", "first"),
    [(5.0, 7.0, 4.0), (6.5, 9.5, 6.0), (0.0, 20.0, 0.0), (8.0, 8.0, 8.0), (17.3, 30.0, 16.0)],
    ids=["inside-one", "across-two", "whole", "one-instant", "past-the-end"],
)
def test_assemble_clip(
    recorded: list[SegmentInfo], tmp_path: Path, start: float, end: float, first: float
) -> None:
    clip = assemble_clip(sources(recorded), at(start), at(end), tmp_path / "clip.mp4")
    check_clip(clip, start, end)
    assert clip.actual_start == at(first)  # keyframes every 2 s: the last one at or before start
    assert clip.splices == 0
    assert clip.duration_s == pytest.approx((clip.actual_end - clip.actual_start).total_seconds())
    if (start, end) == (0.0, 20.0):
        assert clip.frames == 200 and clip.actual_end == at(20)


def test_assemble_clip_splices_a_hole(recorded: list[SegmentInfo], tmp_path: Path) -> None:
    holed = sources(recorded[:2] + recorded[3:])  # 8 s to 12 s missing
    clip = assemble_clip(holed, at(6), at(14), tmp_path / "clip.mp4")
    check_clip(clip, 6, 14)
    assert clip.splices == 1 and clip.actual_start == at(6)
    assert clip.duration_s == pytest.approx(
        (clip.actual_end - clip.actual_start).total_seconds() - 4
    )
    with pytest.raises(NoFootage):
        assemble_clip(holed, at(8.5), at(11.5), tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()


def test_assemble_clip_skips_overlapping_footage(
    recorded: list[SegmentInfo], tmp_path: Path
) -> None:
    doubled = sources(recorded) + sources(recorded[1:3])  # event segments over continuous ones
    clip = assemble_clip(doubled, at(0), at(20), tmp_path / "clip.mp4")
    check_clip(clip, 0, 20)
    assert clip.frames == 200 and clip.splices == 0


def test_assemble_clip_refuses_bad_ranges(recorded: list[SegmentInfo], tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    with pytest.raises(NoFootage):
        assemble_clip(sources(recorded), at(30), at(40), dest)
    with pytest.raises(NoFootage):
        assemble_clip([], at(0), at(10), dest)
    with pytest.raises(ValueError, match="at most"):
        assemble_clip(sources(recorded), at(0), at(3601), dest)
    with pytest.raises(ValueError, match="at most"):
        assemble_clip(sources(recorded), at(0), at(10), dest, max_clip_s=5)
    with pytest.raises(ValueError, match="before"):
        assemble_clip(sources(recorded), at(10), at(0), dest)
    assert not dest.exists()
