"""Playback routes over real recorded segments (SQLite and PostgreSQL, a local object store).

The segments are those of tests/integration/test_segments.py: five 4 s H.264 segments of
``front_door`` covering BASE to BASE + 20 s (a keyframe every 2 s), finalized into the store
and the database exactly as the recorder does.
"""

from __future__ import annotations

import io
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from sentinel.api.deps import Services
from sentinel.domain.types import Box, EventState
from sentinel.gateway.roles import Role
from sentinel.store.segment_repo import SegmentInfo, SegmentRecord, SegmentRepository
from sentinel.video.segments import finalize_segment
from tests.integration import test_segments as seg
from tests.utils.auth import AuthedUser, add_user
from tests.utils.services import make_services

CAM = seg.CAM
at = seg.at
recorded = seg.recorded  # the module-scoped fixture: five real 4 s segments

CLIP = f"/api/v1/cameras/{CAM}/clip.mp4"
TIMELINE = f"/api/v1/cameras/{CAM}/recordings"


def iso(seconds: float) -> str:
    return at(seconds).isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def services(store_engine: Engine, tmp_path: Path) -> Services:
    return make_services(store_engine, tmp_path, segments=SegmentRepository(store_engine))


@pytest.fixture
def records(services: Services, recorded: list[SegmentInfo], tmp_path: Path) -> list[SegmentRecord]:
    assert services.segments is not None
    for cam in (CAM, "yard"):
        services.cameras.upsert(cam, {"id": cam, "source": f"/videos/{cam}.mp4"})
    return [
        finalize_segment(
            seg.temp_copy(info, tmp_path / "tmp"),
            camera_id=CAM,
            kind="continuous",
            store=services.objects,
            repo=services.segments,
        )
        for info in recorded
    ]


@pytest.fixture
def client_headers(admin: AuthedUser) -> dict[str, str]:
    return admin.headers


