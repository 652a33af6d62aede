"""A camera's event journal: event changes the database has not taken yet, on local disk.

While the store is down a camera keeps producing event changes; holding them in memory loses
them when the actor dies, and bounding memory loses the oldest. The runner appends every change
the store refused to this append-only file (``<data dir>/journal/<camera>.jsonl``), replays it
in order once the store answers again, and truncates it when all of it is stored. Replaying is
safe to repeat: event writes are idempotent upserts that ignore stale states, so a change
stored before a crash and replayed after it changes nothing.

Format: one JSON object per line (``encode_change``), ``\\n``-terminated. A crash in the middle
of an append leaves a torn last line without its ``\\n``; opening the journal cuts it off. A
line that does not decode (a damaged disk) is skipped and counted, never fatal.

The journal has a disk budget (``max_bytes``); changes that do not fit are not written and
``append`` says how many, so the caller counts every drop (nothing is dropped silently).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sentinel.domain.types import Box, EventChange, EventChangeKind, EventState

__all__ = [
    "JOURNAL_VERSION",
    "EventJournal",
    "JournalError",
    "JournalRead",
    "decode_change",
    "encode_change",
    "fitting_prefix",
]

logger = logging.getLogger(__name__)

JOURNAL_VERSION = 1
_TAIL_CHUNK = 64 * 1024


class JournalError(ValueError):
    """A journal line that is not a change this version wrote."""


def _stamp(value: datetime) -> str:
    return value.isoformat()


def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise JournalError(f"{name} must be an ISO timestamp, but got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise JournalError(f"{name} must be an ISO timestamp, but got {value!r}") from exc
    if parsed.tzinfo is None:
        raise JournalError(f"{name} must carry a timezone, but got {value!r}")
    return parsed


def encode_change(change: EventChange) -> bytes:
    """One journal line (UTF-8 JSON ending in ``\\n``) holding ``change`` exactly."""
    ev = change.event
    record = {
        "v": JOURNAL_VERSION,
        "kind": change.kind.value,
        "new_best": change.new_best,
        "event": {
            "id": ev.id,
            "camera_id": ev.camera_id,
            "label": ev.label,
            "track_id": ev.track_id,
            "started_at": _stamp(ev.started_at),
            "last_seen_at": _stamp(ev.last_seen_at),
            "score": ev.score,
            "box": ev.box.as_list(),
            "best_at": _stamp(ev.best_at),
            "ended_at": None if ev.ended_at is None else _stamp(ev.ended_at),
            "hits": ev.hits,
            "path": [[x, y] for x, y in ev.path],
            "model_version": ev.model_version,
        },
    }
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def decode_change(line: bytes) -> EventChange:
    """The change of one journal line (with or without its ``\\n``).

    Raises:
        JournalError: The line is not JSON, not this version, or misses or mistypes a field.
    """
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JournalError(f"journal line is not JSON: {line[:80]!r}") from exc
    if not isinstance(record, dict) or record.get("v") != JOURNAL_VERSION:
        raise JournalError(f"journal line is not version {JOURNAL_VERSION}: {line[:80]!r}")
    try:
        ev = record["event"]
        ended = ev["ended_at"]
        state = EventState(
            id=str(ev["id"]),
            camera_id=str(ev["camera_id"]),
            label=str(ev["label"]),
            track_id=int(ev["track_id"]),
            started_at=_time(ev["started_at"], "started_at"),
            last_seen_at=_time(ev["last_seen_at"], "last_seen_at"),
            score=float(ev["score"]),
            box=Box(*(float(v) for v in ev["box"])),
            best_at=_time(ev["best_at"], "best_at"),
            ended_at=None if ended is None else _time(ended, "ended_at"),
            hits=int(ev["hits"]),
            path=[(float(x), float(y)) for x, y in ev["path"]],
            model_version=None if ev.get("model_version") is None else int(ev["model_version"]),
        )
        return EventChange(EventChangeKind(record["kind"]), state, bool(record["new_best"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, JournalError):
            raise
        raise JournalError(f"journal line has a bad field ({exc!r}): {line[:80]!r}") from exc


def fitting_prefix(sizes: Sequence[int], used: int, budget: int) -> int:
    """How many of the leading items (of ``sizes`` bytes) fit in ``budget`` after ``used``.

    Only a prefix is taken: once one item does not fit, the later ones are not written either,
    so the journal stays in the order the changes were made.
    """
    taken = 0
    for size in sizes:
        if used + size > budget:
            break
        used += size
        taken += 1
    return taken


@dataclass(frozen=True, slots=True)
class JournalRead:
    """A run of journalled changes, the offset just past them, and undecodable lines skipped."""

    changes: list[EventChange]
    end: int
    corrupt: int


class EventJournal:
    """One camera's append-only journal file, with a disk budget.

    Not thread-safe: one camera loop owns it (its calls run one at a time).

    Args:
        path: The journal file; its folder is made on the first append.
        max_bytes: The disk budget of the file.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, but got {max_bytes}")
        self.path = path
        self.max_bytes = max_bytes
        self._size = self._trim_torn_tail()
        self._replayed = 0  # bytes already stored by a replay (truncated once all are)

    @property
    def size(self) -> int:
        """The file's size in bytes (0 when absent)."""
        return self._size

    @property
    def pending(self) -> bool:
        """Whether the journal holds changes not yet replayed."""
        return self._size > self._replayed

    def _trim_torn_tail(self) -> int:
        """Cuts a last line a crash left without its newline; returns the file's size."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        with self.path.open("r+b") as f:
            end = size
            while end > 0:
                start = max(0, end - _TAIL_CHUNK)
                f.seek(start)
                chunk = f.read(end - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                end = start
            else:
                keep = 0
            if keep != size:
                logger.warning(
                    "journal %s: cut a torn last line (%d bytes)", self.path, size - keep
                )
                f.truncate(keep)
        return keep

    def append(self, changes: Sequence[EventChange]) -> int:
        """Appends ``changes`` in order, durably; returns how many did not fit (dropped).

        Raises:
            OSError: The write failed (the file is cut back to what it was).
        """
        lines = [encode_change(c) for c in changes]
        taken = fitting_prefix([len(line) for line in lines], self._size, self.max_bytes)
        if taken:
            data = b"".join(lines[:taken])
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
                # fsync per append: the journal is written only while the store is down, once
                # per analysed frame that changed an event (a few per second per camera at
                # most), and it is the only copy of those changes. A process crash would not
                # need it (the page cache survives), but a power cut or kernel crash would.
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, self._size)  # never leave half a line behind
                raise
            finally:
                os.close(fd)
            if created:
                self._fsync_dir()
            self._size += len(data)
        return len(lines) - taken

    def _fsync_dir(self) -> None:
        """Makes a new file's directory entry durable, as its content already is."""
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, max_changes: int) -> JournalRead:
        """Up to ``max_changes`` changes after the replayed part, in the order written."""
        changes: list[EventChange] = []
        corrupt = 0
        offset = self._replayed
        if offset >= self._size:
            return JournalRead(changes, offset, 0)
        with self.path.open("rb") as f:
            f.seek(offset)
            while len(changes) < max_changes and offset < self._size:
                line = f.readline()
                if not line.endswith(b"\n"):
                    break  # cannot happen after _trim_torn_tail; never read half a line
                offset += len(line)
                try:
                    changes.append(decode_change(line))
                except JournalError as exc:
                    logger.error("journal %s: skipped a damaged line: %s", self.path, exc)
                    corrupt += 1
        return JournalRead(changes, offset, corrupt)

    def commit(self, end: int) -> None:
        """Marks everything before ``end`` (a ``JournalRead.end``) as stored.

        Once all of the journal is stored the file is truncated to nothing. No fsync: if a
        crash undid the truncation, the next start would replay changes already stored, which
        idempotent event writes ignore.
        """
        if not self._replayed <= end <= self._size:
            raise ValueError(f"end must be in [{self._replayed}, {self._size}], but got {end}")
        self._replayed = end
        if self._replayed == self._size and self._size:
            os.truncate(self.path, 0)
            self._size = self._replayed = 0
