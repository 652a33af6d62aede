"""The event journal without Ray: its line format, its budget, and the file on a real disk."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sentinel.domain.types import Box, EventChange, EventChangeKind, EventState
from sentinel.store.journal import (
    EventJournal,
    JournalError,
    decode_change,
    encode_change,
    fitting_prefix,
)
from tests.utils.factories import T0


def change(n: int, kind: EventChangeKind = EventChangeKind.UPDATED, **kw: object) -> EventChange:
    state = EventState(
        id=f"ev-{n // 10}",
        camera_id="cam",
        label="person",
        track_id=n // 10,
        started_at=T0,
        last_seen_at=T0 + timedelta(seconds=n, microseconds=123),
        score=0.5 + n / 1000,
        box=Box(1.5, 2.0, 30.25, 80.0 + n),
        best_at=T0 + timedelta(seconds=n // 2),
        hits=n,
        path=[(1.0, 2.0), (3.5, 4.25 + n)],
    )
    for name, value in kw.items():
        setattr(state, name, value)
    return EventChange(kind, state, new_best=n % 2 == 0)


def test_a_change_survives_encoding_exactly() -> None:
    for c in (change(7), change(8, EventChangeKind.OPENED), change(9, EventChangeKind.CLOSED)):
        line = encode_change(c)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode_change(line) == c
    closed = change(3, EventChangeKind.CLOSED, ended_at=T0 + timedelta(minutes=1), path=[])
    assert decode_change(encode_change(closed)) == closed


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b"not json\n", "not JSON"),
        (b"\xff\xfe\n", "not JSON"),
        (b"[1, 2]\n", "version"),
        (b'{"v": 2}\n', "version"),
        (encode_change(change(1)).replace(b'"kind":"updated"', b'"kind":"moved"'), "bad field"),
        (encode_change(change(1)).replace(b'"hits":1', b'"hits":"x"'), "bad field"),
        (encode_change(change(1)).replace(b'"label":"person",', b""), "bad field"),
        (encode_change(change(1)).replace(b"+00:00", b""), "timezone"),
        (encode_change(change(1)).replace(b'"best_at":"', b'"best_at":"x'), "ISO"),
        (encode_change(change(1)).replace(b"[1.5,2.0,30.25,81.0]", b"[1,2,3]"), "bad field"),
    ],
)
def test_a_bad_line_is_refused(line: bytes, match: str) -> None:
    with pytest.raises(JournalError, match=match):
        decode_change(line)


@pytest.mark.parametrize(
    ("sizes", "used", "budget", "taken"),
    [
        ([10, 10, 10], 0, 30, 3),
        ([10, 10, 10], 0, 29, 2),
        ([10, 10, 10], 25, 30, 0),
        ([5, 50, 5], 0, 30, 1),  # a prefix only: the small one after a big one waits too
        ([], 0, 1, 0),
        ([1], 0, 1, 1),
    ],
)
def test_fitting_prefix(sizes: list[int], used: int, budget: int, taken: int) -> None:
    assert fitting_prefix(sizes, used, budget) == taken


def test_append_read_commit_in_order(tmp_path: Path) -> None:
    path = tmp_path / "journal" / "cam.jsonl"
    journal = EventJournal(path, max_bytes=1 << 20)
    assert not journal.pending and journal.size == 0 and not path.exists()
    changes = [change(n) for n in range(25)]
    assert journal.append(changes[:10]) == 0 and journal.append(changes[10:]) == 0
    assert journal.pending and journal.size == path.stat().st_size
    first = journal.read(20)
    assert first.changes == changes[:20] and first.corrupt == 0
    journal.commit(first.end)
    assert journal.pending and path.stat().st_size > 0  # not all of it is stored yet
    assert journal.append([change(25)]) == 0  # appends go on while a replay is under way
    rest = journal.read(20)
    assert rest.changes == [*changes[20:], change(25)]
    journal.commit(rest.end)
    assert not journal.pending and journal.size == 0 and path.stat().st_size == 0
    with pytest.raises(ValueError, match="end"):
        journal.commit(5)


def test_a_reopened_journal_replays_what_was_left_and_cuts_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "cam.jsonl"
    changes = [change(n) for n in range(5)]
    EventJournal(path, max_bytes=1 << 20).append(changes)
    whole = path.stat().st_size
    with path.open("ab") as f:
        f.write(encode_change(change(99))[:-7])  # a crash in the middle of an append
    journal = EventJournal(path, max_bytes=1 << 20)
    assert journal.size == whole == path.stat().st_size
    assert journal.read(100).changes == changes
    assert journal.append([change(5)]) == 0
    assert EventJournal(path, max_bytes=1 << 20).read(100).changes == [*changes, change(5)]


def test_a_torn_only_line_leaves_an_empty_journal(tmp_path: Path) -> None:
    path = tmp_path / "cam.jsonl"
    path.write_bytes(b'{"v":1,"kind":')
    journal = EventJournal(path, max_bytes=1000)
    assert journal.size == 0 and not journal.pending and path.stat().st_size == 0


def test_the_budget_drops_exactly_what_does_not_fit(tmp_path: Path) -> None:
    changes = [change(n) for n in range(10, 15)]
    three = sum(len(encode_change(c)) for c in changes[:3])
    journal = EventJournal(tmp_path / "cam.jsonl", max_bytes=three + 100)  # lines are ~340 B
    assert journal.append(changes[:2]) == 0
    assert journal.append(changes[2:]) == 2  # one more fits, two do not
    assert journal.size == three <= journal.max_bytes
    assert journal.read(100).changes == changes[:3]
    with pytest.raises(ValueError, match="max_bytes"):
        EventJournal(tmp_path / "x.jsonl", max_bytes=0)


def test_a_damaged_line_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "cam.jsonl"
    good = [change(n) for n in range(3)]
    path.write_bytes(encode_change(good[0]) + b"garbage\n" + b"".join(map(encode_change, good[1:])))
    journal = EventJournal(path, max_bytes=1 << 20)
    run = journal.read(100)
    assert run.changes == good and run.corrupt == 1 and run.end == journal.size
