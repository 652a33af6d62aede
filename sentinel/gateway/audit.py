"""A tamper-evident audit trail: every record carries the hash of the one before it.

Editing, deleting or reordering stored records breaks the chain and :func:`verify_chain` says
where. What a hash chain alone cannot show: someone with write access who recomputes every hash
after an edit, or who drops the newest records. Both are caught by anchoring the head: export
the latest hash periodically to a place the database's writers cannot change (a log shipper,
a WORM bucket) and pass it back as ``expected_head``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "GENESIS_HASH",
    "AuditRecord",
    "ChainReport",
    "chain_hash",
    "next_record",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry as stored.

    ``detail`` must survive a JSON round-trip unchanged (strings, integers, booleans, None,
    lists and objects of those; avoid floats, which some databases re-format), or the stored
    record will no longer hash to its ``hash``.
    """

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    client: str
    outcome: str
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainReport:
    """The result of :func:`verify_chain`.

    Attributes:
        ok: Whether every record checked out.
        checked: Records verified good before the first problem (all of them when ``ok``).
        first_bad_seq: The ``seq`` of the record where the chain breaks, or None.
        reason: What broke, or None.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None


def _utc_iso(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def chain_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    client: str,
    outcome: str,
    detail: Mapping[str, Any],
) -> str:
    """SHA-256 (hex) of a record's canonical JSON, ``prev_hash`` and ``seq`` included.

    Canonical means sorted keys, no whitespace, ASCII escapes, and ``at`` in UTC with
    microseconds, so the same record hashes the same on every machine and Python version. A
    format version is hashed too, so a future format can never collide with this one.

    Raises:
        ValueError: ``at`` is naive.
        TypeError: ``detail`` holds a value JSON cannot represent. Values are not coerced with
            ``str()``: two different values must never be allowed to hash alike.
    """
    doc = {
        "v": _FORMAT_VERSION,
        "seq": seq,
        "at": _utc_iso(at),
        "actor": actor,
        "action": action,
        "target": target,
        "client": client,
        "outcome": outcome,
        "detail": dict(detail),
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def next_record(
    prev: AuditRecord | None,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    client: str,
    outcome: str,
    detail: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Builds the record that follows ``prev`` (or the first one, seq 1, when ``prev`` is None).

    Appending must be serialised by the store (one writer, or a lock on the head row): two
    records built on the same ``prev`` fork the chain, and verification will flag the second.
    """
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    fields: dict[str, Any] = {
        "seq": seq,
        "at": at.astimezone(UTC) if at.tzinfo else at,
        "actor": actor,
        "action": action,
        "target": target,
        "client": client,
        "outcome": outcome,
        "detail": dict(detail or {}),
    }
    digest = chain_hash(prev_hash, **fields)
    return AuditRecord(prev_hash=prev_hash, hash=digest, **fields)


def verify_chain(
    records: Iterable[AuditRecord],
    *,
    start: tuple[int, str] | None = None,
    expected_head: str | None = None,
) -> ChainReport:
    """Checks that ``records`` (in stored order) form an unbroken chain.

    Detects an edited record (its hash no longer matches its content), a deleted one (a gap in
    ``seq`` or a ``prev_hash`` that is not the previous record's hash), reordering, and a chain
    that does not start at the genesis hash.

    Args:
        records: The records in ascending ``seq`` order as read from the store.
        start: ``(seq, hash)`` of the last record of an earlier, already verified segment, to
            verify a window of a long chain (or what retention left of it). None means the
            records must start at the genesis.
        expected_head: The head hash anchored elsewhere; if given, the last record must carry
            it, which catches records dropped from the end.

    Returns:
        A report; ``ok`` is False at the first problem found.
    """
    prev_seq, prev_hash = (None, GENESIS_HASH) if start is None else start
    checked = 0
    for rec in records:
        reason = _problem(rec, prev_seq, prev_hash)
        if reason is not None:
            return ChainReport(False, checked, rec.seq, reason)
        prev_seq, prev_hash = rec.seq, rec.hash
        checked += 1
    if expected_head is not None and prev_hash != expected_head:
        return ChainReport(False, checked, None, "head mismatch (records missing at the end)")
    return ChainReport(True, checked, None, None)


def _problem(rec: AuditRecord, prev_seq: int | None, prev_hash: str) -> str | None:
    if prev_seq is not None and rec.seq != prev_seq + 1:
        return f"sequence jumps from {prev_seq} to {rec.seq}"
    if rec.prev_hash != prev_hash:
        return "genesis mismatch" if prev_seq is None else "previous hash mismatch"
    try:
        digest = chain_hash(
            rec.prev_hash,
            seq=rec.seq,
            at=rec.at,
            actor=rec.actor,
            action=rec.action,
            target=rec.target,
            client=rec.client,
            outcome=rec.outcome,
            detail=rec.detail,
        )
    except (TypeError, ValueError):
        return "record cannot be hashed"
    if digest != rec.hash:
        return "hash mismatch (record altered)"
    return None