def decode(data: bytes) -> list[tuple[bool, float]]:
    """(keyframe, time) of every frame of an MP4 (raises if it does not decode)."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return [(f.key_frame, float(f.time or 0.0)) for f in container.decode(stream)]


def test_timeline_lists_segments_and_gaps(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    r = client.get(TIMELINE, params={"since": iso(-5), "until": iso(25)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["id"] for s in body["segments"]] == [rec.id for rec in records]
    first = body["segments"][0]
    assert set(first) == {
        "id",
        "start_at",
        "end_at",
        "duration_s",
        "size",
        "codec",
        "kind",
        "archived",
    }
    assert first["archived"] is False
    assert (first["codec"], first["kind"], first["size"]) == ("h264", "continuous", records[0].size)
    assert first["duration_s"] == pytest.approx(4.0)
    assert len(body["gaps"]) == 2 and body["covered_s"] == pytest.approx(20.0)

    assert services.segments is not None and services.segments.delete(records[2].id)
    body = client.get(TIMELINE, params={"since": iso(0), "until": iso(20)}).json()
    assert [s["id"] for s in body["segments"]] == [
        rec.id for i, rec in enumerate(records) if i != 2
    ]
    assert len(body["gaps"]) == 1
    gap = body["gaps"][0]
    assert (_parse(gap["start"]), _parse(gap["end"])) == (at(8), at(12))
    assert body["covered_s"] == pytest.approx(16.0)
    # Defaults: the last 24 h (long after the recording): nothing, one gap over it all.
    body = client.get(TIMELINE).json()
    assert body["segments"] == [] and body["covered_s"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "params",
    [
        {"since": iso(10), "until": iso(10)},
        {"since": iso(10), "until": iso(0)},
        {"since": iso(0), "until": (at(0) + timedelta(days=7, seconds=1)).isoformat()},
    ],
    ids=["empty", "reversed", "over-7-days"],
)
def test_timeline_refuses_bad_ranges(client: TestClient, params: dict[str, str]) -> None:
    assert client.get(TIMELINE, params=params).status_code == 400


def test_clip_decodes_and_covers_the_range(
    client: TestClient, records: list[SegmentRecord]
) -> None:
    r = client.get(CLIP, params={"start": iso(5), "end": iso(11)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == len(r.content)
    frames = decode(r.content)
    assert frames[0][0] and frames[0][1] == pytest.approx(0.0, abs=1e-3)
    duration = frames[-1][1] + 0.1  # 10 fps
    assert 6.0 <= duration <= 6.0 + 4.0  # within one segment of the 6 s asked for
    assert at(1) <= _parse(r.headers["x-clip-start"]) <= at(5)


def test_clip_serves_byte_ranges(
    client: TestClient,
    records: list[SegmentRecord],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    full = client.get(CLIP, params={"start": iso(5), "end": iso(11)}).content
    # Every clip goes to its own temp file, deleted after its response (also after a 416).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "clips"))
    (tmp_path / "clips").mkdir()
    r = client.get(CLIP, params={"start": iso(5), "end": iso(11)}, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206, r.text
    assert r.content == full[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{len(full)}"
    r = client.get(
        CLIP, params={"start": iso(5), "end": iso(11)}, headers={"Range": "bytes=999999999-"}
    )
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(full)}"
    r = client.get(CLIP, params={"start": iso(5), "end": iso(11)}, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == full[-10:]
    assert list((tmp_path / "clips").iterdir()) == []


@pytest.mark.parametrize(
    ("start", "end", "status"),
    [(30.0, 40.0, 404), (10.0, 10.0, 400), (10.0, 5.0, 400), (0.0, 3601.0, 400)],
    ids=["no-footage", "empty", "reversed", "over-1-h"],
)
def test_clip_refuses(
    client: TestClient, records: list[SegmentRecord], start: float, end: float, status: int
) -> None:
    r = client.get(CLIP, params={"start": iso(start), "end": iso(end)})
    assert r.status_code == status, r.text
    if status == 404:
        assert r.json()["detail"] == "no footage"


def _event(camera: str, n: int, started: float, last_seen: float, ended: bool) -> EventState:
    return EventState(
        id=f"00000000-0000-0000-0000-{n:012d}",
        camera_id=camera,
        label="person",
        track_id=n,
        started_at=at(started),
        last_seen_at=at(last_seen),
        score=0.9,
        box=Box(1, 2, 30, 60),
        best_at=at(started),
        ended_at=at(last_seen) if ended else None,
    )


def test_event_clip(client: TestClient, services: Services, records: list[SegmentRecord]) -> None:
    services.events.upsert(_event(CAM, 1, 8.0, 10.0, ended=True))
    r = client.get("/api/v1/events/00000000-0000-0000-0000-000000000001/clip.mp4")
    assert r.status_code == 200, r.text
    frames = decode(r.content)
    assert frames[0][0]
    assert 12.0 <= frames[-1][1] + 0.1 <= 12.0 + 4.0  # 8 - 5 s to 10 + 5 s
    assert _parse(r.headers["x-clip-start"]) == at(2)  # the keyframe at or before 3 s
    # An ongoing event ends at last_seen_at; the padding is bounded.
    services.events.upsert(_event(CAM, 2, 16.0, 17.0, ended=False))
    url = "/api/v1/events/00000000-0000-0000-0000-000000000002/clip.mp4"
    r = client.get(url, params={"pre_s": 0, "post_s": 0})
    assert r.status_code == 200 and decode(r.content)[0][0]
    assert _parse(r.headers["x-clip-start"]) == at(16)
    assert client.get(url, params={"pre_s": 61}).status_code == 422
    assert client.get(url, params={"post_s": -1}).status_code == 422
    r = client.get(url, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100
    # An event of the yard, which recorded nothing.
    services.events.upsert(_event("yard", 3, 8.0, 10.0, ended=True))
    r = client.get("/api/v1/events/00000000-0000-0000-0000-000000000003/clip.mp4")
    assert r.status_code == 404 and r.json()["detail"] == "no footage"
    assert client.get("/api/v1/events/nope/clip.mp4").status_code == 404


def test_viewer_of_another_camera_gets_404(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    services.events.upsert(_event(CAM, 1, 8.0, 10.0, ended=True))
    viewer = add_user(services.security, "yard-only", Role.VIEWER, ["yard"])
    for url, params in [
        (TIMELINE, {"since": iso(0), "until": iso(20)}),
        (CLIP, {"start": iso(5), "end": iso(11)}),
        ("/api/v1/events/00000000-0000-0000-0000-000000000001/clip.mp4", {}),
    ]:
        r = client.get(url, params=params, headers=viewer.headers)
        assert r.status_code == 404, (url, r.text)
        assert CAM not in r.text
    own = add_user(services.security, "door", Role.VIEWER, [CAM])
    r = client.get(CLIP, params={"start": iso(5), "end": iso(11)}, headers=own.headers)
    assert r.status_code == 200 and decode(r.content)[0][0]


def test_missing_object_is_skipped(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    services.objects.delete(records[1].object_key)
    r = client.get(CLIP, params={"start": iso(5), "end": iso(7)})
    assert r.status_code == 404  # the only segment holding 5 s to 7 s is gone
    r = client.get(CLIP, params={"start": iso(5), "end": iso(11)})
    assert r.status_code == 200 and decode(r.content)[0][0]


def test_recording_not_enabled(client: TestClient, services: Services) -> None:
    services.segments = None
    services.events.upsert(_event(CAM, 1, 8.0, 10.0, ended=True))
    for url, params in [
        (TIMELINE, {}),
        (CLIP, {"start": iso(5), "end": iso(11)}),
        ("/api/v1/events/00000000-0000-0000-0000-000000000001/clip.mp4", {}),
    ]:
        r = client.get(url, params=params)
        assert r.status_code == 404, url
        assert r.json()["detail"] == "recording is not enabled"
