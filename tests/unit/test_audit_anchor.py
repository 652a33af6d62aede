"""Anchors of the audit chain: rewrites with recomputed hashes and truncations are caught."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.gateway.audit import AuditRecord, next_record, verify_chain
from sentinel.gateway.audit_anchor import (
    Anchor,
    AnchorClaim,
    decode_anchor,
    encode_anchor,
    verify_anchored,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
LOCKED = T0 + timedelta(days=365)


def build(n: int, *, actor_of: dict[int, str] | None = None) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for i in range(1, n + 1):
        records.append(
            next_record(
                records[-1] if records else None,
                at=T0 + timedelta(seconds=i),
                actor=(actor_of or {}).get(i, f"user-{i % 3}"),
                action="POST /api/v1/holds",
                target=f"camera:cam{i % 2}",
                client="198.51.100.7",
                outcome="success",
                detail={"n": i},
            )
        )
    return records


def anchor_of(rec: AuditRecord, *, mode: str | None = "COMPLIANCE") -> Anchor:
    claim = AnchorClaim(seq=rec.seq, hash=rec.hash, at=rec.at + timedelta(seconds=1))
    return Anchor(claim, f"s3://anchors/{rec.seq:020d}.json", mode, LOCKED if mode else None)


def rewrite(records: list[AuditRecord], seq: int, actor: str) -> list[AuditRecord]:
    """What an attacker with DB access does: edit entry ``seq``, recompute every hash after."""
    edited = build(len(records), actor_of={seq: actor})
    assert verify_chain(edited).ok  # the chain alone cannot tell
    return edited


def test_an_intact_chain_agrees_with_its_anchors() -> None:
    chain = build(10)
    anchors = [anchor_of(chain[3]), anchor_of(chain[7]), anchor_of(chain[7])]  # 2 versions
    report = verify_anchored(chain, anchors, now=NOW, expected_head=(10, chain[-1].hash))
    assert report.ok and report.reason is None
    assert (report.checked, report.last_seq, report.anchors, report.anchors_agreeing) == (
        10,
        10,
        3,
        3,
    )
    assert report.last_anchor is not None and report.last_anchor.seq == 8
    assert report.unanchored == 2 and report.anchors_unlocked == 0


@pytest.mark.parametrize(
    ("anchored", "edited", "first_bad", "after"),
    [
        ([4, 8], 6, 8, 4),  # between two anchors: the window is named
        ([4, 8], 8, 8, 4),
        ([4, 8], 2, 4, 0),
        (list(range(1, 11)), 6, 6, 5),  # anchored at every entry: the exact one
    ],
    ids=["between", "at-anchor", "before-first", "every-entry"],
)
def test_a_rewrite_with_recomputed_hashes_is_caught(
    anchored: list[int], edited: int, first_bad: int, after: int
) -> None:
    original = build(10)
    anchors = [anchor_of(original[seq - 1]) for seq in anchored]
    tampered = rewrite(original, edited, "someone-else")
    report = verify_anchored(tampered, anchors, now=NOW, expected_head=(10, tampered[-1].hash))
    assert not report.ok
    assert (report.first_bad_seq, report.altered_after) == (first_bad, after)
    assert report.checked == after
    assert report.reason is not None and f"entry {first_bad} differs" in report.reason


def test_a_rewrite_after_the_newest_anchor_goes_unseen() -> None:
    """The documented limit: entries after the newest anchor are not protected by it."""
    original = build(10)
    tampered = rewrite(original, 9, "someone-else")
    report = verify_anchored(tampered, [anchor_of(original[7])], now=NOW)
    assert report.ok and report.unanchored == 2


def test_dropped_newest_entries_are_caught_even_with_the_head_row_fixed() -> None:
    chain = build(10)
    anchors = [anchor_of(chain[4]), anchor_of(chain[8])]
    kept = chain[:7]  # entries 8..10 dropped, the head row set to entry 7
    report = verify_anchored(kept, anchors, now=NOW, expected_head=(7, kept[-1].hash))
    assert not report.ok
    assert (report.first_bad_seq, report.altered_after, report.checked) == (8, 5, 5)
    assert report.reason is not None and "removed" in report.reason


def test_the_head_row_catches_a_plain_truncation_without_anchors() -> None:
    chain = build(6)
    report = verify_anchored(chain[:4], [], now=NOW, expected_head=(6, chain[-1].hash))
    assert not report.ok and report.first_bad_seq == 5


def test_a_chain_break_before_a_disagreeing_anchor_is_named_first() -> None:
    chain = build(10)
    anchors = [anchor_of(chain[8])]
    broken = list(chain)
    broken[4] = dataclasses.replace(broken[4], actor="crude-edit")  # hash not recomputed
    report = verify_anchored(broken, anchors, now=NOW)
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert report.reason == "hash mismatch (record altered)"


def test_a_forged_anchor_is_a_false_alarm_never_a_cover() -> None:
    chain = build(5)
    forged = Anchor(AnchorClaim(3, "f" * 64, T0), "s3://anchors/3?versionId=x", None, None)
    report = verify_anchored(chain, [anchor_of(chain[2]), forged], now=NOW)
    assert not report.ok and report.first_bad_seq == 3
    assert report.anchors_unlocked == 1 and report.anchors_agreeing == 1


def test_unreadable_anchor_objects_fail_the_check() -> None:
    chain = build(3)
    report = verify_anchored(chain, [], now=NOW, invalid_anchors=["s3://a/x.json: not JSON"])
    assert not report.ok and report.first_bad_seq is None
    assert report.invalid_anchors == ["s3://a/x.json: not JSON"]


def test_an_expired_or_governance_lock_counts_as_unlocked() -> None:
    chain = build(2)
    governance = anchor_of(chain[0], mode="GOVERNANCE")
    expired = dataclasses.replace(anchor_of(chain[1]), locked_until=NOW - timedelta(seconds=1))
    report = verify_anchored(chain, [governance, expired], now=NOW)
    assert report.ok and report.anchors_unlocked == 2


def test_encode_decode_round_trip() -> None:
    claim = AnchorClaim(seq=42, hash="a" * 64, at=T0)
    body = encode_anchor(claim)
    assert decode_anchor(body) == claim
    assert body == encode_anchor(claim)  # canonical


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "must be JSON"),
        (b"[]", "not a sentinel-audit-anchor/1"),
        (b'{"format": "other/1", "seq": 1}', "not a sentinel-audit-anchor/1"),
        (b'{"format":"sentinel-audit-anchor/1","seq":"1","hash":"a","at":"x"}', "integer"),
        (b'{"format":"sentinel-audit-anchor/1","seq":true,"hash":"a","at":"x"}', "integer"),
        (b'{"format":"sentinel-audit-anchor/1","seq":0,"hash":"' + b"a" * 64 + b'","at":'
         b'"2026-01-01T00:00:00+00:00"}', ">= 1"),
        (b'{"format":"sentinel-audit-anchor/1","seq":1,"hash":"XYZ","at":'
         b'"2026-01-01T00:00:00+00:00"}', "64 lowercase hex"),
        (b'{"format":"sentinel-audit-anchor/1","seq":1,"hash":"' + b"a" * 64 + b'","at":'
         b'"yesterday"}', "not ISO 8601"),
        (b'{"format":"sentinel-audit-anchor/1","seq":1,"hash":"' + b"a" * 64 + b'","at":'
         b'"2026-01-01T00:00:00"}', "timezone-aware"),
        (b"x" * 5000, "at most 4096 bytes"),
    ],
    ids=["not-json", "list", "other-format", "seq-string", "seq-bool", "seq-zero", "bad-hash",
         "bad-time", "naive-time", "too-big"],
)  # fmt: skip
def test_decode_rejects_what_is_not_an_anchor(body: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode_anchor(body)
