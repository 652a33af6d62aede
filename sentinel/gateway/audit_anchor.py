"""Anchors of the audit chain's head, and the check of a chain against them: pure, no I/O.

An anchor is a small claim, ``(seq, hash, at)``: "when we looked at ``at``, entry ``seq`` of the
chain hashed to ``hash``". Anchors are written where the database's writers cannot change them
(an S3 bucket with Object Lock in COMPLIANCE mode, ``sentinel.store.audit_anchors``), so they
catch what the hash chain alone cannot: a record rewritten with every later hash recomputed
(the first anchor at or after it disagrees) and records dropped from the end (an anchor names
an entry that no longer exists).

Every anchor read back is a claim the chain must satisfy, extra versions of an anchor object
included: a forged anchor can raise a false alarm, never hide an alteration.

What anchors cannot show: which entry between two anchors was altered (only that one was), and
anything done to entries after the newest anchor. Anchor often enough for the gap to matter
little.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sentinel.gateway.audit import GENESIS_HASH, AuditRecord, ChainReport, verify_chain

__all__ = [
    "ANCHOR_FORMAT",
    "Anchor",
    "AnchorClaim",
    "AuditVerification",
    "decode_anchor",
    "encode_anchor",
    "verify_anchored",
]

ANCHOR_FORMAT = "sentinel-audit-anchor/1"
_HASH = re.compile(r"^[0-9a-f]{64}$")
MAX_ANCHOR_BYTES = 4096


@dataclass(frozen=True, slots=True)
class AnchorClaim:
    """What an anchor object says: entry ``seq`` hashed to ``hash`` at ``at``."""

    seq: int
    hash: str
    at: datetime

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError(f"an anchor's seq must be >= 1, but got {self.seq}")
        if not _HASH.match(self.hash):
            raise ValueError("an anchor's hash must be 64 lowercase hex digits")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("an anchor's time must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Anchor:
    """An anchor as read back from its store.

    Attributes:
        claim: What it says.
        source: Where it lives (``s3://bucket/key?versionId=...``), for the report.
        lock_mode: The object's lock mode (``COMPLIANCE``), None if it is not locked.
        locked_until: Until when it cannot be deleted or overwritten, None if not locked.
    """

    claim: AnchorClaim
    source: str
    lock_mode: str | None = None
    locked_until: datetime | None = None

    @property
    def seq(self) -> int:
        return self.claim.seq

    @property
    def hash(self) -> str:
        return self.claim.hash

    def locked_at(self, now: datetime) -> bool:
        """Whether the store refuses to delete or overwrite it at ``now`` (COMPLIANCE only:
        a GOVERNANCE lock can be lifted by whoever holds the bypass permission)."""
        return (
            self.lock_mode == "COMPLIANCE"
            and self.locked_until is not None
            and self.locked_until > now
        )


def encode_anchor(claim: AnchorClaim) -> bytes:
    """The anchor object's body: canonical JSON with a format tag."""
    doc = {
        "format": ANCHOR_FORMAT,
        "seq": claim.seq,
        "hash": claim.hash,
        "at": claim.at.astimezone(UTC).isoformat(timespec="microseconds"),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def decode_anchor(body: bytes) -> AnchorClaim:
    """Parses an anchor object's body.

    Raises:
        ValueError: The body is not an anchor of this format, saying what is wrong.
    """
    if len(body) > MAX_ANCHOR_BYTES:
        raise ValueError(f"an anchor is at most {MAX_ANCHOR_BYTES} bytes, got {len(body)}")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"an anchor must be JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != ANCHOR_FORMAT:
        raise ValueError(f"not a {ANCHOR_FORMAT} document")
    seq, digest, at = doc.get("seq"), doc.get("hash"), doc.get("at")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("an anchor's seq must be an integer")
    if not isinstance(digest, str) or not isinstance(at, str):
        raise ValueError("an anchor needs a hash and a time (strings)")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"an anchor's time is not ISO 8601: {at!r}") from None
    return AnchorClaim(seq=seq, hash=digest, at=when)


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The result of :func:`verify_anchored`.

    Attributes:
        ok: The chain is unbroken and agrees with every anchor.
        checked: Entries verified good before the first problem.
        last_seq: The last entry read (0 for an empty log).
        first_bad_seq: The first entry known to disagree: the one where the chain breaks,
            the first anchored entry whose hash differs from its anchor, or the first entry
            an anchor names that is missing. None when ok (or when no entry can be named).
        altered_after: When an anchor disagrees, the last entry an anchor vouches for before
            it: the altered entry lies in ``(altered_after, first_bad_seq]``.
        reason: What is wrong, None when ok.
        anchors: Anchors read.
        anchors_agreeing: Anchors the chain satisfies.
        anchors_unlocked: Anchors not locked (COMPLIANCE) at the time of the check: their
            store would let them be deleted, so their absence would prove nothing.
        last_anchor: The anchor of the highest seq, None if there is none.
        unanchored: Entries after the newest anchor (anything done to them is undetectable by
            anchors until the next one).
        invalid_anchors: Anchor objects that could not be read, with why (from the store).
    """

    ok: bool
    checked: int
    last_seq: int
    first_bad_seq: int | None
    altered_after: int | None
    reason: str | None
    anchors: int
    anchors_agreeing: int
    anchors_unlocked: int
    last_anchor: Anchor | None
    unanchored: int
    invalid_anchors: list[str] = field(default_factory=list)


def verify_anchored(
    records: Iterable[AuditRecord],
    anchors: Sequence[Anchor],
    *,
    now: datetime,
    expected_head: tuple[int, str] | None = None,
    invalid_anchors: Sequence[str] = (),
) -> AuditVerification:
    """Checks the chain (as :func:`verify_chain` does) and that it satisfies every anchor.

    Args:
        records: Every entry, ascending ``seq``, from the genesis.
        anchors: Every anchor read back (any order; several per seq allowed).
        now: The time of the check (for ``anchors_unlocked``).
        expected_head: The database's own head row, ``(seq, hash)`` (catches a plain
            truncation even with no anchor after it).
        invalid_anchors: Anchor objects the store could not read; any makes the result not ok.

    Returns:
        The verification; the first problem in seq order decides ``first_bad_seq``.
    """
    wanted = {a.seq for a in anchors}
    seen: dict[int, str] = {}
    last = [0]
    last_hash = [GENESIS_HASH]

    def tap() -> Iterator[AuditRecord]:
        for rec in records:
            last[0], last_hash[0] = rec.seq, rec.hash
            if rec.seq in wanted:
                seen[rec.seq] = rec.hash
            yield rec

    chain = verify_chain(tap(), expected_head=None)
    # The entries read past a break are not trusted, but what came before it is.
    read_to = chain.first_bad_seq - 1 if chain.first_bad_seq is not None else last[0]
    agreeing: list[int] = []
    problem: tuple[int, int | None, str] | None = None  # (seq, altered_after, reason)
    for anchor in sorted(anchors, key=lambda a: a.seq):
        if anchor.seq <= read_to:
            if seen.get(anchor.seq) == anchor.hash:
                agreeing.append(anchor.seq)
                continue
            if problem is None:
                vouched = max((s for s in agreeing if s < anchor.seq), default=0)
                problem = (
                    anchor.seq,
                    vouched,
                    f"entry {anchor.seq} differs from its anchor of {_iso(anchor)} "
                    f"({anchor.source}): an entry in {vouched + 1}..{anchor.seq} was rewritten",
                )
        elif chain.ok and problem is None:
            problem = (
                read_to + 1,
                max(agreeing, default=0),
                f"anchor of {_iso(anchor)} ({anchor.source}) names entry {anchor.seq}, "
                f"but the log ends at {read_to}: entries were removed",
            )
    first_bad, after, reason = _first(chain, problem)
    if reason is None and expected_head is not None and expected_head != (last[0], last_hash[0]):
        head_seq, _ = expected_head
        first_bad = last[0] + 1 if head_seq > last[0] else None
        reason = (
            f"the database's head names entry {head_seq} but the log ends at {last[0]}: "
            "entries were removed"
            if head_seq > last[0]
            else f"the database's head (entry {head_seq}) does not match the last entry"
        )
    if reason is None and invalid_anchors:
        reason = f"{len(invalid_anchors)} anchor object(s) cannot be read"
    newest = max(anchors, key=lambda a: (a.seq, a.claim.at), default=None)
    return AuditVerification(
        ok=reason is None,
        checked=_checked(chain.checked, first_bad, after),
        last_seq=last[0],
        first_bad_seq=first_bad,
        altered_after=after,
        reason=reason,
        anchors=len(anchors),
        anchors_agreeing=len(agreeing),
        anchors_unlocked=sum(1 for a in anchors if not a.locked_at(now)),
        last_anchor=newest,
        unanchored=max(last[0] - (newest.seq if newest else 0), 0),
        invalid_anchors=list(invalid_anchors),
    )


def _first(
    chain: ChainReport, problem: tuple[int, int | None, str] | None
) -> tuple[int | None, int | None, str | None]:
    """The earlier of the chain's break and the first anchor problem."""
    if chain.first_bad_seq is not None and (problem is None or chain.first_bad_seq <= problem[0]):
        return chain.first_bad_seq, None, chain.reason
    if problem is not None:
        return problem
    return None, None, None


def _checked(chain_checked: int, first_bad: int | None, vouched: int | None) -> int:
    """Entries trusted: up to the break, or up to the last agreeing anchor before a rewrite."""
    if first_bad is None:
        return chain_checked
    return min(chain_checked, first_bad - 1 if vouched is None else vouched)


def _iso(anchor: Anchor) -> str:
    return anchor.claim.at.astimezone(UTC).isoformat(timespec="seconds")
