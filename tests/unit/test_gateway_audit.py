"""The audit hash chain: tampering of every kind is found and located."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sentinel.gateway.audit import (
    GENESIS_HASH,
    AuditRecord,
    chain_hash,
    next_record,
    verify_chain,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def build(n: int = 5) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for i in range(n):
        records.append(
            next_record(
                records[-1] if records else None,
                at=T0 + timedelta(seconds=i),
                actor=f"user-{i % 2}",
                action="camera.view" if i % 2 else "auth.login",
                target=f"camera:cam{i}",
                client="198.51.100.7",
                outcome="ok",
                detail={"n": i, "why": "test"},
            )
        )
    return records


def rehash(rec: AuditRecord) -> AuditRecord:
    """What an attacker who edits a row and recomputes its own hash produces."""
    fields = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)}
    fields.pop("hash")
    prev = fields.pop("prev_hash")
    return dataclasses.replace(rec, hash=chain_hash(prev, **fields))


Tamper = Callable[[list[AuditRecord]], list[AuditRecord]]


def _edit(r: list[AuditRecord], i: int, **changes: Any) -> list[AuditRecord]:
    return [*r[:i], dataclasses.replace(r[i], **changes), *r[i + 1 :]]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "checked", "reason"),
    [
        # Edits: the record no longer hashes to its stored hash.
        (lambda r: _edit(r, 2, actor="someone-else"), 3, 2, "hash mismatch"),
        (lambda r: _edit(r, 2, outcome="denied"), 3, 2, "hash mismatch"),
        (lambda r: _edit(r, 0, detail={"n": 0, "why": "edited"}), 1, 0, "hash mismatch"),
        (lambda r: _edit(r, 4, at=T0 + timedelta(days=1)), 5, 4, "hash mismatch"),
        (lambda r: _edit(r, 1, at=T0 + timedelta(seconds=1, microseconds=1)), 2, 1, "hash"),
        (lambda r: _edit(r, 3, hash="f" * 64), 4, 3, "hash mismatch"),
        # An edit whose own hash was recomputed breaks the link to the next record.
        (lambda r: [*r[:2], rehash(dataclasses.replace(r[2], actor="x")), *r[3:]], 4, 3, "prev"),
        # Deletions.
        (lambda r: [*r[:2], *r[3:]], 4, 2, "sequence jumps from 2 to 4"),
        (lambda r: r[1:], 2, 0, "genesis mismatch"),
        (lambda r: [r[0], dataclasses.replace(r[2], seq=2), *r[3:]], 2, 1, "previous hash"),
        # Reordering and duplication.
        (lambda r: [r[0], r[2], r[1], *r[3:]], 3, 1, "sequence jumps from 1 to 3"),
        (lambda r: [*r[:3], r[2], *r[3:]], 3, 3, "sequence jumps from 3 to 3"),
        # A chain that does not start at the genesis.
        (lambda r: _edit(r, 0, prev_hash="1" * 64), 1, 0, "genesis mismatch"),
    ],
)
def test_tampering_is_detected(tamper: Tamper, bad_seq: int, checked: int, reason: str) -> None:
    report = verify_chain(tamper(build()))
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert report.checked == checked
    assert report.reason is not None and reason in report.reason


def test_intact_chain() -> None:
    records = build()
    assert records[0].prev_hash == GENESIS_HASH and records[0].seq == 1
    report = verify_chain(iter(records))
    assert (report.ok, report.checked, report.first_bad_seq, report.reason) == (True, 5, None, None)
    assert verify_chain([]).ok


def test_wrong_genesis_even_if_internally_consistent() -> None:
    first = build(1)[0]
    forged = rehash(dataclasses.replace(first, prev_hash="a" * 64))
    report = verify_chain([forged])
    assert not report.ok and report.reason == "genesis mismatch"


def test_dropping_the_newest_records_needs_the_anchored_head() -> None:
    records = build()
    assert verify_chain(records[:3]).ok  # a chain alone cannot see a truncated tail
    report = verify_chain(records[:3], expected_head=records[-1].hash)
    assert not report.ok and report.reason is not None and "head" in report.reason
    assert verify_chain(records, expected_head=records[-1].hash).ok


def test_verifying_a_window_from_a_checkpoint() -> None:
    records = build()
    checkpoint = (records[1].seq, records[1].hash)
    assert verify_chain(records[2:], start=checkpoint).ok
    assert not verify_chain(records[3:], start=checkpoint).ok
    assert not verify_chain(records[2:]).ok  # without the checkpoint it is not a genesis


def test_hash_is_canonical() -> None:
    base: dict[str, Any] = {
        "seq": 7,
        "actor": "a",
        "action": "b",
        "target": "c",
        "client": "d",
        "outcome": "ok",
    }
    h = chain_hash(GENESIS_HASH, at=T0, detail={"x": 1, "y": [1, "é"]}, **base)
    # Same instant in another time zone, same detail in another key order: same hash.
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert chain_hash(GENESIS_HASH, at=paris, detail={"y": [1, "é"], "x": 1}, **base) == h
    assert chain_hash("1" * 64, at=T0, detail={"x": 1, "y": [1, "é"]}, **base) != h
    assert chain_hash(GENESIS_HASH, at=T0, detail={"x": "1", "y": [1, "é"]}, **base) != h
    # Pinned: stored hashes must stay verifiable across releases. Changing the canonical form
    # needs a new format version, not a silent edit.
    assert h == PINNED_HASH


PINNED_HASH = "01cb176099316297a1eae5b2901baf374c5dc75ac64e6e5018d47af78563947d"


@pytest.mark.parametrize(
    ("at", "detail", "error"),
    [
        (datetime(2025, 1, 1), {}, ValueError),  # naive
        (T0, {"when": datetime(2025, 1, 1, tzinfo=UTC)}, TypeError),
        (T0, {"raw": b"bytes"}, TypeError),
        (T0, {"x": float("nan")}, ValueError),
    ],
)
def test_unhashable_records_are_refused(at: datetime, detail: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        chain_hash(
            GENESIS_HASH,
            seq=1,
            at=at,
            actor="a",
            action="b",
            target="c",
            client="d",
            outcome="ok",
            detail=detail,
        )


def test_unhashable_stored_record_is_reported_not_raised() -> None:
    records = build(2)
    broken = dataclasses.replace(records[1], at=datetime(2025, 1, 1))
    report = verify_chain([records[0], broken])
    assert (
        not report.ok and report.first_bad_seq == 2 and report.reason == "record cannot be hashed"
    )
