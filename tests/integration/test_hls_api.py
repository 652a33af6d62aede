"""HLS playback over real recorded segments: the VOD playlist and the MPEG-TS segments.

Reuses the recording fixtures of tests/integration/test_recordings_api.py: five 4 s H.264
segments of ``front_door`` covering BASE to BASE + 20 s, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urljoin

import av
import pytest
from fastapi.testclient import TestClient

from sentinel.api.deps import Services
from sentinel.gateway.roles import Role
from sentinel.store.segment_repo import SegmentRecord
from sentinel.video.hls import PTS_HZ, wall_ticks
from tests.integration import test_recordings_api as rec
from tests.utils.auth import add_user

CAM, at, iso = rec.CAM, rec.at, rec.iso
# The reused fixtures: the five recorded segments indexed in a fresh store, an admin client.
recorded, records, services, client_headers = (
    rec.recorded,
    rec.records,
    rec.services,
    rec.client_headers,
)

PLAYLIST = f"/api/v1/cameras/{CAM}/hls.m3u8"
WHOLE = {"start": iso(0), "end": iso(20)}


@dataclass
class Entry:
    duration: float
    uri: str
    discontinuity: bool


@dataclass
class Playlist:
    target: int
    entries: list[Entry]
    ended: bool


def parse(text: str) -> Playlist:
    """A strict reading of the VOD playlist the route writes."""
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"]
    assert "#EXT-X-MEDIA-SEQUENCE:0" in lines and "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    target = next(int(x.split(":", 1)[1]) for x in lines if x.startswith("#EXT-X-TARGETDURATION:"))
    entries: list[Entry] = []
    duration: float | None = None
    gap = False
    for line in lines:
        if line.startswith("#EXTINF:"):
            assert line.endswith(",")
            duration = float(line[len("#EXTINF:") : -1])
        elif line == "#EXT-X-DISCONTINUITY":
            gap = True
        elif line and not line.startswith("#"):
            assert duration is not None, line
            entries.append(Entry(duration, line, gap))
            duration, gap = None, False
    return Playlist(target, entries, lines[-1] == "#EXT-X-ENDLIST")


def decode_ts(data: bytes) -> list[tuple[bool, float]]:
    """(keyframe, time) of every frame of an MPEG-TS file (raises if it does not decode)."""
    with av.open(io.BytesIO(data), "r", format="mpegts") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return [(f.key_frame, float(f.time or 0.0)) for f in container.decode(stream)]


def test_playlist_lists_every_segment(client: TestClient, records: list[SegmentRecord]) -> None:
    r = client.get(PLAYLIST, params={"start": iso(-5), "end": iso(25)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    playlist = parse(r.text)
    assert playlist.ended
    assert [e.uri for e in playlist.entries] == [f"segments/{rec.id}.ts" for rec in records]
    assert not any(e.discontinuity for e in playlist.entries)
    assert sum(e.duration for e in playlist.entries) == pytest.approx(20.0, abs=0.05)
    assert all(0 < e.duration <= playlist.target for e in playlist.entries)
    assert playlist.target == 4
    # A range inside one segment lists that whole segment.
    r = client.get(PLAYLIST, params={"start": iso(5), "end": iso(6)})
    assert [e.uri for e in parse(r.text).entries] == [f"segments/{records[1].id}.ts"]


def test_playlist_marks_a_hole(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    assert services.segments is not None and services.segments.delete(records[2].id)
    playlist = parse(client.get(PLAYLIST, params=WHOLE).text)
    assert [e.uri for e in playlist.entries] == [
        f"segments/{rec.id}.ts" for i, rec in enumerate(records) if i != 2
    ]
    assert [e.discontinuity for e in playlist.entries] == [False, False, True, False]
    assert sum(e.duration for e in playlist.entries) == pytest.approx(16.0, abs=0.05)


def test_segments_decode_and_continue_each_other(
    client: TestClient, records: list[SegmentRecord]
) -> None:
    base = f"http://testserver{PLAYLIST}"
    playlist = parse(client.get(PLAYLIST, params=WHOLE).text)
    starts: list[float] = []
    for entry, record in zip(playlist.entries, records, strict=True):
        url = urljoin(base, entry.uri)
        assert url == f"http://testserver/api/v1/cameras/{CAM}/segments/{record.id}.ts"
        r = client.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "video/mp2t"
        frames = decode_ts(r.content)
        assert frames and frames[0][0], entry.uri
        assert len(frames) == pytest.approx(entry.duration * 10, abs=1)  # 10 fps
        starts.append(frames[0][1])
    # Wall-clock timestamps: each segment starts where the previous one ended.
    assert starts[0] == pytest.approx(wall_ticks(at(0)) / PTS_HZ, abs=0.01)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([4.0] * 4, abs=0.01)


def test_segment_serves_byte_ranges(client: TestClient, records: list[SegmentRecord]) -> None:
    url = f"/api/v1/cameras/{CAM}/segments/{records[0].id}.ts"
    full = client.get(url).content
    assert len(full) % 188 == 0 and full[0] == 0x47  # whole TS packets
    r = client.get(url, headers={"Range": "bytes=0-187"})
    assert r.status_code == 206 and r.content == full[:188]
    assert r.headers["content-range"] == f"bytes 0-187/{len(full)}"
    assert client.get(url, headers={"Range": "bytes=999999999-"}).status_code == 416


def test_segment_of_another_camera_or_missing_is_404(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    r = client.get(f"/api/v1/cameras/yard/segments/{records[0].id}.ts")
    assert r.status_code == 404 and r.json()["detail"] == "segment not found"
    assert client.get(f"/api/v1/cameras/{CAM}/segments/nope.ts").status_code == 404
    services.objects.delete(records[1].object_key)
    r = client.get(f"/api/v1/cameras/{CAM}/segments/{records[1].id}.ts")
    assert r.status_code == 404 and r.json()["detail"] == "segment not found"


def test_viewer_of_another_camera_gets_404(
    client: TestClient, services: Services, records: list[SegmentRecord]
) -> None:
    viewer = add_user(services.security, "yard-only", Role.VIEWER, ["yard"])
    for url, params in [
        (PLAYLIST, WHOLE),
        (f"/api/v1/cameras/{CAM}/segments/{records[0].id}.ts", {}),
    ]:
        r = client.get(url, params=params, headers=viewer.headers)
        assert r.status_code == 404, (url, r.text)
        assert CAM not in r.text
    own = add_user(services.security, "door", Role.VIEWER, [CAM])
    r = client.get(PLAYLIST, params=WHOLE, headers=own.headers)
    assert r.status_code == 200 and len(parse(r.text).entries) == 5
    r = client.get(f"/api/v1/cameras/{CAM}/segments/{records[0].id}.ts", headers=own.headers)
    assert r.status_code == 200 and decode_ts(r.content)[0][0]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"start": iso(0), "end": (at(0) + timedelta(hours=24, seconds=1)).isoformat()}, 400),
        ({"start": iso(10), "end": iso(10)}, 400),
        ({"start": iso(10), "end": iso(0)}, 400),
        ({"start": iso(30), "end": iso(40)}, 404),
        ({"start": iso(0)}, 422),
    ],
    ids=["over-24-h", "empty", "reversed", "no-footage", "no-end"],
)
def test_playlist_refuses(
    client: TestClient, records: list[SegmentRecord], params: dict[str, str], status: int
) -> None:
    r = client.get(PLAYLIST, params=params)
    assert r.status_code == status, r.text
    if status == 404:
        assert r.json()["detail"] == "no footage"


def test_recording_not_enabled(client: TestClient, services: Services) -> None:
    services.segments = None
    for url, params in [(PLAYLIST, WHOLE), (f"/api/v1/cameras/{CAM}/segments/x.ts", {})]:
        r = client.get(url, params=params)
        assert r.status_code == 404, url
        assert r.json()["detail"] == "recording is not enabled"
