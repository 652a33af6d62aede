"""Anchoring the audit chain's head, and verifying the chain against the anchors.

``AuditAnchorer.anchor`` writes the current head as a new anchor, but only after checking that
the entries since the newest anchor extend it: an anchor never blesses a chain that already
disagrees with the previous one. ``verify_audit`` is what ``sentinel audit verify`` and
``GET /api/v1/audit/verify`` run.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sentinel.gateway.audit import verify_chain
from sentinel.gateway.audit_anchor import (
    Anchor,
    AnchorClaim,
    AuditVerification,
    verify_anchored,
)
from sentinel.retention.loops import PeriodicLoop
from sentinel.store.audit_anchors import AnchorExistsError, S3AnchorStore
from sentinel.store.audit_repo import AuditRepository
from sentinel.store.clock import Clock, utcnow

__all__ = [
    "AnchorLoop",
    "AnchorRefusedError",
    "AnchorResult",
    "AuditAnchorer",
    "anchor_dict",
    "verification_dict",
    "verify_audit",
]

log = logging.getLogger(__name__)


class AnchorRefusedError(RuntimeError):
    """The chain disagrees with the newest anchor: anchoring it would bless an alteration."""


@dataclass(frozen=True, slots=True)
class AnchorResult:
    """What one anchoring did: ``anchor`` written, or why none was needed."""

    anchor: Anchor | None
    skipped: str | None = None


class AuditAnchorer:
    """Anchors the head of the audit chain in an Object Lock bucket.

    Args:
        audit: The audit log.
        anchors: The anchor bucket.
        create_bucket: Create the bucket (with Object Lock) on the first anchoring if missing.
        clock: The current tz-aware time.
    """

    def __init__(
        self,
        audit: AuditRepository,
        anchors: S3AnchorStore,
        *,
        create_bucket: bool = True,
        clock: Clock = utcnow,
    ) -> None:
        self.audit = audit
        self.anchors = anchors
        self.create_bucket = create_bucket
        self.clock = clock
        self._bucket_checked = False

    def anchor(self) -> AnchorResult:
        """Anchors the current head unless the newest anchor already holds it.

        Raises:
            AnchorRefusedError: The entries since the newest anchor do not extend it (an entry was
                rewritten or removed): run ``sentinel audit verify``.
            AnchorStoreError: The bucket failed, or has no Object Lock.
        """
        if not self._bucket_checked:
            self.anchors.ensure_bucket(create=self.create_bucket)
            self._bucket_checked = True
        seq, head = self.audit.head()
        if seq == 0:
            return AnchorResult(None, "the audit log is empty")
        latest = self.anchors.latest()
        if latest is not None and latest.seq > seq:
            raise AnchorRefusedError(
                f"the newest anchor names entry {latest.seq} but the log's head is {seq}: "
                "entries were removed"
            )
        if latest is not None and latest.seq == seq:
            if latest.hash != head:
                raise AnchorRefusedError(f"entry {seq} differs from its anchor ({latest.source})")
            return AnchorResult(None, f"entry {seq} is anchored already")
        records = self.audit.iter_all(after=None if latest is None else latest.seq - 1)
        window = itertools.takewhile(lambda r: r.seq <= seq, records)
        start = None
        if latest is not None:
            anchored = next(window, None)
            if anchored is None or anchored.seq != latest.seq:
                raise AnchorRefusedError(f"entry {latest.seq}, anchored, is missing")
            if anchored.hash != latest.hash:
                raise AnchorRefusedError(
                    f"entry {latest.seq} differs from its anchor ({latest.source})"
                )
            start = (latest.seq, latest.hash)
        report = verify_chain(window, start=start, expected_head=head)
        if not report.ok:
            where = "the chain" if latest is None else f"the chain after anchor {latest.seq}"
            raise AnchorRefusedError(
                f"{where} is broken at entry {report.first_bad_seq}: {report.reason}"
            )
        try:
            anchor = self.anchors.put(AnchorClaim(seq=seq, hash=head, at=self.clock()))
        except AnchorExistsError:  # another process anchored the same head meanwhile
            return AnchorResult(None, f"entry {seq} was anchored meanwhile")
        log.info("anchored audit entry %d in %s", seq, anchor.source)
        return AnchorResult(anchor)


def verify_audit(
    audit: AuditRepository, anchors: S3AnchorStore | None, *, now: datetime | None = None
) -> AuditVerification:
    """Verifies the whole chain, its head row and, if configured, every anchor.

    Entries appended while this runs (after the head is read) are left for the next check.

    Raises:
        AnchorStoreError: The anchor bucket failed.
    """
    head = audit.head()
    read = anchors.read_all() if anchors is not None else None
    records = itertools.takewhile(lambda r: r.seq <= head[0], audit.iter_all())
    return verify_anchored(
        records,
        read.anchors if read is not None else [],
        now=now or datetime.now(UTC),
        expected_head=head,
        invalid_anchors=read.invalid if read is not None else (),
    )


def anchor_dict(anchor: Anchor) -> dict[str, Any]:
    """An anchor as JSON-ready data."""
    return {
        "seq": anchor.seq,
        "hash": anchor.hash,
        "at": anchor.claim.at.isoformat(),
        "source": anchor.source,
        "lock_mode": anchor.lock_mode,
        "locked_until": None if anchor.locked_until is None else anchor.locked_until.isoformat(),
    }


def verification_dict(report: AuditVerification, *, anchored: bool) -> dict[str, Any]:
    """The report as JSON-ready data (for the CLI and the API)."""
    last = report.last_anchor
    return {
        "ok": report.ok,
        "anchoring": anchored,
        "checked": report.checked,
        "last_seq": report.last_seq,
        "first_bad_seq": report.first_bad_seq,
        "altered_after": report.altered_after,
        "reason": report.reason,
        "anchors": report.anchors,
        "anchors_agreeing": report.anchors_agreeing,
        "anchors_unlocked": report.anchors_unlocked,
        "unanchored": report.unanchored,
        "last_anchor": None if last is None else anchor_dict(last),
        "invalid_anchors": list(report.invalid_anchors),
    }


class AnchorLoop(PeriodicLoop):
    """Anchors every ``interval_s`` in a daemon thread, and on demand (the retention actor
    holds one; Ray-free so it is tested without a cluster).

    Args:
        anchorer: What anchors.
        interval_s: Time between anchors.
    """

    def __init__(self, anchorer: AuditAnchorer, interval_s: float) -> None:
        super().__init__(interval_s, "audit-anchor")
        self.anchorer = anchorer
        self.runs = 0

    def anchor_now(self) -> dict[str, Any]:
        """Anchors now (serialised with the loop): ``anchored`` (the anchor or None),
        ``skipped`` (why nothing was needed) and ``error`` ("" when it worked)."""
        return self.run_now()

    def run_round(self) -> dict[str, Any]:
        self.runs += 1
        try:
            result = self.anchorer.anchor()
        except Exception as exc:  # refused (altered chain) or the bucket failed: say so
            self.last_error = str(exc)[:500]
            log.error("audit anchoring failed: %s", exc)
            return {"anchored": None, "skipped": None, "error": self.last_error}
        self.last_error = ""
        anchored = None if result.anchor is None else anchor_dict(result.anchor)
        if anchored is not None:
            self.last = anchored
        return {"anchored": anchored, "skipped": result.skipped, "error": ""}
